"""Property tests (hypothesis) for the pieces every hop depends on: the ring buffer and the smoother.

Why property tests: the ring's wraparound and overflow paths, and the smoother's attack/release
arithmetic, fail only for particular block sizes or value sequences that hand-picked examples miss.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mer_live.live.ringbuffer import RingBuffer

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _stream(start: int, n: int, channels: int) -> np.ndarray:
    """Frames whose values encode their absolute position (exact in float32 below 2**24)."""
    idx = np.arange(start, start + n, dtype=np.int64)[:, None] * channels + np.arange(channels)[None, :]
    return idx.astype(np.float32)


# ops: ("w", n) writes n frames; ("r", m) reads with max_frames m (None = all)
ops_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("w"), st.integers(0, 300)),
        st.tuples(st.just("r"), st.one_of(st.none(), st.integers(0, 300))),
    ),
    min_size=1,
    max_size=60,
)


@SETTINGS
@given(capacity=st.integers(1, 257), channels=st.integers(1, 3), ops=ops_strategy)
def test_ring_reads_exactly_the_unlost_stream(capacity, channels, ops):
    ring = RingBuffer(capacity, channels)
    written = 0
    read_pos = 0  # reference consumer position
    lost = 0
    got = []
    for op, n in ops:
        if op == "w":
            block = _stream(written, n, channels)
            ring.write(block if channels > 1 or n % 2 else block[:, 0])  # mono may come 1-D
            written += n
        else:
            pending = written - read_pos
            if pending > capacity:  # reference: keep the newest `capacity`, count the rest lost
                lost += pending - capacity
                read_pos = written - capacity
                pending = capacity
            if n is not None:
                pending = min(pending, n)
            out = ring.read_new(n)
            assert out.shape == (pending, channels) and out.dtype == np.float32
            np.testing.assert_array_equal(out, _stream(read_pos, pending, channels))
            read_pos += pending
            got.append(out)
        assert ring.frames_lost == lost
        assert ring.frames_written == written
        assert ring.available() == min(written - read_pos, capacity)
    # nothing is invented or duplicated: what was read plus what was lost plus what is still
    # pending accounts for every frame written
    n_read = sum(g.shape[0] for g in got)
    assert n_read + ring.frames_lost + (written - read_pos) == written


@SETTINGS
@given(capacity=st.integers(1, 200), blocks=st.lists(st.integers(1, 500), min_size=1, max_size=20))
def test_ring_overflow_keeps_newest_and_counts_lost(capacity, blocks):
    ring = RingBuffer(capacity, 1)
    total = sum(blocks)
    pos = 0
    for n in blocks:
        ring.write(_stream(pos, n, 1))
        pos += n
    out = ring.read_new()
    keep = min(total, capacity)
    np.testing.assert_array_equal(out, _stream(total - keep, keep, 1))
    assert ring.frames_lost == total - keep
    assert ring.read_new().shape == (0, 1)  # a second read finds nothing new


@SETTINGS
@given(
    capacity=st.integers(1, 200),
    blocks=st.lists(st.integers(0, 300), max_size=15),
    frames=st.integers(0, 200),
)
def test_ring_latest_is_newest_frames_zero_padded(capacity, blocks, frames):
    frames = min(frames, capacity)
    ring = RingBuffer(capacity, 2)
    pos = 0
    for n in blocks:
        ring.write(_stream(pos, n, 2))
        pos += n
    before = ring.available()
    out = ring.latest(frames)
    assert out.shape == (frames, 2)
    have = min(frames, pos)
    expect = np.zeros((frames, 2), np.float32)
    if have:
        expect[frames - have :] = _stream(pos - have, have, 2)
    np.testing.assert_array_equal(out, expect)
    assert ring.available() == before  # latest() does not consume


# ----------------------------------------------------------------------------- smoother

from mer_live.live.smoothing import Smoother  # noqa: E402

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
any_float = st.floats(allow_nan=True, allow_infinity=True)
times = st.floats(0.0, 10.0, allow_nan=False)


@SETTINGS
@given(
    attack=times,
    release=times,
    on_silence=st.sampled_from(["hold", "neutral"]),
    steps=st.lists(st.tuples(any_float, any_float, st.floats(0, 5), st.booleans()), min_size=1, max_size=80),
)
def test_smoother_output_is_finite_and_in_unit_range(attack, release, on_silence, steps):
    sm = Smoother(attack, release, on_silence=on_silence, neutral_s=1.0)
    for a, v, dt, silent in steps:
        y = sm.update(np.array([a, v]), dt, silent=silent)
        assert y.shape == (2,)
        assert np.all(np.isfinite(y)) and np.all((y >= 0.0) & (y <= 1.0))


@SETTINGS
@given(
    start=st.floats(0, 1),
    target=st.floats(0, 1),
    tau=st.floats(0.01, 5.0),
    dts=st.lists(st.floats(0.001, 1.0), min_size=1, max_size=60),
)
def test_smoother_step_response_is_monotone_without_overshoot(start, target, tau, dts):
    sm = Smoother(tau, tau * 2)
    prev = sm.update(np.array([start, start]), 0.1)
    np.testing.assert_allclose(prev, [start, start])  # the first trusted value is adopted at once
    for dt in dts:
        y = sm.update(np.array([target, target]), dt)
        if target >= start:
            assert np.all(y >= prev - 1e-12) and np.all(y <= target + 1e-12)
        else:
            assert np.all(y <= prev + 1e-12) and np.all(y >= target - 1e-12)
        prev = y


@SETTINGS
@given(
    attack=st.floats(0.01, 2.0),
    ratio=st.floats(1.5, 20.0),
    dt=st.floats(0.01, 0.5),
    n=st.integers(1, 30),
)
def test_smoother_attack_faster_than_release(attack, ratio, dt, n):
    release = attack * ratio
    up, down = Smoother(attack, release), Smoother(attack, release)
    up.update(np.array([0.0, 0.0]), dt)
    down.update(np.array([1.0, 1.0]), dt)
    for _ in range(n):
        yu = up.update(np.array([1.0, 1.0]), dt)
        yd = down.update(np.array([0.0, 0.0]), dt)
    rose, fell = yu[0] - 0.0, 1.0 - yd[0]
    assert rose >= fell > 0.0
    if fell < 1.0 - 1e-9:  # strictly faster unless both have converged to float precision
        assert rose > fell


@SETTINGS
@given(tau=st.floats(0.05, 3.0), dt=st.floats(0.005, 0.5), k=st.integers(2, 8), target=st.floats(0, 1))
def test_smoother_depends_on_elapsed_time_not_hop_count(tau, dt, k, target):
    fine, coarse = Smoother(tau, tau), Smoother(tau, tau)
    fine.update(np.array([0.5, 0.5]), dt)
    coarse.update(np.array([0.5, 0.5]), dt)
    for _ in range(k):
        yf = fine.update(np.array([target, target]), dt)
    yc = coarse.update(np.array([target, target]), k * dt)
    np.testing.assert_allclose(yf, yc, atol=1e-9)


@SETTINGS
@given(value=st.floats(0, 1), dts=st.lists(st.floats(0.01, 2.0), min_size=1, max_size=30))
def test_smoother_silence_hold_and_neutral(value, dts):
    hold = Smoother(0.1, 0.1, on_silence="hold")
    neutral = Smoother(0.1, 0.1, on_silence="neutral", neutral_s=1.0)
    for sm in (hold, neutral):
        sm.update(np.array([value, value]), 0.1)
    prev_gap = abs(value - 0.5)
    for dt in dts:
        np.testing.assert_allclose(hold.update(np.array([0.0, 1.0]), dt, silent=True), [value, value])
        gap = abs(neutral.update(np.array([0.0, 1.0]), dt, silent=True)[0] - 0.5)
        assert gap <= prev_gap + 1e-12  # drifts towards neutral, never away
        prev_gap = gap
