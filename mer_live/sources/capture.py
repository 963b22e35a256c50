"""Live audio input: find the device, capture it into a ring buffer, survive it going away.

The PortAudio callback only copies ``indata`` into a preallocated :class:`RingBuffer` and counts
input overflows; everything that can block (noticing a lost device, re-opening it, logging) runs
on a watchdog thread. The device's own rate and channel count are kept: the pipeline resamples.

PortAudio builds its device list once, at initialisation. A device that is plugged in later (or a
PulseAudio server that restarts) only appears after :func:`rescan_devices`, which re-initialises
PortAudio; this module does that only while none of its own streams is open.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from mer_live.common.logs import one_line
from mer_live.common.validate import Checked, check, check_fields, flag, integer, number
from mer_live.live.ringbuffer import RingBuffer

log = logging.getLogger(__name__)

_pa_lock = threading.Lock()  # serialises re-initialisation and stream opening/closing
_open_streams = 0  # streams opened by this module and not yet closed


class DeviceError(Exception):
    """An input device that cannot be found or opened; the message is one line for the user."""


def _sd() -> Any:
    """Import sounddevice lazily so ``mer-analyze`` works on machines without PortAudio."""
    try:
        import sounddevice as sd
    except OSError as e:  # "PortAudio library not found"
        raise DeviceError(f"cannot use audio input: {e} (install libportaudio2)") from None
    return sd


def rescan_devices() -> bool:
    """Re-initialise PortAudio so it sees devices added or removed since it started.

    Returns False (and does nothing) while a stream opened by this module is open, because
    ``Pa_Terminate`` would close it under its owner.
    """
    sd = _sd()
    with _pa_lock:
        if _open_streams:
            return False
        try:
            sd._terminate()
        finally:
            sd._initialize()
    return True


def list_devices() -> list[dict[str, Any]]:
    """The input devices PortAudio knows now: index, name, host API, channels, default rate."""
    sd = _sd()
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0]
    except sd.PortAudioError as e:
        raise DeviceError(f"cannot list audio devices: {e}") from None
    out = []
    for d in devices:
        if d["max_input_channels"] <= 0:
            continue
        out.append(
            {
                "index": int(d["index"]),
                "name": str(d["name"]),
                "hostapi": str(sd.query_hostapis(d["hostapi"])["name"]),
                "max_input_channels": int(d["max_input_channels"]),
                "default_samplerate": float(d["default_samplerate"]),
                "default": int(d["index"]) == default_in,
            }
        )
    return out


def format_devices(devices: list[dict[str, Any]] | None = None) -> str:
    """A printable table of input devices for ``--list-devices`` (``*`` marks the default)."""
    devices = list_devices() if devices is None else devices
    if not devices:
        return "no input devices found"
    width = max(len(d["name"]) for d in devices)
    lines = [f"  {'idx':>3}  {'name':<{width}}  {'host API':<10}  {'in ch':>5}  {'rate':>7}"]
    for d in devices:
        mark = "*" if d.get("default") else " "
        lines.append(
            f"{mark} {d['index']:>3}  {d['name']:<{width}}  {d['hostapi']:<10}  "
            f"{d['max_input_channels']:>5}  {d['default_samplerate']:>7.0f}"
        )
    return "\n".join(lines)


def _inputs_line(devices: list[dict[str, Any]]) -> str:
    if not devices:
        return "inputs: none"
    return "inputs: " + ", ".join(f"{d['index']} {d['name']!r}" for d in devices)


def resolve_device(spec: int | str | None, devices: list[dict[str, Any]] | None = None) -> int | None:
    """Turn ``--device`` into a PortAudio input index (None = the default input).

    An integer (or digit string) must be an input device's index. A name matches exactly first
    (case-sensitive, then case-insensitive), else as a case-insensitive substring, which must be
    unique. Every failure is a one-line :class:`DeviceError` naming the inputs that do exist.
    ``devices`` (as from :func:`list_devices`) defaults to PortAudio's list now.
    """
    if spec is None:
        return None
    if isinstance(spec, bool):
        raise DeviceError(f"device must be an index or a name, got {spec!r}")
    if devices is None:
        devices = list_devices()
    if isinstance(spec, str) and spec.strip().isdigit():
        spec = int(spec.strip())
    if isinstance(spec, int):
        if any(d["index"] == spec for d in devices):
            return spec
        raise DeviceError(f"no input device with index {spec}; {_inputs_line(devices)}")
    if not isinstance(spec, str) or not spec.strip():
        raise DeviceError(f"device must be an index or a name, got {spec!r}")
    want = spec.strip()
    for exact in (
        [d for d in devices if d["name"] == want],
        [d for d in devices if d["name"].lower() == want.lower()],
    ):
        if len(exact) >= 1:
            return int(exact[0]["index"])
    hits = [d for d in devices if want.lower() in d["name"].lower()]
    if len(hits) == 1:
        return int(hits[0]["index"])
    if len(hits) > 1:
        names = ", ".join(f"{d['index']} {d['name']!r}" for d in hits)
        raise DeviceError(f"input device {spec!r} is ambiguous: {names}; give the index or more of the name")
    raise DeviceError(f"no input device matches {spec!r}; {_inputs_line(devices)}")


@dataclass
class CaptureConfig(Checked):
    """How to open the input. None/0 leave the choice to the device and PortAudio."""

    device: int | str | None = None  #: index, (part of a) name, or None for the default input
    #: None = the device's default rate
    samplerate: int | None = field(default=None, metadata=integer(
        1000, 384000, "an integer sample rate in 1000..384000", optional=True))
    #: frames per callback; 0 = automatic (see DeviceSource.default_block_s)
    blocksize: int = field(default=0, metadata=integer(0, 65536, "an integer in 0..65536 (0: automatic)"))
    #: None = min(2, device maximum)
    channels: int | None = field(default=None, metadata=integer(1, 64, "an integer in 1..64", optional=True))
    #: if the device is missing at start, wait for it instead of failing
    wait_for_device: bool = field(default=False, metadata=flag())
    #: open the device at the model's rate when it accepts it (no resampler in mer-live, whose
    #: look-ahead is ~20 ms) and, with blocksize 0, in blocks of at most 128 frames that divide the
    #: pipeline's hop (``aligned_blocksize``)
    low_latency: bool = field(default=False, metadata=flag())
    #: how often to try re-opening a lost device
    retry_s: float = field(default=1.0, metadata=number(0.05, 60, "a number of seconds in 0.05..60"))
    #: ring buffer length
    ring_seconds: float = field(default=10.0, metadata=number(1, 600, "a number of seconds in 1..600"))

    def __post_init__(self) -> None:
        d = self.device
        check(d is None or (isinstance(d, (int, str)) and not isinstance(d, bool)), "capture", "device",
              "an index, a name or empty", d)
        check(not isinstance(d, int) or d >= 0, "capture", "device", "an index >= 0", d)
        check(not isinstance(d, str) or bool(d.strip()), "capture", "device", "a name, not empty", d)
        check_fields(self, "capture")


def aligned_blocksize(hop_frames: int, most: int = 128, least: int = 32) -> int:
    """The largest block size in ``least..most`` that divides ``hop_frames`` (``most`` if none does).

    With it every hop boundary is the last frame of a callback block: e.g. a 0.1 s hop at 16 kHz
    (1600 frames) gets 100-frame blocks, and 0.025 s (400 frames) too; 128 would leave a boundary
    up to 8 ms before its block is delivered.
    """
    for d in range(most, least - 1, -1):
        if hop_frames % d == 0:
            return d
    return most


def default_blocksize(samplerate: int, hop_frames: float, block_s: float) -> int:
    """Frames per callback when none is asked for and latency is not the point: the largest block
    of at most ``block_s`` (and at least a quarter of it) that divides the hop at ``samplerate``, so
    hop boundaries end blocks; ``0`` (PortAudio's choice) when the hop is not a whole number of
    frames at that rate."""
    most = max(1, int(samplerate * block_s))
    if hop_frames != int(hop_frames) or hop_frames < 1:
        return 0
    for d in range(most, max(1, most // 4) - 1, -1):
        if int(hop_frames) % d == 0:
            return d
    return 0


class DeviceSource:
    """A live input device as a pipeline Source (see docs/architecture.md).

    ``ok`` is False while the device is lost; the watchdog re-opens it by name every ``retry_s``
    and the same ring keeps filling, so the pipeline never has to restart its source.
    """

    #: no audio for this long while running means the device is gone (first data may take longer)
    stall_s = 1.0
    first_data_s = 3.0
    #: how often the watchdog looks: a quarter of stall_s (it was 0.05 s: 20 wake-ups a second for a
    #: loss that takes 1 s to call, ~0.1 % of a core; issue #28)
    tick_s = 0.25

    #: frames per callback with ``low_latency`` and no blocksize given (2.7 ms at 48 kHz)
    low_latency_blocksize = 128
    #: otherwise, blocks of at most this long that divide the hop at the device's rate: PortAudio's
    #: own choice (~8.6 ms through PulseAudio) woke the process 116 times a second; 20-ms blocks
    #: cut mer-live's CPU on the bench's device run from 10.2 to 8.9 % of a core, and a hop
    #: boundary still ends a block (a beat may wait up to one block: --low-latency for tight timing)
    default_block_s = 0.02

    def __init__(self, config: CaptureConfig, cancel: threading.Event | None = None,
                 model_rate: int | None = None, hop_frames: int | None = None) -> None:
        """Resolve and probe the device; with ``wait_for_device`` block until it appears.

        ``cancel`` (set from another thread) ends that wait with a DeviceError. ``model_rate`` is
        the rate ``low_latency`` asks the device for; ``hop_frames`` (the pipeline's hop at that
        rate) lets it pick a block size that divides the hop, so that every hop boundary falls on
        a block's last frame and no window waits for the rest of a block.
        """
        self.config = config.validate()
        sd = _sd()
        self._sd = sd
        index = self._resolve_or_wait(cancel)
        try:
            info = sd.query_devices(index, "input")
        except (sd.PortAudioError, ValueError) as e:
            raise DeviceError(f"cannot query input device {config.device!r}: {e}") from None
        self.name: str = str(info["name"])
        self._spec = config.device
        self.samplerate: int = int(config.samplerate or round(float(info["default_samplerate"])))
        max_ch = int(info["max_input_channels"])
        if config.channels is not None and config.channels > max_ch:
            raise DeviceError(f"input {self.name!r} has {max_ch} channels, {config.channels} asked for")
        self.channels: int = int(config.channels or min(2, max_ch))
        self.blocksize: int = config.blocksize
        if config.low_latency:
            if not self.blocksize:
                self.blocksize = self.low_latency_blocksize
            if config.samplerate is None and model_rate and model_rate != self.samplerate:
                try:
                    sd.check_input_settings(device=index, samplerate=model_rate, channels=self.channels,
                                            dtype="float32")
                    self.samplerate = int(model_rate)
                except (sd.PortAudioError, ValueError) as e:
                    log.warning("low latency: %r cannot run at %d Hz (%s); using %d Hz and resampling",
                                self.name, model_rate, one_line(e), self.samplerate)
            if not config.blocksize and hop_frames and self.samplerate == model_rate:
                self.blocksize = aligned_blocksize(hop_frames, self.low_latency_blocksize)
        elif not self.blocksize and hop_frames and model_rate:
            self.blocksize = default_blocksize(self.samplerate, hop_frames * self.samplerate / model_rate,
                                               self.default_block_s)
        self.ring = RingBuffer(max(1, int(round(config.ring_seconds * self.samplerate))), self.channels)
        self.finished = False
        self.ok = False
        self.overflows = 0  # incremented in the audio callback only
        self.losses = 0  # how many times the device was lost
        self.message = f"input: {self.name} (not started)"
        self._stream: Any = None
        self._stop_evt = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._opened_at = 0.0
        self._last_frames = 0
        self._last_change = 0.0

    # -- device lookup -------------------------------------------------------------------------
    def _resolve_or_wait(self, cancel: threading.Event | None) -> int | None:
        cfg = self.config
        try:
            return resolve_device(cfg.device)
        except DeviceError as first:
            if not cfg.wait_for_device:
                raise
            log.warning("waiting for input device %r (%s)", cfg.device, first)
        while True:
            if cancel is not None and cancel.wait(cfg.retry_s):
                raise DeviceError(f"stopped waiting for input device {cfg.device!r}")
            if cancel is None:
                time.sleep(cfg.retry_s)
            rescan_devices()
            try:
                index = resolve_device(cfg.device)
            except DeviceError:
                continue
            log.info("input device %r appeared", cfg.device)
            return index

    def _find_again(self) -> int | None:
        """The device's index now, by its exact name (indices change when devices come and go)."""
        if self._spec is None:
            return None
        for d in list_devices():
            if d["name"] == self.name:
                return int(d["index"])
        raise DeviceError(f"input {self.name!r} not present")

    # -- the real-time part --------------------------------------------------------------------
    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        # Runs on PortAudio's thread: copy and count only. No allocation, logging or locks.
        if status and status.input_overflow:
            self.overflows += 1
        self.ring.write(indata)

    # -- stream management (watchdog / caller threads) -----------------------------------------
    def _open(self) -> None:
        global _open_streams
        sd = self._sd
        index = self._find_again()
        with _pa_lock:
            try:
                stream = sd.InputStream(
                    device=index,
                    samplerate=self.samplerate,
                    channels=self.channels,
                    blocksize=self.blocksize,
                    dtype="float32",
                    callback=self._callback,
                )
            except (sd.PortAudioError, ValueError) as e:
                raise DeviceError(f"cannot open input {self.name!r}: {one_line(e)}") from None
            _open_streams += 1
            try:
                stream.start()
            except sd.PortAudioError as e:
                _close_quietly(stream)
                _open_streams -= 1
                raise DeviceError(f"cannot start input {self.name!r}: {one_line(e)}") from None
        self._stream = stream
        now = time.monotonic()
        self._opened_at = now
        self._last_change = now
        self._last_frames = self.ring.frames_written

    def _close(self) -> None:
        """Close the stream; a stream whose close hangs (a dead server) is abandoned, not waited on."""
        global _open_streams
        stream, self._stream = self._stream, None
        if stream is None:
            return
        t = threading.Thread(target=_close_quietly, args=(stream,), name="mer-capture-close", daemon=True)
        t.start()
        t.join(2.0)
        if t.is_alive():
            log.warning("input %r did not close within 2 s; abandoning it", self.name)
            return  # leave _open_streams raised: re-initialising PortAudio now would be unsafe
        with _pa_lock:
            _open_streams -= 1

    def start(self) -> None:
        """Open the stream and the watchdog. Raises DeviceError if the device cannot be opened."""
        if self._watchdog is not None:
            return
        self._stop_evt.clear()
        self._open()
        self.ok = True
        self.message = f"input: {self.name}, {self.samplerate} Hz, {self.channels} ch"
        self._watchdog = threading.Thread(target=self._watch, name="mer-capture-watchdog", daemon=True)
        self._watchdog.start()

    def stop(self) -> None:
        """Stop the watchdog and close the stream (idempotent)."""
        self._stop_evt.set()
        wd, self._watchdog = self._watchdog, None
        if wd is not None:
            wd.join(3.0)
        self._close()
        self.ok = False
        self.message = f"input: {self.name} stopped"

    def _lost_reason(self, now: float) -> str | None:
        stream = self._stream
        try:
            if not stream.active:
                return "stream stopped"
        except Exception as e:  # PortAudioError from a dead host API
            return one_line(e)
        frames = self.ring.frames_written
        if frames != self._last_frames:
            self._last_frames = frames
            self._last_change = now
            return None
        block_s = (self.blocksize or 0) / self.samplerate
        limit = max(self.stall_s, 4 * block_s)
        if frames == 0 or self._last_change == self._opened_at:
            limit = max(limit, self.first_data_s)
        if now - self._last_change > limit:
            return f"no audio for {now - self._last_change:.1f} s"
        return None

    def _watch(self) -> None:
        next_try = 0.0
        # while the device is lost, look at least every retry_s (a retry_s below tick_s keeps its pace)
        while not self._stop_evt.wait(self.tick_s if self._stream is not None
                                      else min(self.tick_s, self.config.retry_s)):
            now = time.monotonic()
            if self._stream is not None:
                reason = self._lost_reason(now)
                if reason is None:
                    continue
                self.ok = False
                self.losses += 1
                self.message = f"no input: {self.name} lost, retrying"
                log.warning("no input: %s lost (%s), retrying every %.1f s", self.name, reason,
                            self.config.retry_s)
                self._close()
                next_try = now + self.config.retry_s
                continue
            if now < next_try:
                continue
            next_try = now + self.config.retry_s
            try:
                rescan_devices()
                self._open()
            except DeviceError as e:
                log.debug("retry: %s", e)
                continue
            except Exception as e:  # never let the watchdog die: it is what brings the input back
                log.debug("retry failed: %s", one_line(e))
                continue
            if self._stop_evt.is_set():
                break
            self.ok = True
            self.message = f"input: {self.name}, {self.samplerate} Hz, {self.channels} ch"
            log.info("input back: %s", self.name)


def _close_quietly(stream: Any) -> None:
    try:
        stream.abort()
    except Exception:
        pass
    try:
        stream.close()
    except Exception:
        pass
