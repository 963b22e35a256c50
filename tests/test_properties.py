"""Property tests (hypothesis) for the pieces every hop depends on: the ring buffer and the smoother.

Why property tests: the ring's wraparound and overflow paths, and the smoother's attack/release
arithmetic, fail only for particular block sizes or value sequences that hand-picked examples miss.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mer_live.ringbuffer import RingBuffer

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
