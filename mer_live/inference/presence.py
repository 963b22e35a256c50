"""Is there music? A small ONNX model's per-window probability and a hysteresis gate over it.

A show is not only music: before the first song, between songs, while the singer talks or the
crowd claps, the emotion values mean nothing and must not be sent as if they did. The presence
model (``models/mer-presence.onnx``, card beside it) takes the same model-rate windows as the
emotion model, float32 ``[batch, samples]``, and returns ``[batch, 1]``: the probability that
music is playing. One window's probability flickers (a drum fill, a pause), so ``MusicGate``
declares music only after the probability has stayed high for ``on_s`` and ends it only after it
has stayed low for ``off_s``; silent input ends it at once. Where the card has a phrase head
(``mer_live.inference.phrase``: the held pitches of the last 8 s), the gate runs on max(p, head):
a solo line's long notes stay music, a tuning's one note does not. ``music_flags`` runs the same gate
over a file's windows (``mer-analyze``), so files and live input agree (live, a settled gate runs
the model every other hop: a change at most one hop later, ``mer_live.live.estimator``).

numpy + onnxruntime only (the runtime never imports torch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from mer_live.common.validate import Checked, ShowConfigError, check_fields, number

from .model import Model, ModelError
from .phrase import NAMES, PhraseHead

PRESENCE_MODEL_NAME = "mer-presence"
PRESENCE_OUTPUTS = ("music",)


def default_presence_path() -> Path:
    """The shipped presence model (``models/mer-presence.onnx``), wherever the package is installed."""
    return Path(str(resources.files("mer_live.models").joinpath(f"{PRESENCE_MODEL_NAME}.onnx")))


class PresenceModel:
    """An onnxruntime session over a presence model and its card (``mer_live.inference.model.Model``'s
    loading, card validation, sha256 check and provider choice, expecting one output: music)."""

    def __init__(self, path: str | Path | None = None, provider: str = "cpu", threads: int | None = 1,
                 verify_sha: bool = True) -> None:
        # CPU by default: the model is tiny, a GPU round trip per 0.1-s hop costs more than it saves
        self.model = Model(path if path is not None else default_presence_path(), provider=provider,
                           threads=threads, verify_sha=verify_sha, outputs=PRESENCE_OUTPUTS)
        self.card = self.model.card
        self.path = self.model.path
        self.active_provider = self.model.active_provider
        try:  # the phrase cue's head (card "phrase"): the gate runs on max(p, head), or None
            self.phrase = PhraseHead.from_card(self.card.extra.get("phrase"))
        except ValueError as e:
            raise ModelError(f"{self.path}: {e}") from None

    @property
    def sample_rate(self) -> int:
        return self.card.sample_rate

    @property
    def window_samples(self) -> int:
        return self.card.window_samples

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Probability of music for each window: float32 ``[n, window_samples]`` -> ``[n]`` in [0, 1]."""
        return self.model.predict(windows)[:, 0]


@dataclass(frozen=True)
class GateConfig(Checked):
    """Hysteresis of the music gate. Music starts when the probability has been at least
    ``on_prob`` for ``on_s`` seconds, and ends when it has been below ``off_prob`` for ``off_s``
    seconds (or at once when the input is silent); in between the state holds. The defaults are
    the shipped card's "gate", chosen on held-out folds over max(p, phrase head) (docs/presence.md,
    "Fifth step"): music is declared a median 1.8 s after it starts, talk, applause, a crowd or a
    tuning after music a p90 2.8 s after the music ends; the 2-s window has to fill with the new
    sound first, and off_prob 0.5 (0.35 before the head) lets speech go sooner."""

    on_prob: float = field(default=0.8, metadata=number(0, 1, "in 0..1"))
    off_prob: float = field(default=0.5, metadata=number(0, 1, "in 0..1"))
    on_s: float = field(default=0.3, metadata=number(0, 600, "in 0..600 s"))
    off_s: float = field(default=0.8, metadata=number(0, 600, "in 0..600 s"))

    def __post_init__(self) -> None:
        check_fields(self, "presence")
        if self.off_prob > self.on_prob:
            raise ShowConfigError(f"[presence] off_prob ({self.off_prob}) must not be above on_prob "
                                  f"({self.on_prob})")


    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GateConfig:
        """A config section (e.g. TOML ``[presence]``) -> validated GateConfig; unknown keys are an error."""
        known = {"on_prob", "off_prob", "on_s", "off_s"}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"presence gate: unknown key(s) {', '.join(bad)}; "
                             f"use {', '.join(sorted(known))}")
        return cls(**{k: float(v) for k, v in d.items()}).validate()


class MusicGate:
    """dt-aware hysteresis over presence probabilities: ``update`` once per hop, ``music`` after.

    Starts in "no music" (a show starts before the first song). Not thread-safe: one pipeline
    thread owns it."""

    def __init__(self, config: GateConfig | None = None) -> None:
        self.config = (config or GateConfig()).validate()
        self.reset()

    def reset(self) -> None:
        """Back to "no music" with no evidence either way (a new source, a lost input)."""
        self.music = False
        self._high_s = 0.0
        self._low_s = 0.0

    def update(self, prob: float, dt: float, silent: bool = False) -> bool:
        """Feed one hop: ``prob`` the newest window's probability, ``dt`` seconds since the last
        update, ``silent`` the input's silence flag (silence is never music). Returns ``music``.
        A NaN probability (no window yet) counts as evidence against music."""
        c = self.config
        dt = max(0.0, float(dt)) if math.isfinite(dt) else 0.0
        if silent:
            self.music, self._high_s, self._low_s = False, 0.0, 0.0
            return False
        p = float(prob)
        high = math.isfinite(p) and p >= c.on_prob
        low = not math.isfinite(p) or p < c.off_prob
        self._high_s = self._high_s + dt if high else 0.0
        self._low_s = self._low_s + dt if low else 0.0
        if not self.music and high and self._high_s >= c.on_s:
            self.music, self._low_s = True, 0.0
        elif self.music and low and self._low_s >= c.off_s:
            self.music, self._high_s = False, 0.0
        return self.music


def music_flags(probs: np.ndarray, hop_s: float, silent: np.ndarray | None = None,
                config: GateConfig | None = None, head: PhraseHead | None = None,
                cue: np.ndarray | None = None) -> np.ndarray:
    """The live gate over a file's consecutive windows (``hop_s`` apart, starting from "no
    music"): bool ``[n]``, True where music is declared. ``silent`` (bool ``[n]``, optional) marks
    silent windows. With the model's phrase ``head`` and the file's ``cue`` at each window's end
    (``[n, 6]``, ``phrase.stream_features``), the gate runs on max(p, head) as live.
    ``mer-analyze`` summarises a file over its music windows with it."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if head is not None and cue is not None:
        c = np.asarray(cue, np.float32)
        if c.shape != (len(p), len(NAMES)):
            raise ValueError(f"cue has shape {c.shape} for {len(p)} probabilities")
        p = head.raise_(p, c)
    if not (math.isfinite(hop_s) and hop_s > 0):
        raise ValueError(f"hop_s must be a positive number of seconds, got {hop_s!r}")
    s = np.zeros(len(p), bool) if silent is None else np.asarray(silent, bool).reshape(-1)
    if len(s) != len(p):
        raise ValueError(f"silent has {len(s)} values for {len(p)} probabilities")
    gate = MusicGate(config)
    out = np.zeros(len(p), bool)
    for i in range(len(p)):
        # the first window's dt is one hop too: the gate has seen one hop of evidence
        out[i] = gate.update(p[i], hop_s, bool(s[i]))
    return out
