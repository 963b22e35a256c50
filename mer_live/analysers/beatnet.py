"""BeatNet as the live beat tracker (``--beat-tracker beatnet``): its CRNN in onnxruntime, its
particle filter in numpy, aubio's onsets and our rhythm gate kept.

Why: on the real-music known-grid set BeatNet's online mode (Heydari et al. 2021, weights CC BY
4.0) finds the beat more often than aubio's path (bench_beatnet, bench_beatreal in
docs/benchmarks.md), and it is causal: a unidirectional LSTM over 20-ms frames, a particle
filter that decides a beat at the frame it is in. The runtime never imports torch or madmom:
``models/beatnet-<n>.onnx`` (``train/beatnet_export.py``) carries the LSTM state from call to
call, ``beatnet_dsp.LogSpect`` is madmom's LOG_SPECT front end and ``beatnet_pf.ParticleFilter``
BeatNet's filter, both in numpy and checked against BeatNet itself (tests/analysers/test_beatnet.py).

``BeatNetTracker`` is a ``BeatTracker``: its aubio half still gives ``/mer/onset``, the periodicity
and the rhythm gate (BeatNet has no gate and beats on talk: the pipeline lets its beats out only
in music or while that gate is open, exactly as for aubio's); its beats are BeatNet's. Each block
is resampled to 22050 Hz (soxr HQ, streamed), cut into BeatNet frames (each leaves 32 ms after its
centre), run through the network and the filter. A beat carries the frame's stream time; the
published tempo is the mean of the last inter-beat intervals near their median (the filter's own
tempo is quantised to whole frames: 187.5 or 176.5 BPM around 180), folded into
``[bpm_min, bpm_max]`` and smoothed as ``TempoSmoother`` does (a new tempo, octaves included,
after it has held 2 s). The beats BeatNet's filter skips (it declares one only where the network
fires) are filled in by ``GapFill``.

``HybridTracker`` (the default, ``[beat] tracker = "hybrid"``) runs both halves and sends aubio's
beats while the onset envelope is clearly periodic (``SourcePick``), BeatNet's elsewhere.

Cost per 20-ms frame: one 1411-point FFT, a 705 x 136 product, one LSTM step (2 x 150 cells) and
the filter's 1500 particles: `python -m bench.bench_beat_cost --beat-tracker beatnet`.
"""

from __future__ import annotations

import math
from collections import deque
from importlib import resources
from pathlib import Path

import numpy as np

from mer_live.analysers.beat import _RELATED, BeatConfig, BeatState, BeatTracker, fold_bpm
from mer_live.analysers.beatnet_dsp import HOP, SR, LogSpect
from mer_live.analysers.beatnet_pf import ParticleFilter
from mer_live.live.records import Event

N_FEAT, N_LAYERS, N_HID = 272, 2, 150


def beatnet_model_path(config: BeatConfig) -> Path:
    """``[beat] beatnet_path``, else the shipped ``beatnet-<beatnet_model>.onnx``."""
    if config.beatnet_path:
        return Path(config.beatnet_path)
    return Path(str(resources.files("mer_live.models").joinpath(f"beatnet-{config.beatnet_model}.onnx")))


def load_beatnet(path: Path):
    """An onnxruntime session on BeatNet's exported CRNN; a ``ModelError`` (one line) when the file
    is missing, not ONNX, or not the one-frame-with-state graph this tracker feeds."""
    from mer_live.inference.model import ModelError, open_session

    if not path.is_file():
        raise ModelError(f"BeatNet model {path} not found (set [beat] beatnet_path, or --beat-tracker aubio)")
    sess = open_session(path, f"BeatNet model {path} cannot be loaded", threads=1, provider="cpu",
                        log_severity=4)
    ins = {i.name: i.shape for i in sess.get_inputs()}
    outs = [o.name for o in sess.get_outputs()]
    if (set(ins) != {"feats", "h", "c"} or ins["feats"][-1] != N_FEAT
            or list(ins["h"]) != [N_LAYERS, 1, N_HID] or outs[:3] != ["act", "h_out", "c_out"]):
        raise ModelError(f"BeatNet model {path} is not a BeatNet CRNN export (inputs {ins}, outputs {outs}); "
                         "make one with `python -m train.beatnet_export`")
    return sess


