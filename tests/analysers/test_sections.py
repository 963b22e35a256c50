"""SectionDetector on self-made audio fed in realistic blocks: a change of music gives one
section event at the join, steady music none, a build -> drop one drop; plus two real 4Q clips
joined (skips without ../shared/data)."""

from __future__ import annotations

import csv
import time

import numpy as np
import pytest

from mer_live.analysers.sections import SectionConfig, SectionDetector, checkerboard_novelty, mel_matrix
from mer_live.common.validate import ShowConfigError
from mer_live.live.records import Estimate
from tests.grooves import build_drop, groove, pad


def feed(det: SectionDetector, x: np.ndarray, sr: int, seed: int = 0, observe=None):
    rng = np.random.default_rng(seed)
    events, i = [], 0
    while i < len(x):
        n = int(rng.integers(int(0.005 * sr), int(0.05 * sr) + 1))
        b = x[i:i + n]
        i += len(b)
        if observe is not None:
            det.observe(observe)
        events += det.process(b, (i - 1) / sr, 100.0 + i / sr)
    return events


def detector(sr: int, **kw) -> SectionDetector:
    d = SectionDetector(SectionConfig(**kw))
    d.reset(sr)
    return d


@pytest.mark.parametrize("order", ["groove->pad", "pad->groove"])
def test_two_pieces_joined_give_one_section_at_the_join(order: str) -> None:
    sr = 44100
    a, _ = groove(124.0, 25.0, sr, seed=1, fills=True)
    b = pad(25.0, sr, seed=2)
    x = np.concatenate([a, b] if order == "groove->pad" else [b, a])
    ev = feed(detector(sr), x, sr)
    sections = [e for e in ev if e.kind == "section"]
    assert len(sections) == 1, [(e.t, e.strength) for e in sections]
    s = sections[0]
    assert abs(s.t - 25.0) <= 1.0 and s.count == 1 and s.strength >= SectionConfig().threshold
    assert s.wall - 100.0 > s.t  # published after the change (the kernel needs the future half)
    if order == "groove->pad":  # (pad -> groove is a drop as well: bass-less music, then the bass)
        assert not [e for e in ev if e.kind == "drop"]


def test_steady_music_gives_nothing() -> None:
    sr = 48000
    x, _ = groove(132.0, 60.0, sr, seed=7, swing=0.2, fills=True)
    ev = feed(detector(sr), x, sr)
    assert ev == []
    assert feed(detector(sr), pad(40.0, sr, seed=3), sr) == []


def test_silence_then_music_is_a_section_music_then_silence_is_not() -> None:
    sr = 48000
    g, _ = groove(100.0, 20.0, sr, seed=8)
    z = np.zeros(10 * sr, dtype=np.float32)
    ev = feed(detector(sr), np.concatenate([z, g]), sr)
    assert [round(e.t) for e in ev if e.kind == "section"] == [10]
    assert not [e for e in ev if e.kind == "drop"]  # a song starting is not a drop
    ev = feed(detector(sr), np.concatenate([g, z]), sr)
    assert [e for e in ev if e.kind == "section"] == []


def test_build_and_drop_gives_one_drop_at_the_drop() -> None:
    sr = 48000
    x, t_drop = build_drop(sr, bpm=128.0, seed=0)
    det = detector(sr)
    ev = feed(det, x, sr)
    drops = [e for e in ev if e.kind == "drop"]
    assert len(drops) == 1 and abs(drops[0].t - t_drop) <= 0.5, [(e.t, e.strength) for e in drops]
    assert drops[0].wall - 100.0 > drops[0].t  # known only after it
    assert det.state().drops == 1 and det.state().last_drop_t == drops[0].t


def est(arousal: float) -> Estimate:
    return Estimate(t=0.0, wall=time.monotonic(), arousal_raw=arousal, valence_raw=0.5, arousal=arousal,
                    valence=0.5, level_rms_db=-20.0, level_peak_db=-6.0, silent=False, clipping=False,
                    input_ok=True, bad_samples=0, model_ms=1.0, latency_ms=2.0, overflows=0, hops_skipped=0)


def test_drop_arousal_gate_uses_observed_estimates() -> None:
    sr = 48000
    x, _ = build_drop(sr, bpm=140.0, seed=1, build_s=6.0)
    calm = feed(detector(sr, drop_min_arousal=0.7), x, sr, observe=est(0.4))
    wild = feed(detector(sr, drop_min_arousal=0.7), x, sr, observe=est(0.8))
    assert [e for e in calm if e.kind == "drop"] == []
    assert len([e for e in wild if e.kind == "drop"]) == 1


