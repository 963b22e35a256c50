"""Shared pieces of the benchmarks: machine facts, timing statistics, process probes, and the
one function that appends a result section to ``docs/benchmarks.md``.

Why one module: every benchmark must record the same context (CPU, cores, load, versions, exact
command) so numbers from different days and machines can be compared honestly.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH_MD = ROOT / "docs" / "benchmarks.md"
SHARED_DATA = ROOT.parent / "shared" / "data"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- machine facts


def cpu_model() -> str:
    """The CPU model string from /proc/cpuinfo (what the numbers depend on most)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg() -> str:
    """1/5/15-minute load average: the machine is shared, so every record says how busy it was."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def versions() -> dict[str, str]:
    """Versions of what the timings depend on."""
    import onnxruntime as ort

    return {
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
    }


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "n/a"
    except (OSError, subprocess.SubprocessError):
        return "n/a"


def gpu_note() -> str:
    """Say plainly whether a GPU path was measured (none is lent to this project's benchmarks)."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        return "onnxruntime has CUDAExecutionProvider"
    return "no GPU: onnxruntime CPU build only (CUDA path tested by its CPU fallback)"


def machine_lines() -> list[str]:
    v = versions()
    return [
        f"- date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores (shared), load average {loadavg()}",
        f"- versions: Python {v['python']}, onnxruntime {v['onnxruntime']}, numpy {v['numpy']}; "
        f"commit {git_commit()}",
        f"- accelerator: {gpu_note()}",
    ]


def command_line() -> str:
    """The exact command that produced a record, as one would retype it from the repo root."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(".py"):
        try:
            rel = Path(argv[0]).resolve().relative_to(ROOT)
            mod = ".".join(rel.with_suffix("").parts)
            return "python -m " + shlex.join([mod, *argv[1:]])
        except ValueError:
            pass
    return "python " + shlex.join(argv)


# ----------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Stats:
    """Summary of repeated timings (seconds in, reported in whatever unit the caller scales to)."""

    n: int
    median: float
    p99: float
    mean: float
    min: float
    max: float

    def scaled(self, k: float) -> Stats:
        return Stats(self.n, self.median * k, self.p99 * k, self.mean * k, self.min * k, self.max * k)


def stats(samples: Sequence[float]) -> Stats:
    a = np.asarray(samples, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no samples")
    return Stats(
        n=int(a.size),
        median=float(np.median(a)),
        p99=float(np.percentile(a, 99)),
        mean=float(a.mean()),
        min=float(a.min()),
        max=float(a.max()),
    )


def time_calls(fn: Callable[[], object], n: int, warmup: int = 5) -> list[float]:
    """Wall seconds of ``n`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


# ----------------------------------------------------------------------------- output


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def record(title: str, body: str, notes: Sequence[str] = (), path: Path = BENCH_MD) -> None:
    """Print ``body`` and append a dated section (machine, versions, command, body, notes).

    Appending (never rewriting) keeps the history: a later, quieter run sits below an earlier one.
    """
    section = [f"\n### {title}\n", *machine_lines(), f"- command: `{command_line()}`", "", body, ""]
    section += [f"- {n}" for n in notes]
    text = "\n".join(section).rstrip() + "\n"
    print(text)
    if os.environ.get("MER_BENCH_NO_RECORD"):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


# ----------------------------------------------------------------------------- process probes


def proc_peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident set (VmHWM) of a process, MB; NaN when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def proc_rss_mb(pid: int | str = "self") -> float:
    """Current resident set (VmRSS) of a process, MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def proc_cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of a process (all its threads), seconds."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = raw.rsplit(")", 1)[1].split()
    # after the ')' field 3 is state; utime and stime are fields 14 and 15 of the full line
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class UdpListener:
    """A real UDP socket on 127.0.0.1 that records (arrival monotonic time, address, args) of OSC
    messages (bundles are unpacked). Runs its own thread; ``close`` stops it."""

    def __init__(self, port: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", port or 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.messages: list[tuple[float, str, tuple]] = []
        self.first_packet: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="udp-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from pythonosc.osc_packet import OscPacket, ParseError

        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            if self.first_packet is None:
                self.first_packet = now
            try:
                pkt = OscPacket(data)
            except ParseError:
                continue
            for m in pkt.messages:
                self.messages.append((now, m.message.address, tuple(m.message.params)))

    def wait_first(self, timeout: float) -> float | None:
        end = time.monotonic() + timeout
        while self.first_packet is None and time.monotonic() < end:
            time.sleep(0.001)
        return self.first_packet

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


# ----------------------------------------------------------------------------- models & data


def default_models() -> list[Path]:
    """Every emotion model shipped in models/ (an .onnx with its card whose outputs start with arousal
    and valence; not the fusion's teacher, musicnn-msd.onnx, timed by bench_teacher)."""
    import json

    def is_emotion_model(card: Path) -> bool:
        try:
            outputs = json.loads(card.read_text()).get("outputs", ["arousal", "valence"])
            return list(outputs[:2]) == ["arousal", "valence"]
        except (OSError, ValueError):
            return True  # an unreadable card: let the benchmark say what is wrong with it

    return sorted(p for p in (ROOT / "models").glob("*.onnx")
                  if p.with_suffix(".json").is_file() and is_emotion_model(p.with_suffix(".json")))


def fourq_clips(n: int) -> list[Path]:
    """The first ``n`` 4Q clips (sorted, so every run uses the same ones); [] when data is absent."""
    d = SHARED_DATA / "4q" / "audio"
    if not d.is_dir():
        return []
    return sorted(d.glob("*.mp3"))[:n]


def env_threads(n: int) -> dict[str, str]:
    """Environment that pins BLAS/OpenMP thread pools of a subprocess to ``n`` threads."""
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(n)
    return env


# ----------------------------------------------------------------------------- command line


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (bad input is a one-line usage error, not a traceback)."""
    import argparse

    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return v


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    import argparse
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def model_file(text: str) -> Path:
    """argparse type: an existing ``.onnx`` file with its ``.json`` card beside it."""
    import argparse

    p = Path(text)
    if not p.is_file():
        raise argparse.ArgumentTypeError(f"model not found: {text}")
    if p.suffix != ".onnx":
        raise argparse.ArgumentTypeError(f"not an .onnx model: {text}")
    if not p.with_suffix(".json").is_file():
        raise argparse.ArgumentTypeError(f"model card missing: {p.with_suffix('.json')}")
    return p


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a benchmark's ``main``; turn the failures a user can cause or meet (a bad model, a
    missing tool, a subprocess that failed, Ctrl-C) into one line on stderr and exit code 1/130."""
    from mer_live.inference.model import ModelError

    prog = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "bench"
    try:
        return main(argv)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ModelError, ValueError, OSError, RuntimeError, subprocess.SubprocessError, ImportError) as e:
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 1


# ----------------------------------------------------------------------------- profiling

_IDLE_LEAVES = ("wait", "sleep", "select", "poll", "recv", "accept", "acquire")


def _thread_cpu(pid: int) -> dict[int, float]:
    out = {}
    for t in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            f = (t / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(t.name)] = (int(f[11]) + int(f[12])) / CLK_TCK
    return out


def thread_profile(pid: int, seconds: float) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Where a running Python process spends its CPU, without touching its code.

    Returns (per-thread CPU % of one core over ``seconds``, from /proc/<pid>/task/*/stat, named by
    ``py-spy dump``; threads without a Python name are PortAudio's or onnxruntime's) and (the share
    of busy ``py-spy record`` samples per leaf Python function, idle waits left out). Needs py-spy
    (``pip install py-spy``); raises RuntimeError without it.
    """
    import re
    import shutil

    if shutil.which("py-spy") is None:
        raise RuntimeError("py-spy not installed (pip install py-spy): cannot profile")
    dump = subprocess.run(["py-spy", "dump", "--pid", str(pid), "--nonblocking"], capture_output=True,
                          text=True, timeout=30)
    names = {int(m.group(1)): m.group(2) for m in re.finditer(r'Thread (\d+) \(\w+\): "(.*)"', dump.stdout)}
    c0, t0 = _thread_cpu(pid), time.monotonic()
    raw = Path(f"/tmp/mer-pyspy-{pid}.txt")
    rec = subprocess.run(["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate",
                          "200", "--format", "raw", "--output", str(raw), "--nonblocking"],
                         capture_output=True, text=True, timeout=seconds + 60)
    c1, t1 = _thread_cpu(pid), time.monotonic()
    if rec.returncode != 0 or not raw.is_file():
        raise RuntimeError(f"py-spy record failed: {(rec.stderr.strip().splitlines() or ['?'])[-1]}")
    per_thread: dict[str, float] = {}
    for tid, c in c1.items():
        name = names.get(tid, "native threads (PortAudio, onnxruntime pool, ...)")
        per_thread[name] = per_thread.get(name, 0.0) + 100.0 * (c - c0.get(tid, 0.0)) / (t1 - t0)
    leaves: dict[str, int] = {}
    busy = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.rsplit(";", 1)[-1]
        fn = re.sub(r":\d+\)$", ")", leaf).strip() or "(no Python frame: native code on a Python thread)"
        if any(k in fn.split(" (")[0].lower() for k in _IDLE_LEAVES):
            continue
        n = int(count)
        busy += n
        leaves[fn] = leaves.get(fn, 0) + n
    raw.unlink(missing_ok=True)
    threads = sorted(per_thread.items(), key=lambda kv: -kv[1])
    funcs = sorted(((k, 100.0 * v / max(busy, 1)) for k, v in leaves.items()), key=lambda kv: -kv[1])
    return threads, funcs
