"""pipeline.py end to end with real parts: FileSource -> soxr -> onnxruntime (loudness model) -> sinks."""

from __future__ import annotations

import logging
import math
import threading
import time

import numpy as np
import pytest
import soxr

from mer_live.common.framing import frame_windows, hop_samples, prepare_offline
from mer_live.inference.model import Model
from mer_live.live.pipeline import Pipeline, PipelineConfig
from mer_live.live.records import Estimate
from mer_live.sources.filesource import FileSource

SR = 22050


@pytest.fixture(scope="module")
def model(loudness_model) -> Model:
    return Model(loudness_model, provider="cpu")


def _run_unpaced(model: Model, audio: np.ndarray, sr: int, cfg: PipelineConfig, **kw) -> list[Estimate]:
    out: list[Estimate] = []
    src = FileSource(audio, sr, realtime=False, **kw)
    pl = Pipeline(src, model, cfg, [out.append])
    pl.start()
    assert pl.join(60.0), "pipeline did not finish by itself"
    assert not pl.running
    return out


def _busy_then_sparse(sr: int, seconds: float = 5.0) -> np.ndarray:
    rng = np.random.default_rng(7)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    loud = 0.3 * rng.standard_normal(n) + 0.3 * np.sign(np.sin(2 * np.pi * 110 * t))
    quiet = 0.01 * np.sin(2 * np.pi * 220 * t)
    for k in range(int(seconds * 2)):  # a soft pluck every 0.5 s
        i = int(k * 0.5 * sr)
        m = min(n - i, int(0.2 * sr))
        quiet[i : i + m] += 0.03 * np.sin(2 * np.pi * 440 * t[:m]) * np.exp(-t[:m] * 20)
    return np.concatenate([loud, quiet]).astype(np.float32)


def _assert_finite(est: list[Estimate]) -> None:
    for e in est:
        for k, v in vars(e).items():
            if isinstance(v, float):
                assert math.isfinite(v), f"{k} is {v} at t={e.t}"
        assert 0 <= e.arousal <= 1 and 0 <= e.valence <= 1
        assert 0 <= e.arousal_raw <= 1 and 0 <= e.valence_raw <= 1


def test_frame_windows_framing():
    x = np.arange(100, dtype=np.float32)
    ends, w = frame_windows(x, window=30, hop=10)
    np.testing.assert_array_equal(ends, [30, 40, 50, 60, 70, 80, 90, 100])
    np.testing.assert_array_equal(w[0], x[0:30])
    np.testing.assert_array_equal(w[-1], x[70:100])
    ends, w = frame_windows(x, window=25, hop=10)  # first boundary >= window is 30
    assert ends[0] == 30 and w.shape == (8, 25)
    np.testing.assert_array_equal(w[0], x[5:30])
    ends, w = frame_windows(x[:7], window=30, hop=10)  # short: one zero-left-padded window
    np.testing.assert_array_equal(ends, [7])
    np.testing.assert_array_equal(w[0, -7:], x[:7])
    assert not w[0, :-7].any()
    ends, w = frame_windows(np.zeros(0), 30, 10)
    assert ends.size == 0 and w.shape == (0, 30)


def test_unpaced_pipeline_equals_direct_model_runs(model):
    """The live path (ResampleStream in blocks) gives the same windows as soxr.resample + frame_windows."""
    rng = np.random.default_rng(11)
    x = (_busy_then_sparse(SR, 3.0) + 0.001 * rng.standard_normal(6 * SR)).astype(np.float32)
    cfg = PipelineConfig(dc_cutoff_hz=0.0, silence_db=-200.0)
    every = _run_unpaced(model, x, SR, cfg, blocksize=1000)
    y = soxr.resample(x, SR, model.sample_rate, quality="HQ")
    ends, wins = frame_windows(y, model.window_samples, hop_samples(cfg.hop_s, model.sample_rate))
    ref = model.predict(np.array(wins))
    est = [e for e in every if e.music]
    # before the first full window: level-only estimates from the first hop, neutral, no quadrant
    early = every[: len(every) - len(est)]
    assert [round(e.t, 6) for e in early] == [round(0.1 * k, 6) for k in range(1, 10)]
    assert all(not e.music and e.quadrant == 0 and (e.arousal, e.valence) == (0.5, 0.5) for e in early)
    assert all(e.level_rms_db > -20 for e in early)
    assert len(est) == len(ends) > 40
    np.testing.assert_allclose([e.t for e in est], ends / model.sample_rate, atol=1e-9)
    got = np.array([[e.arousal_raw, e.valence_raw] for e in est])
    np.testing.assert_allclose(got, ref, atol=1e-4)
    assert est[-1].hops_skipped == 0  # unpaced never skips


