import numpy as np

from mer_live.live.ringbuffer import RingBuffer


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


def test_wait_for_returns_when_the_target_is_written():
    """The consumer wakes at the write that reaches its target, not at the timeout: when it
    returns, the producer (one block every 20 ms) has written at most a few blocks past it."""
    import threading
    import time

    rb = RingBuffer(10_000)
    block = np.ones(100, np.float32)
    done = threading.Event()

    def produce() -> None:
        for _ in range(60):
            rb.write(block)
            time.sleep(0.02)
        done.set()

    t = threading.Thread(target=produce)
    t.start()
    try:
        assert rb.wait_for(1_000, timeout=30.0)
        at_wake = rb.frames_written
        assert 1_000 <= at_wake <= 1_300, at_wake
        assert rb.wait_for(at_wake, timeout=30.0)  # already there: returns at once
        assert rb.frames_written - at_wake <= 100
    finally:
        t.join()
    assert done.is_set()
    assert not rb.wait_for(rb.frames_written + 1, timeout=0.05)  # nothing comes: times out, False


def test_wake_ends_a_wait_from_another_thread():
    import threading

    rb = RingBuffer(100)
    woke = threading.Event()

    def waiter() -> None:
        rb.wait_for(10, timeout=30.0)
        woke.set()

    t = threading.Thread(target=waiter)
    t.start()
    rb.wake()
    assert woke.wait(10.0), "wake() did not end the wait"
    t.join()
    assert rb.frames_written == 0


def test_latest_is_zeros_before_the_first_write_and_the_newest_frames_after():
    """The model's first windows: zeros where no audio was yet (the copy is no longer pre-zeroed
    as a whole, issue #28), over recycled memory that held other values."""
    for _ in range(3):
        junk = np.full((5000, 1), 7.0, np.float32)  # freed memory a later copy may land on
        del junk
        rb = RingBuffer(1000)
        assert not rb.latest(600).any()
        rb.write(np.arange(1, 251, dtype=np.float32))
        w = rb.latest(600)[:, 0]
        np.testing.assert_array_equal(w[:350], 0.0)
        np.testing.assert_array_equal(w[350:], np.arange(1, 251, dtype=np.float32))
        rb.write(np.arange(251, 1301, dtype=np.float32))  # wrapped: no zeros any more
        np.testing.assert_array_equal(rb.latest(1000)[:, 0], np.arange(301, 1301, dtype=np.float32))
