import numpy as np

from mer_live.ringbuffer import RingBuffer


def test_wraparound_random_blocks_preserves_stream():
    rng = np.random.default_rng(1)
    rb = RingBuffer(1000, channels=2)
    stream = np.arange(20000 * 2, dtype=np.float32).reshape(-1, 2)
    got, pos = [], 0
    while pos < len(stream):
        n = int(rng.integers(1, 400))
        rb.write(stream[pos : pos + n])
        pos += n
        if rng.random() < 0.7:
            got.append(rb.read_new())
    got.append(rb.read_new())
    out = np.concatenate(got)
    assert rb.frames_lost == 0
    np.testing.assert_array_equal(out, stream)


def test_overflow_keeps_newest_and_counts_lost():
    rb = RingBuffer(100)
    rb.write(np.arange(250, dtype=np.float32))
    out = rb.read_new()
    assert rb.frames_lost == 150
    np.testing.assert_array_equal(out[:, 0], np.arange(150, 250, dtype=np.float32))
    np.testing.assert_array_equal(rb.latest(10)[:, 0], np.arange(240, 250, dtype=np.float32))