def test_full_chain_equals_prepare_offline(model):
    """Stereo, channel pick, gain and DC blocker: the live chain equals prepare_offline."""
    rng = np.random.default_rng(12)
    t = np.arange(4 * SR) / SR
    x = np.stack(
        [0.2 * np.sin(2 * np.pi * 300 * t) + 0.3, 0.05 * rng.standard_normal(t.size), 0.1 * np.sin(9 * t)], 1
    ).astype(np.float32)
    cfg = PipelineConfig(dc_cutoff_hz=20.0, gain_db=-3.0, pick=(1, 2), silence_db=-200.0)
    est = [e for e in _run_unpaced(model, x, SR, cfg, blocksize=777) if e.music]
    y = prepare_offline(x, SR, model.sample_rate, cfg)
    ends, wins = frame_windows(y, model.window_samples, hop_samples(cfg.hop_s, model.sample_rate))
    ref = model.predict(np.array(wins))
    got = np.array([[e.arousal_raw, e.valence_raw] for e in est])
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_short_file_gets_one_padded_window(model):
    x = (0.3 * np.random.default_rng(2).standard_normal(int(0.4 * SR))).astype(np.float32)
    every = _run_unpaced(model, x, SR, PipelineConfig(dc_cutoff_hz=0.0))
    est = [e for e in every if e.music]
    y = soxr.resample(x, SR, model.sample_rate, quality="HQ")
    ends, wins = frame_windows(y, model.window_samples, 1600)
    assert len(est) == 1 and ends.size == 1 and every[-1] is est[0]
    assert len(every) == 5  # level-only estimates at 0.1 .. 0.4 s, then the padded window
    assert est[0].t == pytest.approx(ends[0] / model.sample_rate)
    np.testing.assert_allclose([est[0].arousal_raw, est[0].valence_raw], model.predict(wins)[0], atol=1e-4)


def test_arousal_falls_from_loud_busy_to_quiet_sparse(model):
    est = _run_unpaced(model, _busy_then_sparse(SR), SR, PipelineConfig())
    ts = np.array([e.t for e in est])
    a = np.array([e.arousal for e in est])
    loud, quiet = a[ts < 5.0], a[ts > 8.0]
    assert loud.mean() > 0.8 and quiet.mean() < 0.3
    assert not any(e.silent for e in est)  # the quiet part is quiet, not silent
    # release smoothing: the fall is gradual, not a jump
    drop = np.diff(a[(ts > 5.0) & (ts < 7.0)])
    assert drop.min() > -0.2 and drop.sum() < -0.3


def test_nan_laden_input_never_yields_nan(model):
    rng = np.random.default_rng(5)
    x = (0.2 * rng.standard_normal((4 * SR, 2))).astype(np.float32)
    idx = rng.choice(x.size, 500, replace=False)
    x.flat[idx[:200]] = np.nan
    x.flat[idx[200:400]] = np.inf
    x.flat[idx[400:]] = -np.inf
    x[SR : SR + 2000, :] = np.nan  # a burst: whole blocks of garbage
    est = _run_unpaced(model, x, SR, PipelineConfig())
    assert len(est) > 20
    _assert_finite(est)
    reported = sum(e.bad_samples for e in est)
    # every bad sample is counted in the estimate that covers it (audio after the last boundary is not)
    assert (~np.isfinite(x[: int(3.5 * SR)])).sum() <= reported <= (~np.isfinite(x)).sum()
    assert max(e.bad_samples for e in est) >= 2000  # the burst shows up in one or two hops


