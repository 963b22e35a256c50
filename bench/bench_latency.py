"""End-to-end latency through a real capture device: from the audio clock of a window's last sample
to the UDP datagram carrying that window's estimate arriving at an OSC listener.

Why: lights that follow the music must not lag it. The hop is a choice (a window is evaluated every
hop); everything after the window's last sample is cost, so that is what is measured here
("latency beyond the hop"). Floor: p99 <= 10 ms on this 2-core machine.

Path (all real): ``paplay`` -> private PulseAudio null sink -> ALSA ``pulse`` PCM -> PortAudio
callback -> ``DeviceSource`` ring -> ``Pipeline`` (hop 0.025 s by default) -> ``OscSender`` -> UDP
-> a listener in a separate process (so it does not share the GIL with mer-live).

    python -m bench.bench_latency [--seconds 40] [--hop 0.025] [--osc-rates 30] [--device-rates native,low]
        [--model M]

What is measured, per estimate:

* audio clock of the window's last sample: the frame's ADC time from PortAudio's ``time_info``
  (``inputBufferAdcTime`` + its offset in the block / rate), moved onto ``time.monotonic`` with the
  callback's own ``currentTime`` stamp -- when those times are consistent (the block's first frame
  sampled at least one block before its callback). Through ALSA's ``pulse`` plugin they are not
  (``inputBufferAdcTime`` is ~1 ms before a callback that delivers ~9 ms of audio), so the last
  frame of each block is taken as sampled at its callback: a lower bound that leaves out the
  PulseAudio/ALSA buffering upstream of PortAudio (bounded by PortAudio's reported input latency,
  which the record states). The record says which clock was used.
* capture = callback that delivered the frame - ADC time (PulseAudio + ALSA + PortAudio buffering);
  pipeline = estimate published - that callback (wake-up, resampler look-ahead, model); osc = the
  listener's arrival time of the ``/mer/level`` datagram with that estimate's value - published
  (the sender's wake-up + UDP; with ``send_on_estimate=False`` also the wait for its tick, and an
  estimate replaced before the next tick never goes out: counted, not timed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import (
    md_table,
    model_file,
    positive_float,
    record,
    run_cli,
    stats,
)

WARMUP_S = 2.0  #: estimates in the first seconds after the first one are not timed (start-up)

#: the listener child: records (monotonic arrival, value) of every ``<prefix>/level`` datagram and
#: (arrival, count) of every ``<prefix>/beat``
_LISTENER = r"""
import json, socket, sys, time
from pythonosc.osc_message import OscMessage
addr = (sys.argv[1] + "/level").encode()
beat = (sys.argv[1] + "/beat").encode()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("127.0.0.1", 0))
s.settimeout(0.2)
print(s.getsockname()[1], flush=True)
end = time.monotonic() + float(sys.argv[2])
arr, val, b_arr, b_cnt = [], [], [], []
n = 0
while time.monotonic() < end:
    try:
        d = s.recv(65536)
    except TimeoutError:
        continue
    now = time.monotonic()
    n += 1
    if d.startswith(addr + b"\x00"):
        arr.append(now)
        val.append(OscMessage(d).params[0])
    elif d.startswith(beat + b"\x00"):
        b_arr.append(now)
        b_cnt.append(OscMessage(d).params[0])
print(json.dumps({"arrival": arr, "level": val, "beat_arrival": b_arr, "beat_count": b_cnt, "datagrams": n}),
      flush=True)