class GapFill:
    """BeatNet's beats as they come, and the beats its filter skips (pure logic).

    Why not ``BeatClock``: BeatNet's filter declares a beat only where the network fires, so on a
    groove it skips some, but the beats it does declare are where it believes the beat is, phase
    changes included. So each of its beats goes out at once and re-anchors the grid (unless a
    filled beat went out less than ``near`` of a period before it: then it only re-anchors); when
    the stream passes the grid's next beat without one of BeatNet's, that one goes out (the
    flywheel), for at most ``hold_beats`` periods after BeatNet's last beat.
    """

    def __init__(self, hold_beats: float = 4.0, near: float = 0.4) -> None:
        self.hold_beats = hold_beats
        self.near = near
        self.grid_t = math.nan  #: stream time of the grid's last beat (published or anchored)
        self.last_net = -math.inf  #: stream time of BeatNet's last beat

    def step(self, t_now: float, beat: float | None, bpm: float) -> list[float]:
        """Advance to ``t_now`` with BeatNet's beat this frame (or None); the beats to publish now."""
        out: list[float] = []
        period = 60.0 / bpm if bpm > 0 else math.nan
        if beat is not None:
            if not (beat - self.grid_t < self.near * period):  # nan (no grid, no tempo): publish
                out.append(beat)
            self.grid_t = self.last_net = beat
        if bpm > 0 and math.isfinite(self.grid_t):
            hold = self.hold_beats * period
            while t_now >= self.grid_t + period and self.grid_t + period - self.last_net <= hold:
                self.grid_t += period
                out.append(self.grid_t)
        return out


