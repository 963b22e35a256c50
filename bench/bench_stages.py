"""Where a core goes in ``mer-live --headless``: CPU time per stage of the live path.

Why (issue #28): the model is ~1 ms of a 0.1-s hop, yet the default takes several per cent of a
core; before cutting, measure what the rest is. A child process runs the real ``mer-live``
(``mer_live.cli.main``: the same wiring, models, threads and sockets) with each stage's entry
point wrapped in a thread-CPU timer (``time.thread_time_ns``: the CPU of the calling thread only,
so a loaded host inflates it far less than wall time). Stages nest (the presence model calls
``Model.predict``; ``Stream.push`` calls the resampler): each stage counts its EXCLUSIVE time, the
time of the stages it calls is given to them. What no stage claims on a thread is that thread's
own loop: wake-ups, waits, bookkeeping (the rows "... other").

    python -m bench.bench_stages [--seconds 30] [--no-device] [--no-file] [-- extra mer-live flags]

Rows: % of one core, over the steady part of the run (from 5 s after launch to 0.5 s before the
end). The wrappers cost ~1 us per call, a few hundred calls a second: below 0.1 % of a core.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import ROOT, UdpListener, md_table, positive_float, record

STEADY_AFTER_S = 5.0

#: (module, class, method, stage): the live path's entry points, device to wire; the stage is a name,
#: a function of the instance giving one, or None (a thread's own loop: its time goes to "other")
STAGES = (
    ("mer_live.sources.capture", "DeviceSource", "_callback",
     "capture: PortAudio callback (copy into the ring)"),
    ("mer_live.sources.filesource", "FileSource", "_run", None),  # the paced file's own thread: its loop
    ("mer_live.live.ringbuffer", "RingBuffer", "read_new", "ring: read"),
    ("mer_live.live.stream", "Stream", "push", "stream: sanitize, downmix, gain, DC blocker"),
    ("soxr", "ResampleStream", "resample_chunk", "stream: resampler (soxr HQ)"),
    ("mer_live.live.stream", "Stream", "_append", "stream: history, hop clock, levels"),
    ("mer_live.analysers.beat", "BeatTracker", "process", "analyser: beat (aubio tempo + onset)"),
    ("mer_live.analysers.sections", "SectionDetector", "process", "analyser: sections"),
    ("mer_live.inference.presence", "MusicGate", "update", "music gate (hysteresis)"),
    ("mer_live.inference.model", "Model", "predict",
     lambda m: "presence model (onnxruntime)" if tuple(m.outputs) == ("music",) else "CNN (onnxruntime)"),
    ("mer_live.inference.fusion", "Fusion", "logits", "teacher (musicnn, onnxruntime)"),
    ("mer_live.inference.fusion", "TeacherThread", "submit", "teacher: hand-off and recent patches"),
    ("mer_live.inference.fusion", "TeacherThread", "recent", "teacher: hand-off and recent patches"),
    ("mer_live.live.smoothing", "Smoother", "update", "smoothing"),
    ("mer_live.live.estimator", "Estimator", "judge", "estimator: the rest of judge"),
    ("mer_live.live.sinks", "Sinks", "publish", "sinks: fan-out (History, printer, record ...)"),
    ("mer_live.live.sinks", "Sinks", "event", "sinks: fan-out (History, printer, record ...)"),
    ("mer_live.outputs.osc", "OscSender", "_send_values", "OSC: build value messages"),
    ("mer_live.outputs.osc", "OscSender", "_send", "OSC: bundle and hand to the targets"),
    ("mer_live.outputs.osc", "_Target", "send", "OSC: UDP send (kernel)"),
    ("mer_live.outputs.terminal", "TerminalPrinter", "_print_latest", "terminal: format and print"),
)

_CHILD = r"""
import sys, json
from bench.bench_stages import child
child(float(sys.argv[1]), sys.argv[2], sys.argv[3:])
"""


class _Clock:
    """Exclusive thread-CPU time per stage; a per-thread stack hands nested time to the inner stage."""

    def __init__(self) -> None:
        self.ns: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)
        self._local = threading.local()

    def wrap(self, owner: type, name: str, stage: str | Callable[[Any], str] | None) -> None:
        fn = getattr(owner, name)
        clock = self

        def timed(*a, **k):  # noqa: ANN002, ANN003, ANN202 - any signature
            st = getattr(clock._local, "stack", None)
            if st is None:
                st = clock._local.stack = []
            t0 = time.thread_time_ns()
            st.append(0)  # the time of the stages called from here
            try:
                return fn(*a, **k)
            finally:
                inner = st.pop()
                spent = time.thread_time_ns() - t0
                if stage is not None:
                    key = stage if isinstance(stage, str) else stage(a[0])
                    clock.ns[key] += spent - inner
                    clock.calls[key] += 1
                if st:
                    st[-1] += spent if stage is not None else inner

        setattr(owner, name, timed)


def _thread_cpu() -> dict[int, float]:
    out = {}
    for t in Path("/proc/self/task").iterdir():
        try:
            f = (t / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(t.name)] = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return out


def child(seconds: float, out_path: str, argv: list[str]) -> None:
    """In the child: wrap the stages, run mer-live, write the steady window's numbers as JSON."""
    import importlib

    clock = _Clock()
    for mod, cls, meth, stage in STAGES:
        owner = getattr(importlib.import_module(mod), cls)
        clock.wrap(owner, meth, stage)
    snaps: dict[str, dict] = {}

    def snap(key: str) -> None:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        names = {t.native_id: t.name for t in threading.enumerate()}
        snaps[key] = {"wall": time.monotonic(), "cpu": ru.ru_utime + ru.ru_stime, "ns": dict(clock.ns),
                      "calls": dict(clock.calls),
                      "threads": {names.get(k, "native (PortAudio, onnxruntime pool ...)") + f"#{k}": v
                                  for k, v in _thread_cpu().items()}}

    threading.Timer(STEADY_AFTER_S, snap, ("a",)).start()
    threading.Timer(seconds - 0.5, snap, ("b",)).start()
    from mer_live.cli import main

    rc = main([*argv, "--headless", "--duration", str(seconds)])
    a, b = snaps["a"], snaps["b"]
    wall = b["wall"] - a["wall"]
    stages = {k: (v - a["ns"].get(k, 0)) / 1e9 / wall * 100 for k, v in b["ns"].items()}
    calls = {k: (v - a["calls"].get(k, 0)) / wall for k, v in b["calls"].items()}
    threads: dict[str, float] = defaultdict(float)
    for k, v in b["threads"].items():
        threads[k.split("#")[0]] += (v - a["threads"].get(k, 0.0)) / wall * 100
    cpu_pct = (b["cpu"] - a["cpu"]) / wall * 100
    Path(out_path).write_text(json.dumps({"rc": rc, "wall": wall, "cpu_pct": cpu_pct, "stages": stages,
                                          "calls": calls, "threads": threads}))


