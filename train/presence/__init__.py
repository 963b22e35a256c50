"""Train, cross-validate and ship the music-presence model (``models/mer-presence.onnx``).

``mer-train ship presence`` (= ``python -m train.presence --cv --ship``) rebuilds the shipped file and
its card; ``mer-train cv presence`` runs the held-out folds alone:

* positives: the 716 4Q clips (``cache.load_audio``: the runtime's decode chain), their
  stage-degraded versions (``cache.load_stage_audio``) and EMOPIA piano renders
  (``midi.load_emopia``); in training also music made quiet over a room's noise floor and music
  under crowd noise or speech (mixed as powers, music dominant);
* the music-kinds corpus (``showmusic``: drum grooves on real sampled, GM and synthesised kits,
  EDM from MIDI, solo GM instruments, recorded game music; issue #25), folds by kit, instrument or
  package; ``--no-showmusic`` is the recipe of the model shipped on 2026-12-03;
* negatives: ``negatives.bank`` (silence, room tone, hum, applause, crowd, synthesized speech,
  tunings, line checks), 30 s each, grouped by voice or seed;
* the model: the multires log-mel front end of ``train/models.py`` with the window's mean level
  removed (gain does not matter), a 3-block CNN, one sigmoid: float32 ``[batch, samples]`` at
  16 kHz -> ``[batch, 1]``;
* training on cached spectrograms (the front end is fixed): random crops, mixtures in the power
  domain, a smooth random EQ;
* 5 held-out folds: 4Q by artist (``data.artist_folds``), EMOPIA by song, negatives by group
  (a test fold's voices are never trained on). Every test item is scored through the exported
  ONNX graph on the runtime's windows (0.1 s hop) and through the runtime's gate
  (``mer_live.inference.presence.music_flags``); transition streams (music -> talk/applause/... -> music)
  give the gate's on and off delays. The alsa-utils recordings of a real voice are a held-out
  real-speech test (never trained on).

The package by stage: ``net`` (front end + CNN), ``data`` (items and their groups), ``fit``
(cached-spectrogram training), ``export`` (ONNX + card), ``score`` (the runtime's windows and
silence rule), ``gate`` (metrics after the gate, the gate's choice), ``report`` (card, tables,
plot), ``run`` (the stages put together, the command line), ``context`` (a phrase-cue head over
a finished CV's out-of-fold probabilities: ``python -m train.presence.context``). The names below
stay importable from ``train.presence``.
"""

from __future__ import annotations

from .data import (
    ALSA_DIR,
    MUSIC_KINDS,
    SHOW_KINDS,
    Item,
    add_quiet,
    alsa_stream,
    alsa_voice,
    group_folds,
    load_music,
    load_negatives,
    load_showmusic,
    quiet_version,
)
from .export import export
from .fit import PresenceFitConfig, features, fit_presence
from .gate import CAPS, FLOORS, choose_gate, kind_metrics, quantile, transition_metrics, window_auc
from .net import SR, PresenceNet, build_model, presence_config
from .report import markdown, ship_card, show_table
from .run import SHIP_PATH, before, main, run, score_model, train_items
from .score import Scored, Transition, score_fold, silent_flags, stream_probs

__all__ = [
    "SR",
    "presence_config",
    "PresenceNet",
    "build_model",
    "ALSA_DIR",
    "SHOW_KINDS",
    "MUSIC_KINDS",
    "Item",
    "group_folds",
    "quiet_version",
    "add_quiet",
    "load_music",
    "load_negatives",
    "load_showmusic",
    "alsa_voice",
    "alsa_stream",
    "features",
    "PresenceFitConfig",
    "fit_presence",
    "export",
    "stream_probs",
    "silent_flags",
    "Scored",
    "Transition",
    "score_fold",
    "FLOORS",
    "CAPS",
    "kind_metrics",
    "quantile",
    "transition_metrics",
    "window_auc",
    "choose_gate",
    "show_table",
    "ship_card",
    "markdown",
    "SHIP_PATH",
    "train_items",
    "run",
    "score_model",
    "before",
    "main",
]