"""


class Stamps:
    """Preallocated per-callback stamps (frames written after the block, monotonic time, PortAudio
    ``currentTime`` and ``inputBufferAdcTime``): filling them allocates nothing in the callback."""

    def __init__(self, capacity: int) -> None:
        self.frames = np.zeros(capacity, np.int64)
        self.mono = np.zeros(capacity)
        self.cur = np.zeros(capacity)
        self.adc = np.zeros(capacity)
        self.n = 0

    def add(self, frames: int, mono: float, cur: float, adc: float) -> None:
        i = self.n
        if i < self.frames.shape[0]:
            self.frames[i], self.mono[i], self.cur[i], self.adc[i] = frames, mono, cur, adc
            self.n = i + 1


def stamped_source(device: str, capacity: int, samplerate: int | None = None, low_latency: bool = False,
                   model_rate: int | None = None, hop_frames: int | None = None):
    """A real ``DeviceSource`` whose callback also stamps each block (instrumentation only: the
    ring write and overflow count are the production callback's)."""
    from mer_live.sources.capture import CaptureConfig, DeviceSource

    class StampedDeviceSource(DeviceSource):
        def __init__(self) -> None:
            super().__init__(CaptureConfig(device=device, samplerate=samplerate, low_latency=low_latency),
                             model_rate=model_rate, hop_frames=hop_frames)
            self.stamps = Stamps(capacity)

        def _callback(self, indata, frames, time_info, status) -> None:  # type: ignore[override]
            super()._callback(indata, frames, time_info, status)
            self.stamps.add(self.ring.frames_written, time.monotonic(), time_info.currentTime,
                            time_info.inputBufferAdcTime)

    return StampedDeviceSource()


class Published:
    """Pipeline sink: t, publish time, level and the pipeline's own latency field per estimate."""

    def __init__(self, capacity: int) -> None:
        self.t = np.zeros(capacity)
        self.wall = np.zeros(capacity)
        self.level = np.zeros(capacity, np.float32)
        self.own_ms = np.zeros(capacity)
        self.model_ms = np.zeros(capacity)
        self.ok = np.zeros(capacity, bool)
        self.n = 0

    def __call__(self, e) -> None:
        i = self.n
        if i < self.t.shape[0]:
            self.t[i], self.wall[i], self.own_ms[i], self.model_ms[i] = e.t, e.wall, e.latency_ms, e.model_ms
            self.level[i] = np.float32(max(-120.0, min(20.0, e.level_rms_db)))  # as OSC sends it
            self.ok[i] = e.input_ok and not e.silent
            self.n = i + 1


class BeatLog:
    """Pipeline sink that keeps each published beat's count, stream time and detection time."""

    def __init__(self) -> None:
        self.count: list[int] = []
        self.t: list[float] = []
        self.wall: list[float] = []

    def __call__(self, e) -> None:
        pass

    def event(self, ev) -> None:
        if ev.kind == "beat":
            self.count.append(int(ev.count))
            self.t.append(float(ev.t))
            self.wall.append(float(ev.wall))


def time_info_note(st: Stamps) -> str:
    """PortAudio's time_info of one callback mid-run, as evidence for the ADC-time choice."""
    if not st.n:
        return "no callbacks"
    i = st.n // 2
    return f"mid-run callback: currentTime {st.cur[i]:.4f}, inputBufferAdcTime {st.adc[i]:.4f}"


def adc_times(st: Stamps, rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Per callback: frames written before it, its monotonic time, the monotonic ADC time of its
    first frame; and whether PortAudio's ADC times were usable (else: callback time, lower bound)."""
    n = st.n
    f_end, mono = st.frames[:n], st.mono[:n]
    f_start = np.concatenate([[0], f_end[:-1]])
    delay = st.cur[:n] - st.adc[:n]  # how long before the callback the block's first frame was sampled
    # physically the block's first frame was sampled at least one block before the callback
    block_s = (f_end - f_start) / rate
    usable = bool(n and np.all(st.adc[:n] > 0) and np.all((delay >= block_s * 0.99) & (delay < 1.0)))
    if usable:
        first = mono - delay
    else:  # the block's last frame sampled at the callback: a lower bound on the latency
        first = mono - (f_end - f_start - 1) / rate
    return f_start, mono, first, usable


def default_parts(model) -> dict:
    """What ``mer-live`` adds to the pipeline by default: the music gate, a fused model's teacher
    thread, the beat tracker and the section detector (``--full``)."""
    from mer_live.analysers.beat import BeatConfig, make_tracker
    from mer_live.analysers.sections import SectionConfig, SectionDetector
    from mer_live.inference.fusion import Fusion, TeacherThread
    from mer_live.inference.presence import MusicGate, PresenceModel

    fusion = Fusion.of(model)
    return {"presence": PresenceModel(), "gate": MusicGate(),
            "teacher": TeacherThread(fusion) if fusion is not None else None,
            "analysers": [make_tracker(BeatConfig()), SectionDetector(SectionConfig())]}


FULL = False  #: --full: run_one builds the pipeline with default_parts


def run_one(src_factory, model, hop: float, osc_rate: float, seconds: float, realtime: bool = False) -> dict:
    """One run of ``seconds``: returns arrays of per-estimate latencies (ms) and counts."""
    from mer_live.live.pipeline import Pipeline, PipelineConfig
    from mer_live.outputs.osc import OscConfig, OscSender

    prefix = "/mer"
    child = subprocess.Popen([sys.executable, "-c", _LISTENER, prefix, str(seconds + 8)],
                             stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline() if child.stdout else ""
        if not line.strip().isdigit():
            raise RuntimeError("the UDP listener subprocess did not start")
        port = int(line)
        src = src_factory()
        cap = int((seconds + 10) / hop) + 64
        pub = Published(cap)
        beats = BeatLog()
        osc = OscSender(OscConfig(targets=[f"127.0.0.1:{port}"], rate_hz=osc_rate, prefix=prefix,
                                  realtime=realtime))
        pipe = Pipeline(src, model, PipelineConfig(hop_s=hop, realtime=realtime), sinks=[pub, osc, beats],
                        **(default_parts(model) if FULL else {}))
        osc.start()
        pipe.start()
        try:
            time.sleep(seconds / 2)
            stream_latency = getattr(getattr(src, "_stream", None), "latency", float("nan"))
            time.sleep(seconds / 2)
        finally:
            pipe.stop()
            osc.stop()
        ps = dict(pipe.stats)
        out, _ = child.communicate(timeout=seconds + 20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=5)
    heard = json.loads(out.strip().splitlines()[-1])
    arrival = np.asarray(heard["arrival"])
    level = np.asarray(heard["level"], np.float32)

    rate = src.samplerate
    f_start, cb_mono, first_adc, usable = adc_times(src.stamps, rate)
    n = pub.n
    # source frame (0-based) holding the window's last model-rate sample
    ends = np.rint(pub.t[:n] * model.sample_rate).astype(np.int64)
    frame = np.floor((ends - 1) * rate / model.sample_rate).astype(np.int64)
    cb = np.searchsorted(src.stamps.frames[: src.stamps.n], frame + 1, side="left")
    # skip the start-up transient: the first WARMUP_S of estimates
    valid = (cb < src.stamps.n) & pub.ok[:n] & (pub.wall[:n] >= pub.wall[0] + WARMUP_S)
    cbv = np.minimum(cb, max(src.stamps.n - 1, 0))
    adc = first_adc[cbv] + (frame - f_start[cbv]) / rate
    # match each estimate to the first /level datagram after its publication carrying its value,
    # before the next estimate was published (after that the sender sends the next one)
    sent = np.full(n, np.nan)
    ambiguous = 0
    j = 0
    for i in range(n):
        if not valid[i]:
            continue
        if i + 1 < n and pub.level[i + 1] == pub.level[i]:
            ambiguous += 1
            continue
        j = int(np.searchsorted(arrival, pub.wall[i], side="left"))
        nxt = pub.wall[i + 1] if i + 1 < n else np.inf
        while j < len(arrival) and arrival[j] < nxt + 0.5:
            if level[j] == pub.level[i]:
                sent[i] = arrival[j]
                break
            j += 1
    got = valid & np.isfinite(sent)
    # beats: the audio clock of the beat's own sample (the tracker's stream time) -> its datagram
    b_arrival = dict(zip(heard.get("beat_count", []), heard.get("beat_arrival", []), strict=True))
    beat_total, beat_detect = [], []
    t_warm = pub.wall[0] + WARMUP_S if n else np.inf
    for c, t_b, w in zip(beats.count, beats.t, beats.wall, strict=True):
        fb = int(np.floor(t_b * rate))
        k = int(np.searchsorted(src.stamps.frames[: src.stamps.n], fb + 1, side="left"))
        if c not in b_arrival or k >= src.stamps.n or w < t_warm:
            continue
        beat_total.append((b_arrival[c] - (first_adc[k] + (fb - f_start[k]) / rate)) * 1e3)
        beat_detect.append((b_arrival[c] - w) * 1e3)
    # hop schedule jitter on the wall clock: |interval between consecutive published estimates - hop|
    consecutive = valid[1:] & valid[:-1] & (np.diff(ends) == np.rint(hop * model.sample_rate))
    jitter = np.abs(np.diff(pub.wall[:n]) - hop)[consecutive] * 1e3
    return {
        "jitter_ms": jitter,
        "beat_total_ms": np.asarray(beat_total),
        "beat_detect_ms": np.asarray(beat_detect),
        "beats": len(beats.count),
        "total_ms": (sent[got] - adc[got]) * 1e3,
        "capture_ms": (cb_mono[cbv][got] - adc[got]) * 1e3,
        "pipeline_ms": (pub.wall[:n][got] - cb_mono[cbv][got]) * 1e3,
        "osc_ms": (sent[got] - pub.wall[:n][got]) * 1e3,
        "to_publish_ms": (pub.wall[:n][got] - adc[got]) * 1e3,
        "own_ms": pub.own_ms[:n][valid],
        "model_ms": pub.model_ms[:n][valid],
        "estimates": n,
        "timed": int(got.sum()),
        "not_sent": int((valid & ~np.isfinite(sent)).sum()),
        "ambiguous": ambiguous,
        "adc_from_portaudio": usable,
        "time_info": time_info_note(src.stamps),
        "callbacks": src.stamps.n,
        # the audio server delivers blocks in bursts: the gaps between callbacks show how large
        "callback_gap_p99_ms": float(np.percentile(np.diff(src.stamps.mono[: src.stamps.n]), 99) * 1e3)
        if src.stamps.n > 2 else float("nan"),
        "block_frames": float(np.median(np.diff(src.stamps.frames[: src.stamps.n]))) if src.stamps.n > 1
        else float("nan"),
        "rate": rate,
        "stream_latency_ms": float(stream_latency) * 1e3,
        "hops_skipped": ps.get("hops_skipped"),
        "frames_lost": ps.get("frames_lost"),
        "overflows": getattr(src, "overflows", 0),
        "realtime_active": pipe.realtime_active,
        "datagrams": heard["datagrams"],
    }


def music_wav(path: Path) -> Path:
    """48 kHz stereo music for the sink: a few 4Q clips, else the bundled demo."""
    import soundfile as sf
    import soxr

    from bench.common import fourq_clips

    parts = []
    for p in fourq_clips(4):
        x, sr = sf.read(str(p), dtype="float32", always_2d=True)
        parts.append(soxr.resample(x, sr, 48000, quality="HQ"))
    if not parts:
        from mer_live.sources.demo import demo_audio

        parts = [demo_audio(48000)[:, None]]
    x = np.concatenate(parts)
    if x.shape[1] == 1:
        x = np.repeat(x, 2, axis=1)
    sf.write(str(path), x, 48000, subtype="PCM_16")
    return path


def main(argv: list[str] | None = None) -> int:
    from bench.bench_model import pick_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=positive_float, default=35.0, help="length of each run")
    ap.add_argument("--hop", type=positive_float, default=0.025)
    ap.add_argument("--osc-rates", default="30", help="OscSender rates to run (Hz, comma-separated)")
    ap.add_argument("--device-rates", default="native,low,low+rt",
                    help="open the device at its own rate (native: the pipeline resamples with soxr HQ), "
                         "at the model's rate (model: no resampler in the pipeline) and/or as "
                         "mer-live --low-latency does (low: the model's rate, blocks that divide the hop); "
                         "low+rt: also --realtime (SCHED_FIFO pipeline and OSC threads)")
    ap.add_argument("--model", type=model_file)
    ap.add_argument("--full", action="store_true",
                    help="the pipeline as mer-live builds it by default: music gate, teacher, beat, sections")
    args = ap.parse_args(argv)
    global FULL
    FULL = args.full
    try:
        rates = [positive_float(r) for r in args.osc_rates.split(",")]
    except argparse.ArgumentTypeError as e:
        ap.error(f"--osc-rates: {e}")
    dev_rates = [r.strip() for r in args.device_rates.split(",")]
    if not dev_rates or any(r not in ("native", "model", "low", "low+rt") for r in dev_rates):
        ap.error(f"--device-rates: use native, model, low and/or low+rt, got {args.device_rates!r}")

    from tests.audio import PulseServer, missing_tools

    why = missing_tools()
    if why:
        raise RuntimeError(f"cannot measure through a device here: {why}")
    from mer_live.common.framing import hop_samples
    from mer_live.inference.model import Model

    model_path = pick_model(args.model)
    model = Model(model_path, provider="cpu", threads=1)
    tmp = Path(tempfile.mkdtemp(prefix="mer-bench-latency-"))
    server = PulseServer(tmp / "pulse")
    results = []
    try:
        server.start()
        wav = music_wav(tmp / "music48k.wav")
        with server.looping(wav), server.activate():
            time.sleep(0.5)
            for dev in dev_rates:
                for rate in rates:
                    sr = model.sample_rate if dev == "model" else None
                    cap = int(args.seconds * 400) + 4096

                    def factory(sr=sr, dev=dev, cap=cap):
                        return stamped_source("pulse", cap, sr, low_latency=dev.startswith("low"),
                                              model_rate=model.sample_rate,
                                              hop_frames=hop_samples(args.hop, model.sample_rate))

                    r = run_one(factory, model, args.hop, rate, args.seconds, realtime=dev == "low+rt")
                    if dev == "low+rt" and r.get("realtime_active") is not True:
                        print("warning: low+rt: real-time scheduling was refused here; the row is "
                              "at normal priority", flush=True)
                    results.append((f"{r['rate']} Hz ({dev})", rate, r))
                    s = stats(r["total_ms"]) if r["timed"] else None
                    print(f"device {dev} {r['rate']} Hz, osc {rate:g} Hz: {r['timed']} timed, total median "
                      f"{s.median if s else float('nan'):.1f} ms p99 {s.p99 if s else float('nan'):.1f} ms",
                          flush=True)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    notes = []
    for dev, rate, r in results:
        if not r["timed"]:
            notes.append(f"device {dev}, OSC {rate:g} Hz: no estimate could be matched to a datagram")
        for key, what in (("total_ms", "**window's last sample -> OSC datagram at the listener**"),
                          ("capture_ms", "audio clock -> PortAudio callback (position in the block)"),
                          ("pipeline_ms", "callback -> estimate published (wake-up, resampler, model)"),
                          ("osc_ms", "published -> datagram at the listener (sender tick + UDP)"),
                          ("to_publish_ms", "window's last sample -> estimate published"),
                          ("own_ms", "pipeline's own Estimate.latency_ms (ring read -> published)"),
                          ("model_ms", "model time per window (Estimate.model_ms)"),
                          ("jitter_ms", "hop jitter: abs(interval between consecutive estimates - hop)"),
                          ("beat_total_ms", "**a beat's own sample -> /mer/beat datagram at the listener** "
                                            "(--full)"),
                          ("beat_detect_ms", "beat detected (BeatTracker) -> /mer/beat datagram")):
            if key.startswith("beat") and not FULL:
                continue
            if len(r[key]) == 0:
                rows.append([dev, f"{rate:g} Hz", what, 0, "n/a", "n/a", "n/a"])
                continue
            s = stats(r[key])
            rows.append([dev, f"{rate:g} Hz", what, s.n, s.median, s.p99, s.max])
        notes.append(
            f"device {dev}, OSC {rate:g} Hz: {r['estimates']} estimates, {r['timed']} timed, "
            f"{r['not_sent']} replaced before a send tick, {r['ambiguous']} skipped (same level as the "
            "next); device "
            f"{r['callbacks']} callbacks of {r['block_frames']:.0f} frames (gap between callbacks "
            f"p99 {r['callback_gap_p99_ms']:.1f} ms: the server's burst), PortAudio "
            f"input latency {r['stream_latency_ms']:.1f} ms; ADC times from PortAudio: "
            f"{r['adc_from_portaudio']} ({r['time_info']}); hops_skipped {r['hops_skipped']}, frames_lost "
            f"{r['frames_lost']}, overflows {r['overflows']}, {r['datagrams']} datagrams received"
            + (f"; {r['beats']} beats published, {len(r['beat_total_ms'])} timed." if FULL else ".")
        )
    if not any(r["timed"] for _, _, r in results):
        raise RuntimeError("no estimate could be matched to an OSC datagram in any run")
    body = md_table(["device rate", "OSC rate", "segment", "n", "median ms", "p99 ms", "max ms"], rows)
    record(
        f"End-to-end latency through a device (bench_latency, {model_path.name}, hop {args.hop} s"
        + (", the default pipeline: music gate, teacher, beat, sections)" if FULL else ")"),
        body,
        notes=[
            f"{args.seconds:.0f} s per OSC rate of music (4Q clips, 48 kHz stereo) played with paplay into "
            "a private PulseAudio null sink, captured by PortAudio (ALSA `pulse` device, mer-live's "
            "default block size) in this process; 1 onnxruntime thread; the UDP listener is a separate "
            "process; "
            "all times on CLOCK_MONOTONIC.",
            "Latency is counted from the window's last sample, so it is the latency beyond the hop "
            "(floor: p99 <= 10 ms). The OSC sender sends each new estimate at once (send_on_estimate, the "
            "default) and repeats it on its own tick in between. "
            "`native`: the device at its own rate, resampled in the pipeline by soxr.ResampleStream "
            "(HQ); `model`: the device opened at the model's rate (PulseAudio resamples), no resampler "
            "in the pipeline; `low`: what `mer-live --low-latency` opens (the model's rate when the "
            "device takes it, in blocks of at most 128 frames that divide the hop); `low+rt`: the same "
            "with `--realtime` (the pipeline "
            "and OSC sender threads under SCHED_FIFO, as on a tuned show machine).",
            f"Estimates of the first {WARMUP_S:.0f} s after the first one are not timed (start-up).",
            "Beats (--full): from the audio clock of the sample the beat tracker put the beat on (its "
            "stream time, the same clock as the windows') to the `/mer/beat` datagram with that count; "
            "a beat the beat clock fills in (aubio at half tempo) counts from its own grid time.",
            *notes,
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
