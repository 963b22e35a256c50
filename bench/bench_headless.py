"""``mer-live --headless`` for a minute: CPU (% of one core) and peak RSS, at the default 0.1 s hop
and at 0.025 s, on a paced file (``--input``, looped) and on a real capture device (a private
PulseAudio null sink, fed by ``paplay``) when PulseAudio and PortAudio are available.

Why: on stage mer-live shares the laptop with the lighting/visuals software; floors at 0.1 s:
<= 10% of one core and peak RSS <= 200 MB.

    python -m bench.bench_headless [--seconds 60] [--model M] [--no-device]

CPU = (utime + stime) of the process from /proc/<pid>/stat; "steady" counts from 5 s after
launch (imports and model load excluded) to the end, "total" from launch. Peak RSS = VmHWM.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import (
    ROOT,
    UdpListener,
    md_table,
    model_file,
    positive_float,
    proc_cpu_seconds,
    proc_peak_rss_mb,
    record,
    run_cli,
    thread_profile,
)

STEADY_AFTER_S = 5.0


def run_headless(
    args: list[str], seconds: float, env_extra: dict[str, str] | None = None, profile_s: float = 0.0
) -> dict:
    """Run ``python -m mer_live --headless ARGS --duration seconds`` and probe it every 0.25 s;
    with ``profile_s`` also profile it (per thread and per function) for that long once steady."""
    lis = UdpListener()
    cmd = [sys.executable, "-m", "mer_live", "--headless", *args, "--osc", f"127.0.0.1:{lis.port}",
           "--duration", str(seconds)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env_extra or {}))
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cpu_at_steady = None
    cpu_last = hwm = 0.0
    t_last = t0
    prof = None
    try:
        while proc.poll() is None and time.monotonic() - t0 < seconds + 30:
            now = time.monotonic()
            c = proc_cpu_seconds(proc.pid)
            h = proc_peak_rss_mb(proc.pid)
            if not np.isnan(c):
                if cpu_at_steady is None and now - t0 >= STEADY_AFTER_S:
                    cpu_at_steady = (now, c)
                cpu_last, t_last = c, now
            if not np.isnan(h):
                hwm = max(hwm, h)
            if profile_s and prof is None and cpu_at_steady is not None:
                prof = thread_profile(proc.pid, profile_s)
            time.sleep(0.25)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=5)
        lis.close()
    if proc.returncode != 0 or cpu_at_steady is None:
        tail = (err or b"").decode(errors="replace").strip().splitlines()[-1:] or ["(no stderr)"]
        raise RuntimeError(f"mer-live --headless failed ({proc.returncode}): {tail[0]}")
    values = sum(1 for m in lis.messages if m[1].endswith("/arousal"))
    ts, cs = cpu_at_steady
    return {
        "cpu_steady_pct": 100.0 * (cpu_last - cs) / max(t_last - ts, 1e-9),
        "cpu_total_pct": 100.0 * cpu_last / max(t_last - t0, 1e-9),
        "peak_rss_mb": hwm,
        "osc_values": values,
        "wall_s": t_last - t0,
        "profile": prof,
    }


def demo_wav(path: Path, sr: int, channels: int) -> Path:
    import soundfile as sf

    from mer_live.sources.demo import demo_audio

    x = demo_audio(sr)
    if channels > 1:
        x = np.repeat(x[:, None], channels, axis=1)
    sf.write(str(path), x, sr, subtype="PCM_16")
    return path


def main(argv: list[str] | None = None) -> int:
    from bench.bench_model import pick_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=positive_float, default=60.0)
    ap.add_argument("--model", type=model_file)
    ap.add_argument("--hops", default="0.1,0.025")
    ap.add_argument("--no-device", action="store_true", help="skip the PulseAudio null-sink runs")
    ap.add_argument("--variants", default="default,cnn-only",
                    help="default: as mer-live runs by default (music gate, teacher, beat, sections); "
                         "cnn-only: the model's CNN alone with none of them (what mer-live ran before); "
                         "room: the default run with --room (the shipped room model, models/mer-room.onnx); "
                         "aubio-beat: the default with --beat-tracker aubio (the lightest beat tracker)")
    ap.add_argument("--profile", type=positive_float, metavar="S",
                    help="also profile the first run at hop 0.1 s for S seconds (py-spy + /proc threads)")
    args = ap.parse_args(argv)
    model = pick_model(args.model)
    try:
        hops = [positive_float(h) for h in args.hops.split(",")]
    except argparse.ArgumentTypeError as e:
        ap.error(f"--hops: {e}")
    tmp = Path(tempfile.mkdtemp(prefix="mer-bench-headless-"))
    rows = []
    notes = []
    profiles: list[tuple[str, dict]] = []

    def prof_for(hop: float) -> float:
        return args.profile or 0.0 if hop == 0.1 else 0.0

    from mer_live.inference.roominput import room_model_path

    variants = {"default": [], "cnn-only": ["--no-teacher", "--no-music-gate", "--no-beat", "--no-sections"],
                "room": ["--room"], "aubio-beat": ["--beat-tracker", "aubio"]}
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not chosen or any(v not in variants for v in chosen):
        ap.error(f"--variants: choose from {', '.join(variants)}")
    if "room" in chosen and not room_model_path().is_file():
        ap.error(f"--variants room: {room_model_path()} is not built")

    def model_of(v: str) -> Path:  # --room runs the room model (the --model flag would replace it)
        return room_model_path() if v == "room" else model
    wav = demo_wav(tmp / "demo22k.wav", 22050, 1)
    for hop in hops:
        for v in chosen:
            r = run_headless(["--input", str(wav), "--loop", "--model", str(model_of(v)), "--hop", str(hop),
                              *variants[v]], args.seconds, profile_s=prof_for(hop) if v == chosen[0] else 0.0)
            if r["profile"]:
                profiles.append((f"file, hop {hop} s, {v}", r["profile"]))
            rows.append([f"file (--input, paced, looped), {v}", hop, r["cpu_steady_pct"], r["cpu_total_pct"],
                         r["peak_rss_mb"], r["osc_values"]])
            print(rows[-1], flush=True)

    if not args.no_device:
        from tests.audio import PulseServer, missing_tools

        why = missing_tools()
        if why:
            notes.append(f"device runs skipped: {why}")
        else:
            server = PulseServer(tmp / "pulse")
            try:
                server.start()
                feed = demo_wav(tmp / "demo48k.wav", 48000, 2)
                for hop, v in [(h, v) for h in hops for v in chosen]:
                    with server.looping(feed):
                        r = run_headless(["--device", "pulse", "--model", str(model_of(v)), "--hop", str(hop),
                                          *variants[v]], args.seconds, env_extra=server.env, profile_s=0.0)
                    if r["profile"]:
                        profiles.append((f"device, hop {hop} s", r["profile"]))
                    rows.append([f"device (PulseAudio null sink, 48 kHz stereo), {v}", hop,
                                 r["cpu_steady_pct"], r["cpu_total_pct"], r["peak_rss_mb"], r["osc_values"]])
                    print(rows[-1], flush=True)
            except RuntimeError as e:
                notes.append(f"device runs failed: {e}")
            finally:
                server.stop()

    body = md_table(["input", "hop s", "CPU % of one core (steady)", "CPU % (incl. start-up)",
                     "peak RSS MB", "/mer/arousal received"], rows)
    for what, (threads, funcs) in profiles:
        body += f"\n\nProfile ({what}, {args.profile:.0f} s once steady): CPU % of one core per thread\n\n"
        body += md_table(["thread", "CPU %"], [[k, v] for k, v in threads if v >= 0.05])
        body += "\n\nBusy Python samples by leaf function (py-spy, idle waits excluded; native code "
        body += "shows as the Python call that entered it)\n\n"
        body += md_table(["function", "% of busy samples"], [[k, v] for k, v in funcs[:10]])
    record(
        f"mer-live --headless for {args.seconds:.0f} s (bench_headless, {model.name})",
        body,
        notes=[
            "`python -m mer_live --headless ... --hop H --osc 127.0.0.1:PORT "
            f"--duration {args.seconds:.0f}`; "
            "CPU from /proc/<pid>/stat utime+stime (all threads), steady = from 5 s after launch; peak RSS "
            "= VmHWM; OSC at the default 30 Hz to a real UDP listener.",
            "Floors at 0.1 s: <= 10% of one core, peak RSS <= 200 MB.",
            *notes,
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