def test_novelty_is_zero_for_repeats_and_large_for_a_change() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(-30, 3, size=(8, 24))
    taper = np.ones(16)
    steady = checkerboard_novelty(np.concatenate([a, a[::-1]]), taper)
    change = checkerboard_novelty(np.concatenate([a, a + 20.0]), taper)
    assert abs(steady) < 0.3 and change > 2.0
    m = mel_matrix(22050, 1024, 24)
    assert m.shape == (24, 513) and np.allclose(m.sum(axis=1), 1.0)


@pytest.mark.parametrize("table, key", [
    ({"threshold": 0}, "threshold"),
    ({"kernel_s": 0.5}, "kernel_s"),
    ({"bands": 4}, "bands"),
    ({"drop_min_arousal": 2}, "drop_min_arousal"),
    ({"novelty": 1}, "unknown key 'novelty'"),
])
def test_config_errors_are_one_line_naming_the_key(table: dict, key: str) -> None:
    with pytest.raises(ShowConfigError) as e:
        SectionConfig.from_dict(table)
    assert "\n" not in str(e.value) and key in str(e.value) and str(e.value).startswith("[sections]")


@pytest.mark.data
def test_two_real_clips_joined(shared_data) -> None:
    import soundfile as sf

    with open(shared_data / "4q" / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    # the first clip (sorted by id) of Q2 (tense) and of Q4 (calm): different music by construction
    ids = [sorted(r["song"] for r in rows if r["quadrant"] == q)[0] for q in ("Q2", "Q4")]
    clips = []
    for i in ids:
        x, sr = sf.read(str(shared_data / "4q" / "audio" / f"{i}.mp3"), dtype="float32", always_2d=True)
        clips.append(x.mean(axis=1))
    join_t = len(clips[0]) / sr
    ev = feed(detector(sr), np.concatenate(clips), sr)
    near = [e for e in ev if e.kind == "section" and abs(e.t - join_t) <= 3.0]
    assert len(near) == 1, ([(round(e.t, 1), round(e.strength, 2)) for e in ev], join_t)


class _PerFftDetector(SectionDetector):
    """The detector as it was before issue #28: one FFT at a time, as each one's audio arrived."""

    def reset(self, samplerate: int) -> None:
        super().reset(samplerate)
        self._buf = np.zeros(0, dtype=np.float32)
        self.frames: list[np.ndarray] = []

    def process(self, mono: np.ndarray, t_end: float, wall: float) -> list:
        x = np.asarray(mono, dtype=np.float32).reshape(-1)
        buf = np.concatenate([self._buf, x]) if self._buf.size else x
        n, nf, sr = len(buf), self.n_fft, self.samplerate
        events, i = [], 0
        while i + nf <= n:
            seg = buf[i:i + nf]
            i += nf
            p = np.abs(np.fft.rfft(seg * self._window)) ** 2 / self._wnorm
            self._acc_mel += self._mel @ p
            self._acc_pow += float(p.sum())
            self._acc_bass += float(p[self._bass].sum())
            self._acc_n += 1
            if self._acc_n >= self.frame_ffts:
                events += self._frame(t_end - (n - i) / sr, wall)
        self._buf = buf[i:].copy()
        return events


@pytest.mark.parametrize("sr", [22050, 44100, 48000])
def test_frame_at_a_time_ffts_equal_the_per_fft_path(sr: int) -> None:
    """The FFTs of a frame run together when its audio is complete (issue #28): the same events at
    the same times and strengths, the same features within 1e-3 dB (float32 sums in another order)."""
    a, _ = groove(124.0, 20.0, sr, seed=1, fills=True)
    b, _ = build_drop(sr)
    x = np.concatenate([a, pad(15.0, sr, seed=2), np.zeros(sr, np.float32), b]).astype(np.float32)
    new, old = detector(sr), _PerFftDetector(SectionConfig())
    old.reset(sr)
    ev_new, ev_old = feed(new, x, sr, seed=3), feed(old, x, sr, seed=3)
    assert [e.kind for e in ev_old].count("section") >= 2 and "drop" in [e.kind for e in ev_old]
    assert [(e.kind, e.count, e.wall) for e in ev_new] == [(e.kind, e.count, e.wall) for e in ev_old]
    assert np.allclose([e.t for e in ev_new], [e.t for e in ev_old], rtol=0, atol=1e-9)
    assert np.allclose([e.strength for e in ev_new], [e.strength for e in ev_old], rtol=0, atol=1e-4)
    assert len(new._feats) == len(old._feats)
    assert max(float(np.abs(f - g).max()) for f, g in zip(new._feats, old._feats, strict=True)) < 1e-3
    assert abs(new.state().novelty - old.state().novelty) < 1e-4
