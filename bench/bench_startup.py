"""Start-up time: launching ``mer-live --headless`` -> its first OSC message at a UDP listener.

Why: a performer restarting mer-live mid-show (crash, wrong device) waits this long in the dark.
Two moments are measured from ``Popen``: the first datagram of any kind (the sender's heartbeat:
the process is up, the model is loaded and probed, OSC is live) and the first ``/mer/arousal``
(the first estimate, which also waits for one full model window of paced audio). Median of
several runs; then ``python -X importtime`` shows what the import phase is made of.

    python -m bench.bench_startup [--runs 7] [--model M]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT, UdpListener, md_table, model_file, positive_int, record, run_cli, stats

WAV = Path("/tmp/mer-bench-startup.wav")


def demo_wav() -> Path:
    """A WAV of the bundled demo (the input is a file, so no device start-up is included)."""
    if not WAV.is_file():
        import soundfile as sf

        from mer_live.sources.demo import demo_audio

        sf.write(str(WAV), demo_audio(22050), 22050, subtype="PCM_16")
    return WAV


def one_launch(model: Path, wav: Path, timeout: float = 30.0) -> tuple[float, float]:
    """Seconds from Popen to the first datagram and to the first /mer/arousal message."""
    lis = UdpListener()
    cmd = [sys.executable, "-m", "mer_live", "--headless", "--input", str(wav), "--model", str(model),
           "--osc", f"127.0.0.1:{lis.port}", "--duration", str(timeout)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        first = lis.wait_first(timeout)
        value = None
        end = t0 + timeout
        while value is None and time.monotonic() < end and proc.poll() is None:
            value = next((m[0] for m in list(lis.messages) if m[1].endswith("/arousal")), None)
            time.sleep(0.002)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=5)
        lis.close()
    if first is None or value is None:
        tail = (err or b"").decode(errors="replace").strip().splitlines()[-1:] or ["(no stderr)"]
        raise RuntimeError(f"no OSC from mer-live within {timeout} s: {tail[0]}")
    return first - t0, value - t0


def import_profile(model: Path, wav: Path, top: int = 12) -> list[tuple[str, float]]:
    """Cumulative import time (ms) of the heaviest packages (root modules, wherever first imported)
    in a real short ``mer-live --headless`` run, from ``python -X importtime``."""
    cmd = [sys.executable, "-X", "importtime", "-m", "mer_live", "--headless", "--input", str(wav),
           "--model", str(model), "--no-osc", "--duration", "0.3"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    cum: dict[str, float] = {}
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
        if not m:
            continue
        name = m.group(3)
        if "." not in name or name.startswith("mer_live."):  # a package root includes its children
            cum[name] = max(cum.get(name, 0.0), int(m.group(2)) / 1000.0)
    return sorted(cum.items(), key=lambda kv: -kv[1])[:top]


def model_load_ms(model: Path, runs: int = 5) -> float:
    from mer_live.inference.model import Model

    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        Model(model, provider="cpu", threads=1)
        ts.append(time.perf_counter() - t)
    return stats(ts).median * 1e3


def main(argv: list[str] | None = None) -> int:
    from bench.bench_model import pick_model
    from mer_live.inference.model import load_card

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=positive_int, default=7)
    ap.add_argument("--model", type=model_file)
    args = ap.parse_args(argv)
    model = pick_model(args.model)
    wav = demo_wav()
    firsts, values = [], []
    for i in range(args.runs):
        f, v = one_launch(model, wav)
        firsts.append(f)
        values.append(v)
        print(f"run {i + 1}: first OSC {f:.3f} s, first value {v:.3f} s", flush=True)
    sf, sv = stats(firsts), stats(values)
    win = load_card(model).window_seconds
    rows = [
        ["launch -> first OSC datagram (heartbeat)", sf.median, sf.min, sf.max, "<= 2 s"],
        ["launch -> first /mer/arousal", sv.median, sv.min, sv.max, "-"],
        [f"first /mer/arousal minus one window ({win:.2f} s)", sv.median - win, sv.min - win,
         sv.max - win, "-"],
    ]
    body = md_table(["moment", "median s", "min s", "max s", "floor"], rows)
    prof = import_profile(model, wav)
    body += "\n\nImport profile (`python -X importtime`, cumulative ms of top-level imports):\n\n"
    body += md_table(["package", "ms"], [[k, f"{v:.0f}"] for k, v in prof])
    body += (f"\n\nModel load + probe run ({model.name}, `Model(...)`): {model_load_ms(model):.0f} ms "
             "(median of 5).")
    record(
        f"Start-up: launch -> first OSC (bench_startup, {model.name})",
        body,
        notes=[
            f"{args.runs} launches of `python -m mer_live --headless --input demo.wav --model {model.name} "
            "--osc 127.0.0.1:PORT`, each to a fresh UDP listener; time from Popen.",
            "The first datagram is the OSC heartbeat, sent at the sender's first tick after the model is "
            "loaded; values follow once one full window of (paced) audio has arrived.",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