def test_silence_is_flagged_and_values_hold(model):
    rng = np.random.default_rng(9)
    x = np.concatenate([0.3 * rng.standard_normal(3 * SR), np.zeros(4 * SR)]).astype(np.float32)
    est = _run_unpaced(model, x, SR, PipelineConfig(on_silence="hold", silence_s=0.5))
    ts = np.array([e.t for e in est])
    silent = np.array([e.silent for e in est])
    assert not silent[ts <= 3.0].any()
    assert silent[ts >= 3.6].all()  # 0.5 s of quiet hops after the audio stops (+ resampler tail)
    held = [e for e in est if e.silent]
    a0 = held[0].arousal
    assert all(e.arousal == pytest.approx(a0) for e in held)  # held, although the model would say ~0
    assert all(e.arousal_raw > 0.9 for e in held)  # raw values hold the last trusted output
    assert all(e.model_ms == 0.0 for e in held)  # the model is not run on silence
    assert held[-1].level_rms_db == -120.0


def test_silence_drifts_to_neutral(model):
    rng = np.random.default_rng(9)
    x = np.concatenate([0.3 * rng.standard_normal(3 * SR), np.zeros(8 * SR)]).astype(np.float32)
    est = _run_unpaced(model, x, SR, PipelineConfig(on_silence="neutral", neutral_s=1.0))
    assert est[-1].silent and abs(est[-1].arousal - 0.5) < 0.02
    assert max(e.arousal for e in est) > 0.9


def test_failing_sink_does_not_stop_the_show(model, caplog):
    calls = []

    def broken(e: Estimate) -> None:
        calls.append(e)
        raise RuntimeError("boom")

    good: list[Estimate] = []
    src = FileSource((0.1 * np.random.default_rng(1).standard_normal(3 * SR)).astype(np.float32), SR,
                     realtime=False)
    pl = Pipeline(src, model, PipelineConfig(), [broken, good.append])
    with caplog.at_level(logging.WARNING, logger="mer_live.live.pipeline"):
        pl.start()
        assert pl.join(30.0)
    assert len(good) == len(calls) > 10
    assert pl.stats["sink_errors"] == len(calls)
    msgs = [r.getMessage() for r in caplog.records if "boom" in r.getMessage()]
    assert len(msgs) == 1 and "\n" not in msgs[0]  # rate-limited, one line


def test_live_pipeline_skips_when_behind(model):
    """A sink that stalls the thread makes boundaries pile up; only the newest is evaluated."""
    stalled = threading.Event()

    def slow_once(e: Estimate) -> None:
        if not stalled.is_set():
            stalled.set()
            time.sleep(0.6)

    est: list[Estimate] = []
    x = (0.1 * np.random.default_rng(3).standard_normal(int(2.0 * SR))).astype(np.float32)
    src = FileSource(x, SR, realtime=True, blocksize=512)
    pl = Pipeline(src, model, PipelineConfig(), [slow_once, est.append])
    pl.start()
    try:
        assert pl.join(15.0)
    finally:
        pl.stop()
    assert pl.hops_skipped >= 2
    assert len(est) + pl.hops_skipped == 20  # boundaries at 0.1, 0.2, ..., 2.0 s
    assert est[-1].hops_skipped == pl.hops_skipped
    _assert_finite(est)


def test_live_pipeline_wakes_on_audio_not_by_polling(model):
    """A live pipeline sleeps until the ring holds the next boundary's audio (the write wakes it):
    about one pass per hop, not a pass per block or per millisecond; and stop() ends a long wait."""
    est: list[Estimate] = []
    x = (0.1 * np.random.default_rng(5).standard_normal(int(2.5 * SR))).astype(np.float32)
    src = FileSource(x, SR, realtime=True, blocksize=256)  # ~86 writes per second
    pl = Pipeline(src, model, PipelineConfig(hop_s=0.1), [est.append])
    pl.start()
    try:
        assert pl.join(15.0)
    finally:
        pl.stop()
    assert len(est) == 25  # boundaries at 0.1, 0.2, ..., 2.5 s
    assert sum(e.music for e in est) == 16  # a full window behind 1.0, 1.1, ..., 2.5 s
    # 2.5 s of audio in ~215 writes; a pass per hop plus the start and the end
    assert pl.wakeups <= 2 * len(est) + 12, pl.wakeups
    src2 = FileSource(x, SR, realtime=True, blocksize=256)
    pl2 = Pipeline(src2, model, PipelineConfig(hop_s=5.0))  # the first window needs ~5 s of audio
    pl2.start()
    t0 = time.monotonic()
    pl2.stop(timeout=10.0)
    assert not pl2.running and time.monotonic() - t0 < 4.0  # not the 5-s wait


