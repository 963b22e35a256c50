"""Real-time scheduling of the audio-path threads (mer_live.live.realtime), through real threads.

Whether the OS grants SCHED_FIFO depends on the machine (root, CAP_SYS_NICE or an rtprio limit),
so each test first asks the kernel in a scratch thread and then checks that mer-live does what
that answer implies: the thread runs real-time, or it keeps its priority and says why once.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from mer_live.inference.model import Model
from mer_live.live.pipeline import Pipeline, PipelineConfig
from mer_live.live.realtime import is_realtime, promote
from mer_live.outputs.osc import OscConfig, OscSender
from mer_live.sources.filesource import FileSource


def _in_thread(fn):
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join(10)
    return out[0]


def _granted() -> bool:
    return _in_thread(lambda: promote() is None)


def test_promote_changes_only_the_calling_thread() -> None:
    why, rt_after = _in_thread(lambda: (promote(), is_realtime()))
    assert not is_realtime(), "the test's own thread must not have been promoted"
    if why is None:
        assert rt_after
    else:
        assert not rt_after and "\n" not in why and "normal priority" in why


def test_promote_refuses_a_priority_out_of_range() -> None:
    for p in (0, 100):
        with pytest.raises(ValueError, match="1..99"):
            promote(p)


def test_pipeline_thread_runs_realtime_when_asked(loudness_model, caplog) -> None:
    granted = _granted()
    model = Model(loudness_model, provider="cpu")
    seen: list[bool] = []
    audio = (0.1 * np.random.default_rng(0).standard_normal(16000 * 3)).astype(np.float32)
    for realtime in (False, True):
        src = FileSource(audio, 16000, realtime=False)
        pl = Pipeline(src, model, PipelineConfig(realtime=realtime), [lambda e: seen.append(is_realtime())])
        with caplog.at_level(logging.WARNING):
            pl.start()
            assert pl.join(30.0)
        if not realtime:
            assert pl.realtime_active is None and seen and not any(seen)
        else:
            assert pl.realtime_active is granted
            assert all(s is granted for s in seen[-3:])  # sinks run on the pipeline thread
            warned = [r for r in caplog.records if "real-time scheduling" in r.getMessage()]
            assert len(warned) == (0 if granted else 1)
        seen.clear()


def test_osc_sender_thread_realtime_flag() -> None:
    granted = _granted()
    s = OscSender(OscConfig(targets=["127.0.0.1:9"], realtime=True, rate_hz=50))
    s.start()
    try:
        for _ in range(200):
            if s.realtime_active is not None:
                break
            threading.Event().wait(0.01)
    finally:
        s.stop()
    assert s.realtime_active is granted


def test_realtime_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="realtime"):
        PipelineConfig(realtime="yes").validate()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="realtime"):
        OscConfig(realtime=1).validate()  # type: ignore[arg-type]


def test_realtime_flag_sets_both_threads() -> None:
    from mer_live.cli import build_parser, overrides_from

    ov = overrides_from(build_parser().parse_args(["--realtime"]))
    assert ov[("pipeline", "realtime")][0] is True and ov[("osc", "realtime")][0] is True
    assert ("pipeline", "realtime") not in overrides_from(build_parser().parse_args([]))


def test_aligned_blocksize_divides_the_hop() -> None:
    from mer_live.sources.capture import aligned_blocksize

    assert aligned_blocksize(1600) == 100  # 0.1 s at 16 kHz
    assert aligned_blocksize(400) == 100  # 0.025 s at 16 kHz
    assert aligned_blocksize(4410) == 126  # 0.1 s at 44.1 kHz
    for hop in (1600, 400, 2205, 4800, 1000):
        b = aligned_blocksize(hop)
        assert hop % b == 0 and 32 <= b <= 128
    assert aligned_blocksize(1601) == 128  # a prime-ish hop: nothing divides it, the plain default