class BeatNetTracker(BeatTracker):
    """Block analyser like ``BeatTracker`` (``reset``, ``process``, ``state``), beats from BeatNet."""

    #: beats BeatNet's filter skips filled by ``GapFill`` (False: its own beats only, as bench_beatnet)
    fill = True
    #: a rival tempo must hold this long to be published (``[beat] switch_s`` if that is shorter):
    #: BeatNet's beats already carry its filter's tempo prior, and a cut to a new tempo (5 cut items
    #: of bench_beatreal/beatset) got F 0.736 -> 0.859 mean with 2 s instead of aubio's 5 s
    switch_s = 2.0

    def __init__(self, config: BeatConfig | None = None, session=None) -> None:
        super().__init__(config)
        self._sess = session if session is not None else load_beatnet(beatnet_model_path(self.config))

    def reset(self, samplerate: int) -> None:
        import soxr

        super().reset(samplerate)
        self._resampler = (soxr.ResampleStream(self.samplerate, SR, 1, dtype="float32", quality="HQ")
                           if self.samplerate != SR else None)
        self._spec = LogSpect()
        self._pf = ParticleFilter(seed=self.config.beatnet_seed, faithful=False)
        self._h = np.zeros((N_LAYERS, 1, N_HID), np.float32)
        self._c = np.zeros((N_LAYERS, 1, N_HID), np.float32)
        self._t0: float | None = None  #: stream time of the first sample (frame 0's centre)
        self._frames = 0
        self._bn_beats = 0
        self._bpm = 0.0
        self._times: deque[float] = deque(maxlen=9)
        self._rival, self._rival_since = 0.0, 0.0
        self._last = (math.nan, math.nan)  #: the last beat's stream and wall time
        self._bn_clock = GapFill()  #: publishes BeatNet's beats, and the ones its filter skips
        self.last_act = np.zeros((0, 2), np.float32)  #: the activations of the last block's frames

    def _bn_tempo(self, t: float) -> float:
        """The published tempo after a beat at ``t``: mean of the last intervals near their median."""
        c = self.config
        if self._times and t - self._times[-1] > c.forget_s:
            self._times.clear()
            self._bpm = 0.0
        self._times.append(t)
        ibi = np.diff(np.asarray(self._times))
        ibi = ibi[(ibi >= 0.2) & (ibi <= 2.0)]
        if len(ibi) < 3:
            return self._bpm
        med = float(np.median(ibi))
        near = ibi[np.abs(ibi / med - 1) <= 0.15]
        raw = 60.0 / (float(np.mean(near)) if len(near) else med)
        if self._bpm <= 0:
            self._bpm = fold_bpm(raw, c.bpm_min, c.bpm_max)
            return self._bpm
        # folded into the range only, not towards the current tempo: BeatNet's beats are the beat, so
        # when they move to the other octave the tempo follows them (after switch_s)
        cand = fold_bpm(raw, c.bpm_min, c.bpm_max)
        if abs(math.log(cand / self._bpm)) <= math.log1p(0.06):
            a = 1.0 - math.exp(-med / c.smooth_s) if c.smooth_s > 0 else 1.0
            self._bpm = math.exp((1 - a) * math.log(self._bpm) + a * math.log(cand))
            self._rival = 0.0
        elif self._rival > 0 and abs(math.log(cand / self._rival)) <= math.log1p(0.06):
            if t - self._rival_since >= min(c.switch_s, self.switch_s):
                self._bpm, self._rival = cand, 0.0
        else:
            self._rival, self._rival_since = cand, t
        return self._bpm

    def process(self, mono: np.ndarray, t_end: float, wall: float) -> list[Event]:
        """One block: aubio's onsets and the rhythm gate (``BeatTracker``), BeatNet's beats."""
        if not self.config.enabled or self.samplerate <= 0:
            return []
        self._aubio_state: BeatState | None = None
        events = [e for e in super().process(mono, t_end, wall) if e.kind != "beat"]
        aub = self._aubio_state  #: what aubio's half would have published (its onsets, the gate)
        events += self._net_beats(mono, t_end, wall)
        if events or aub is not None:
            events.sort(key=lambda e: e.t)
            self._publish_beats(aub, self._bpm, self._bn_beats, *self._last)
        return events

    def _publish_beats(self, aub: BeatState | None, bpm: float, beats: int, last_t: float,
                       last_wall: float) -> None:
        """Publish this tracker's tempo, beat count and last beat with aubio's half's onsets,
        confidence and periodicity (``aub``: what aubio's half published this block, if it did)."""
        src = aub or self._state
        BeatTracker._publish(self, BeatState(bpm, beats, src.onsets, last_t, last_wall, src.confidence,
                                             self.rhythm, src.periodicity))

    def _net_beats(self, mono: np.ndarray, t_end: float, wall: float) -> list[Event]:
        """BeatNet's half over one block: its beats (and the ones ``GapFill`` fills in)."""
        events: list[Event] = []
        x = np.ascontiguousarray(mono, dtype=np.float32).reshape(-1)  # soxr takes contiguous only
        if self._t0 is None:
            self._t0 = t_end - len(x) / self.samplerate
        y = self._resampler.resample_chunk(x) if self._resampler is not None else x
        feats = self._spec.push(y)
        last_t, last_wall = self._last
        if len(feats):
            act, self._h, self._c = self._sess.run(None, {"feats": feats, "h": self._h, "c": self._c})
            self.last_act = act
            for a_beat, a_down in act:
                t_f = self._t0 + self._frames * (HOP / SR)
                self._frames += 1
                t_a = t_f if self._pf.step(float(a_beat), float(a_down)) else None
                bpm = self._bn_tempo(t_a) if t_a is not None else self._bpm
                # the flywheel keeps the beat through the beats BeatNet's filter skips (it declares
                # one only where the CRNN fires): 4 periods, 32 while the rhythm gate is open at
                # this period (as aubio's path)
                lag_p = 60.0 * self._per.fps / bpm if bpm > 0 else 0.0
                steady = (self.rhythm and lag_p > 0 and self._per.lag > 0
                          and min(abs(math.log2(self._per.lag / lag_p) - k) for k in _RELATED) <= 0.1)
                self._bn_clock.hold_beats = 32.0 if steady else 4.0
                outs = self._bn_clock.step(t_f, t_a, bpm) if self.fill else [t_a] if t_a is not None else []
                for t_b in outs:
                    self._bn_beats += 1
                    last_t, last_wall = t_b, wall - (t_end - t_b)
                    events.append(Event("beat", self._bn_beats, t_b, wall, bpm=bpm,
                                        strength=1.0 if t_b == t_a else 0.0))
        if self.fill and len(x):
            # a frame leaves the front end 32 ms after its centre and the network fires on a beat
            # a frame or two after it, so BeatNet's own beats come 40-90 ms late; the grid's next
            # beat goes out when the stream (not the last frame) reaches it, and BeatNet's beat,
            # when it comes near that one, only re-anchors the grid (``GapFill.near``); a re-phase
            # still goes out when BeatNet declares it (holding it back cost F: docs/show.md)
            for t_b in self._bn_clock.step(t_end, None, self._bpm):
                self._bn_beats += 1
                last_t, last_wall = t_b, wall - (t_end - t_b)
                events.append(Event("beat", self._bn_beats, t_b, wall, bpm=self._bpm, strength=0.0))
        self._last = (last_t, last_wall)
        return events

    def _publish(self, state: BeatState) -> None:
        """aubio's half publishes nothing itself (its bpm and beat count are not BeatNet's): kept."""
        self._aubio_state = state


