"""A file (or array) played into a ring buffer as if it came from an audio interface.

Used for rehearsal without a band, for the bundled demo, and for soak and end-to-end tests. It
implements the Source interface of docs/architecture.md (``samplerate, channels, ring, name,
start(), stop(), finished, ok, overflows, message``).

* ``realtime=True``: a thread writes ``blocksize`` frames at a time, paced by ``time.monotonic``
  against an absolute schedule (block k is due at start + (k+1) * blocksize / sr), so there is no
  drift however long it runs; it behaves like a capture callback.
* ``realtime=False``: unpaced, as fast as the consumer reads. It never overwrites unread audio
  (it waits for ring space: back-pressure), so nothing is lost and results are deterministic.
* ``play=True`` also plays the audio on the default output device (sounddevice), so the
  performer hears what the lights react to; no output device -> one warning, carry on silently.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from mer_live.live.ringbuffer import RingBuffer

log = logging.getLogger(__name__)


class SourceError(Exception):
    """An input that cannot be opened or decoded; the message is one line naming the input."""


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode ``path`` with soundfile (wav, flac, ogg, mp3, ...) to float32 ``[frames, channels]``."""
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise SourceError(f"audio file not found: {p}")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if first.startswith("Error opening"):  # libsndfile's text here blames the path, misleadingly
            first = "not a valid or supported audio file (wav, flac, ogg, mp3)"
        raise SourceError(f"cannot decode audio file {p.name}: {first}") from None
    if data.shape[0] == 0:
        raise SourceError(f"audio file {p.name} contains no audio")
    return np.ascontiguousarray(data), int(sr)


class FileSource:
    """Audio from a file or an array, written into ``ring`` from its own thread."""

    def __init__(
        self,
        audio: str | Path | np.ndarray,
        samplerate: int | None = None,
        *,
        realtime: bool = True,
        play: bool = False,
        loop: bool = False,
        blocksize: int = 1024,
        ring_seconds: float = 10.0,
        name: str | None = None,
    ) -> None:
        if isinstance(audio, np.ndarray):
            if samplerate is None:
                raise SourceError("FileSource from an array needs its samplerate")
            a = np.asarray(audio, dtype=np.float32)
            if a.ndim == 1:
                a = a[:, None]
            if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
                raise SourceError(f"FileSource: expected audio [frames] or [frames, channels], got {a.shape}")
            self.data = np.ascontiguousarray(a)
            self.samplerate = int(samplerate)
            self.name = name or "array"
        else:
            self.data, sr = load_audio(audio)
            if samplerate is not None and int(samplerate) != sr:
                raise SourceError(
                    f"{Path(audio).name} is {sr} Hz, not {samplerate} Hz (resampling happens in the pipeline)"
                )
            self.samplerate = sr
            self.name = name or Path(audio).name
        if self.samplerate <= 0:
            raise SourceError(f"FileSource: bad samplerate {self.samplerate}")
        if blocksize < 1:
            raise SourceError(f"FileSource: blocksize must be >= 1, got {blocksize}")
        self.channels = int(self.data.shape[1])
        self.realtime = bool(realtime)
        self.play = bool(play)
        self.loop = bool(loop)
        self.blocksize = int(blocksize)
        cap = max(int(ring_seconds * self.samplerate), 2 * self.blocksize)
        self.ring = RingBuffer(cap, self.channels)
        self.overflows = 0  # a file never overflows; the ring's own losses are in ring.frames_lost
        self.message = "ready"
        #: (frames written in total, time.monotonic() of that write) for recent writes, newest last:
        #: lets the pipeline measure latency from the moment a sample reached the ring.
        self.write_log: deque[tuple[int, float]] = deque(maxlen=512)
        self._finished = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._out_stream = None
        self._out_q: queue.Queue[np.ndarray] | None = None

    # -- Source interface -------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """True once a non-looping source has written all its audio."""
        return self._finished

    @property
    def ok(self) -> bool:
        """A file is always present (a stopped source reports False)."""
        return self._thread is not None and not self._stop.is_set()

    @property
    def duration_s(self) -> float:
        return self.data.shape[0] / self.samplerate

    def unread(self) -> int:
        """Frames written to the ring that the consumer has not read yet."""
        return self.ring.available()

    def start(self) -> None:
        """Start (or restart from the beginning) writing into the ring."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._finished = False
        self.ring.clear()
        self.write_log.clear()
        if self.play and self.realtime:
            self._open_output()
        self.message = f"playing {self.name}" + (" (unpaced)" if not self.realtime else "")
        self._thread = threading.Thread(target=self._run, name=f"FileSource({self.name})", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop writing and close the output stream; idempotent, returns within ``timeout``."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        self._close_output()
        if not self._finished:
            self.message = "stopped"

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the writer thread to end; True when it has."""
        t = self._thread
        if t is None:
            return True
        t.join(timeout)
        return not t.is_alive()

    # -- writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        data, bs, sr = self.data, self.blocksize, self.samplerate
        n = data.shape[0]
        pos = 0
        k = 0  # blocks written since the schedule started
        t0 = time.monotonic()
        while not self._stop.is_set():
            if pos >= n:
                if not self.loop:
                    break
                pos = 0
            block = data[pos : pos + bs]
            if self.realtime:
                due = t0 + (k + 1) * bs / sr  # the block "arrives" once it has been played
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                if delay < -1.0:  # badly stalled (suspend, debugger): restart the schedule
                    t0, k = time.monotonic(), 0
            else:
                while self.ring.capacity - self.ring.available() < block.shape[0]:
                    if self._stop.wait(0.002):
                        return
            self.ring.write(block)
            self.write_log.append((self.ring.frames_written, time.monotonic()))
            if self._out_q is not None:
                try:
                    self._out_q.put_nowait(block)
                except queue.Full:
                    pass
            pos += block.shape[0]
            k += 1
        if pos >= n and not self.loop:
            self._finished = True
            self.message = f"finished {self.name}"

    # -- optional monitoring output ---------------------------------------------------------
    def _open_output(self) -> None:
        """Open a callback output stream fed from a small queue; warn once if impossible."""
        try:
            import sounddevice as sd

            self._out_q = queue.Queue(maxsize=32)
            q, ch = self._out_q, self.channels
            pending: list[np.ndarray] = []

            def callback(outdata, frames, _time, _status) -> None:
                filled = 0
                while filled < frames:
                    if not pending:
                        try:
                            pending.append(q.get_nowait())
                        except queue.Empty:
                            break
                    blk = pending[0]
                    take = min(frames - filled, blk.shape[0])
                    outdata[filled : filled + take] = blk[:take]
                    filled += take
                    if take < blk.shape[0]:
                        pending[0] = blk[take:]
                    else:
                        pending.pop(0)
                if filled < frames:
                    outdata[filled:] = 0.0

            self._out_stream = sd.OutputStream(
                samplerate=self.samplerate, channels=ch, dtype="float32", callback=callback
            )
            self._out_stream.start()
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            log.warning("no audio output for %s (%s); continuing without playback", self.name, first)
            self._out_q = None
            self._out_stream = None

    def _close_output(self) -> None:
        s, self._out_stream = self._out_stream, None
        self._out_q = None
        if s is not None:
            try:
                s.stop()
            except Exception:  # a vanished device cannot spoil a shutdown
                pass
            finally:  # PortAudio's stream is released even when its stop raised
                try:
                    s.close()
                except Exception:
                    pass