def test_lost_input_publishes_input_not_ok(model):
    est: list[Estimate] = []
    src = FileSource((0.2 * np.random.default_rng(4).standard_normal(60 * SR)).astype(np.float32), SR,
                     realtime=True, blocksize=512)
    cfg = PipelineConfig(on_silence="neutral", neutral_s=0.5, lost_after_s=0.2)
    pl = Pipeline(src, model, cfg, [est.append])
    pl.start()
    try:
        deadline = time.monotonic() + 10
        while not any(e.input_ok for e in est) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert any(e.input_ok for e in est)
        src.stop()  # the "device" goes away: no audio, ok False
        n_before = len(est)
        while not (len(est) > n_before + 5 and not est[-1].input_ok) and time.monotonic() < deadline:
            time.sleep(0.02)
        message = pl.message  # while running: stop() would replace it with "stopped"
    finally:
        pl.stop()
    lost = [e for e in est[n_before:] if not e.input_ok]
    assert len(lost) >= 5 and all(e.silent and not e.music and e.quadrant == 0 for e in lost)
    assert message.startswith("no input from ")
    _assert_finite(est)


def test_config_validation_is_one_line():
    for bad in (dict(hop_s=0), dict(on_silence="freeze"), dict(pick=(0,)), dict(pick=(1, 1)),
                dict(gain_db=float("nan")), dict(attack_s=-1)):
        with pytest.raises(ValueError) as ei:
            PipelineConfig(**bad).validate()
        assert "\n" not in str(ei.value)
    assert PipelineConfig(pick=[2, 1]).validate().pick == (2, 1)


def test_pick_beyond_source_channels_is_refused(model):
    src = FileSource(np.zeros((SR, 2), np.float32), SR, realtime=False)
    with pytest.raises(ValueError, match=r"\[3\].*2 channel"):
        Pipeline(src, model, PipelineConfig(pick=(3,)))


def test_set_source_swaps_and_resets_stream_time(model):
    rng = np.random.default_rng(8)
    a = FileSource((0.3 * rng.standard_normal(60 * SR)).astype(np.float32), SR, realtime=True, blocksize=512)
    b = FileSource((0.003 * rng.standard_normal(2 * 44100, )).astype(np.float32), 44100, realtime=False)
    est: list[Estimate] = []
    pl = Pipeline(a, model, PipelineConfig(attack_s=0, release_s=0), [est.append])
    pl.start()
    try:
        deadline = time.monotonic() + 10
        while sum(e.music for e in est) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert est and est[-1].music and est[-1].arousal > 0.8
        pl.set_source(b)
        assert pl.join(15.0)  # b is a finite file: the pipeline ends after it
    finally:
        pl.stop()
    assert pl.source is b and not a.ok
    quiet = [e for e in est if e.arousal < 0.2]
    assert quiet and quiet[0].t == pytest.approx(1.0)  # hop clock restarted with the new source


def test_arrivals_use_the_sources_write_log_else_the_read_times():
    """Latency starts when a window's last frame reached the ring: the write that completed it
    (a source's write_log), or for a source without one the first read that could find it."""
    from collections import deque
    from types import SimpleNamespace

    from mer_live.live.arrivals import Arrivals
    from mer_live.live.ringbuffer import RingBuffer

    logged = SimpleNamespace(ring=RingBuffer(4096, 1), write_log=deque([(100, 1.0), (200, 2.0), (300, 3.0)]))
    a = Arrivals(logged, 48000, 16000)  # model sample 50 is source frame ~150: the 2nd write
    assert a.written_at(50) == 2.0 and a.written_at(33) == 1.0 and a.written_at(100) == 3.0
    a.before_read()  # a logging source keeps no read times of its own
    assert a.written_at(50) == 2.0
    silent = SimpleNamespace(ring=RingBuffer(4096, 1))
    b = Arrivals(silent, 16000, 16000)
    silent.ring.write(np.zeros((160, 1), np.float32))
    t0 = time.monotonic()
    b.before_read()
    time.sleep(0.02)
    silent.ring.write(np.zeros((160, 1), np.float32))
    b.before_read()
    first = b.written_at(160)  # frame 159 was there at the first read
    assert t0 <= first < t0 + 0.015
    assert b.written_at(161) - first >= 0.019  # frame 160 only at the second read