class SourcePick:
    """Which tracker's beats go out, from the onset envelope's periodicity (pure logic).

    Why: on drum grooves whose onsets are clearly periodic (drum machines, clean kits, four on the
    floor, breakbeats) aubio's path is right where BeatNet skips or mis-phases beats (the known-grid
    drum set: aubio F 0.90, BeatNet 0.82), while on dense recordings (distorted guitars, a full
    mix) the comb is weak and BeatNet wins (the real-music set: 0.61 against 0.77). So aubio's beats
    go out once the comb's score, smoothed, reaches ``on``, and BeatNet's again once it falls under
    ``off``. The smoothing rises fast (``up_s``: a clean groove gets aubio's beats and tempo within
    its first bars) and falls slowly (``down_s``: one weak stretch does not switch). Chosen on both
    sets (docs/show.md, "The hybrid tracker").
    """

    def __init__(self, on: float = 0.65, off: float = 0.5, up_s: float = 1.0, down_s: float = 8.0) -> None:
        self.on, self.off, self.up_s, self.down_s = on, off, up_s, down_s
        self.level = 0.0  #: the smoothed comb score
        self.aubio = False  #: aubio's beats go out (else BeatNet's)

    def update(self, score: float, dt: float) -> bool:
        """Advance by ``dt`` seconds with the comb's current ``score``; True while aubio's beats go out.
        A score of 0 (no envelope history: the sound has just started) starts the level over."""
        if score <= 0:
            self.level = 0.0
        elif dt > 0:
            tau = self.up_s if score > self.level else self.down_s
            self.level += (1.0 - math.exp(-dt / tau)) * (score - self.level)
        if self.aubio and self.level < self.off:
            self.aubio = False
        elif not self.aubio and self.level >= self.on:
            self.aubio = True
        return self.aubio


class HybridTracker(BeatNetTracker):
    """``[beat] tracker = "hybrid"``: both trackers run; ``SourcePick`` says whose beats and tempo go
    out. A beat closer than ``near`` of a period to the last one sent is dropped, so a switch
    between the two never doubles a beat; the beat count is this tracker's own."""

    near = 0.4

    def reset(self, samplerate: int) -> None:
        super().reset(samplerate)
        self.pick = SourcePick()
        self._count = 0
        self._sent_t = -math.inf
        self._sent = (math.nan, math.nan)  #: the last sent beat's stream and wall time
        self._aubio_bpm = 0.0

    def process(self, mono: np.ndarray, t_end: float, wall: float) -> list[Event]:
        """One block through both trackers; the picked one's beats, aubio's onsets."""
        if not self.config.enabled or self.samplerate <= 0:
            return []
        self._aubio_state = None
        events = BeatTracker.process(self, mono, t_end, wall)
        aub = self._aubio_state
        if aub is not None:
            self._aubio_bpm = aub.bpm
        net = self._net_beats(mono, t_end, wall)
        use_aubio = self.pick.update(self._per.score, len(mono) / self.samplerate)
        cand = [e for e in events if e.kind == "beat"] if use_aubio else net
        out = [e for e in events if e.kind != "beat"]
        for e in sorted(cand, key=lambda e: e.t):
            if e.bpm > 0 and e.t - self._sent_t < self.near * 60.0 / e.bpm:
                continue
            self._count += 1
            self._sent_t = e.t
            self._sent = (e.t, wall - (t_end - e.t))
            out.append(Event("beat", self._count, e.t, wall, bpm=e.bpm, strength=e.strength))
        if out or aub is not None:
            out.sort(key=lambda e: e.t)
            self._publish_beats(aub, self._aubio_bpm if use_aubio else self._bpm, self._count, *self._sent)
        return out