def run(argv: list[str], seconds: float, env_extra: dict[str, str] | None = None) -> dict:
    """One profiled ``mer-live`` child; returns its JSON (``cpu_pct``, ``stages``, ``threads``)."""
    out = Path(tempfile.mkstemp(prefix="mer-stages-", suffix=".json")[1])
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env_extra or {}))
    lis = UdpListener()  # a real receiver: sends cost what they cost on stage
    try:
        p = subprocess.run([sys.executable, "-c", _CHILD, str(seconds), str(out), *argv, "--osc",
                            f"127.0.0.1:{lis.port}"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, timeout=seconds + 60)
    finally:
        lis.close()
    if p.returncode != 0 or not out.read_text().strip():
        raise RuntimeError(f"profiled mer-live failed ({p.returncode}): {p.stderr.strip()[-300:]}")
    r = json.loads(out.read_text())
    out.unlink()
    return r


def table(r: dict) -> str:
    """Stages (exclusive) then each thread's unclaimed rest, as % of one core."""
    order = sorted(r["stages"], key=lambda s: -r["stages"][s])
    rows = [[k, r["stages"][k], r["calls"].get(k, 0.0)] for k in order if r["stages"][k] >= 0.005]
    claimed = sum(r["stages"].values())
    rows.append(["everything else (thread loops, wake-ups, waits, interpreter)", r["cpu_pct"] - claimed, ""])
    rows.append(["**process total**", r["cpu_pct"], ""])
    body = md_table(["stage", "% of one core", "calls/s"], rows)
    body += "\n\nPer thread (% of one core):\n\n"
    body += md_table(["thread", "% of one core"],
                     [[k, v] for k, v in sorted(r["threads"].items(), key=lambda kv: -kv[1]) if v >= 0.05])
    return body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=positive_float, default=30.0)
    ap.add_argument("--no-device", action="store_true", help="skip the PulseAudio null-sink run")
    ap.add_argument("--no-file", action="store_true", help="skip the paced-file run")
    ap.add_argument("extra", nargs="*", help="more mer-live flags (after --)")
    args = ap.parse_args(argv)
    if args.seconds <= STEADY_AFTER_S + 2:
        ap.error(f"--seconds must be more than {STEADY_AFTER_S + 2:g}")
    from bench.bench_headless import demo_wav

    tmp = Path(tempfile.mkdtemp(prefix="mer-bench-stages-"))
    sections: list[str] = []
    notes = ["exclusive thread-CPU time per stage (time.thread_time_ns around each entry point), steady "
             f"window from {STEADY_AFTER_S:g} s after launch; defaults unless extra flags are shown"]
    if not args.no_file:
        wav = demo_wav(tmp / "demo22k.wav", 22050, 1)
        r = run(["--input", str(wav), "--loop", *args.extra], args.seconds)
        sections.append("**Paced file** (`--input demo22k.wav --loop`, 22.05 kHz mono)\n\n" + table(r))
        print(sections[-1], flush=True)
    if not args.no_device:
        from tests.audio import PulseServer, missing_tools

        why = missing_tools()
        if why:
            notes.append(f"device run skipped: {why}")
        else:
            server = PulseServer(tmp / "pulse")
            server.start()
            feed = demo_wav(tmp / "demo48k.wav", 48000, 2)
            try:
                with server.looping(feed):
                    r = run(["--device", "pulse", *args.extra], args.seconds, server.env)
                sections.append("**Capture device** (PulseAudio null sink, 48 kHz stereo)\n\n" + table(r))
                print(sections[-1], flush=True)
            finally:
                server.stop()
    record("Where a core goes: mer-live --headless per stage (bench_stages)", "\n\n".join(sections), notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
