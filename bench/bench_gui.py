"""What the dashboard costs: pipeline hop rate and process CPU with the window open vs headless.

Both runs happen in one process, one after the other, on the same paced, looping demo audio and
the same model, so the difference is the window (Qt timer, pyqtgraph redraws, the status panel).
Qt renders offscreen unless QT_QPA_PLATFORM says otherwise; a real X window:

    xvfb-run -a -s "-screen 0 1600x900x24" env QT_QPA_PLATFORM=xcb python -m bench.bench_gui

``--screenshot docs/dashboard.png`` instead plays the demo with the window open and saves a
screenshot (docs/dashboard.png is made this way, with ``--size 1366x768``, a common laptop screen).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from bench.common import (  # noqa: E402
    ROOT,
    UdpListener,
    md_table,
    model_file,
    positive_float,
    proc_cpu_seconds,
    record,
    run_cli,
)


def pick_model(arg: str | Path | None, tmp: Path) -> tuple[Path, str]:
    """The model to run: --model, else the shipped default, else the loudness test model."""
    if arg:
        return Path(arg), Path(arg).stem
    shipped = ROOT / "models" / "mer-default.onnx"
    if shipped.is_file():
        return shipped, "shipped mer-default"
    from tests.modelkit import make_loudness_model

    return make_loudness_model(tmp / "loudness.onnx"), "loudness test model (no shipped model yet)"


def make_app(model_path: Path, osc_port: int | None):
    """What mer-live runs by default (music gate, teacher, beat, sections: ``assemble.build_live``)
    on the looping demo, OSC only to ``osc_port``."""
    from mer_live.assemble import build_live
    from mer_live.config import build_config
    from mer_live.inference.model import Model
    from mer_live.sources.demo import demo_audio
    from mer_live.sources.filesource import FileSource

    sr = 22050
    audio = demo_audio(sr)

    def factory(_spec):
        return FileSource(audio, sr, realtime=True, loop=True, name="demo")

    osc = {"targets": [f"127.0.0.1:{osc_port}"]} if osc_port is not None else {"enabled": False}
    cfg = build_config({"osc": osc})
    return build_live(cfg, Model(model_path, provider="cpu"), source=(factory, None))


def measure(app, seconds: float, run: Callable[[float], None]) -> dict[str, float]:
    """Hop rate and process CPU % (all threads, from /proc/self/stat) over ``seconds`` of ``run``."""
    app.start()
    time.sleep(1.5)  # past the first window and the start-up transient
    h0, c0, t0 = app.pipeline.hops, proc_cpu_seconds(), time.monotonic()
    run(seconds)
    h1, c1, t1 = app.pipeline.hops, proc_cpu_seconds(), time.monotonic()
    skipped = app.pipeline.hops_skipped
    app.stop()
    wall = t1 - t0
    return {"wall_s": wall, "hops_per_s": (h1 - h0) / wall, "cpu_pct": 100.0 * (c1 - c0) / wall,
            "hops_skipped": float(skipped)}


def run_qt(qapp, seconds: float) -> None:
    from PySide6 import QtCore

    QtCore.QTimer.singleShot(int(seconds * 1000), qapp.quit)
    qapp.exec()


def bench(seconds: float, model_arg: str | Path | None, do_record: bool) -> None:
    from PySide6 import QtWidgets

    from mer_live.ui.dashboard import DashboardWindow

    qapp = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        model_path, model_desc = pick_model(model_arg, Path(tmp))
        headless_app = make_app(model_path, None)
        headless = measure(headless_app, seconds, time.sleep)

        app = make_app(model_path, None)
        win = DashboardWindow(app, devices=lambda: [])
        win.resize(1600, 900)
        win.show()
        draw_ms: list[float] = []
        ticks = [0]
        orig_draw, orig_tick = win.draw, win.tick

        def timed_draw(*a, **k):
            t = time.perf_counter()
            orig_draw(*a, **k)
            draw_ms.append(1000 * (time.perf_counter() - t))

        def counted_tick():
            ticks[0] += 1
            orig_tick()

        win.draw = timed_draw  # type: ignore[method-assign]
        win.timer.timeout.disconnect()
        win.timer.timeout.connect(counted_tick)
        f0 = [0]

        def run(s: float) -> None:
            f0[0], ticks[0] = len(draw_ms), 0
            run_qt(qapp, s)

        gui = measure(app, seconds, run)
        frames = len(draw_ms) - f0[0]
        gui["redraws_per_s"] = frames / gui["wall_s"]
        gui["ticks_per_s"] = ticks[0] / gui["wall_s"]
        win.close()

    import numpy as np

    d = np.array(draw_ms[f0[0]:]) if len(draw_ms) > f0[0] else np.zeros(1)
    rows = [
        ["headless", f"{headless['hops_per_s']:.2f}", f"{headless['cpu_pct']:.1f}", "–", "–", "–",
         int(headless["hops_skipped"])],
        ["window open", f"{gui['hops_per_s']:.2f}", f"{gui['cpu_pct']:.1f}", f"{gui['ticks_per_s']:.1f}",
         f"{gui['redraws_per_s']:.1f}", f"{np.median(d):.1f} / {np.percentile(d, 99):.1f}",
         int(gui["hops_skipped"])],
    ]
    body = md_table(["run", "hops/s", "process CPU %", "timer ticks/s", "redraws/s",
                     "redraw ms median / p99", "hops skipped"], rows)
    notes = [
        f"{seconds:.0f} s each, same process, demo audio (22050 Hz, paced, looping), hop 0.1 s, "
        f"model: {model_desc}, 1 onnxruntime thread",
        f"Qt platform: {os.environ.get('QT_QPA_PLATFORM')}, window 1600x900; CPU % is the whole process "
        "(all threads; 100 % = one core), from /proc/self/stat",
        "a redraw happens only when a new estimate arrived (timer at 30 fps, estimates at 10/s)",
    ]
    title = "Dashboard cost: window open vs headless"
    if do_record:
        record(title, body, notes)
    else:
        print(body)
        print("\n".join(f"- {n}" for n in notes))


def screenshot(path: Path, at_s: float, model_arg: str | Path | None,
               size: tuple[int, int] = (1600, 900)) -> None:
    """Play the demo with the window open for ``at_s`` seconds, then save a screenshot."""
    from PySide6 import QtWidgets

    from mer_live.ui.dashboard import DashboardWindow, GuiSettings

    qapp = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    listener = UdpListener()  # a real OSC receiver, so the status shows a real send rate
    with tempfile.TemporaryDirectory() as tmp:
        model_path, model_desc = pick_model(model_arg, Path(tmp))
        app = make_app(model_path, listener.port)
        app.start()
        win = DashboardWindow(app, GuiSettings(history_s=60, trail_s=10), devices=lambda: [])
        win.resize(*size)
        win.show()
        run_qt(qapp, at_s)
        path.parent.mkdir(parents=True, exist_ok=True)
        win.grab().save(str(path))
        win.close()
    listener.close()
    print(f"saved {path} after {at_s:.0f} s of the demo; model: {model_desc}; "
          f"OSC messages received: {len(listener.messages)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=positive_float, default=20.0, help="length of each run")
    ap.add_argument("--model", type=model_file,
                    help="ONNX model (default: models/mer-default.onnx, else the test model)")
    ap.add_argument("--no-record", action="store_true",
                    help="print only, do not append to docs/benchmarks.md")
    ap.add_argument("--screenshot", type=Path, help="save a screenshot of the demo instead of benchmarking")
    ap.add_argument("--at", type=positive_float, default=32.0, help="seconds of demo before the screenshot")
    ap.add_argument("--size", default="1600x900", help="the window's size for --screenshot, WxH")
    a = ap.parse_args(argv)
    if a.screenshot:
        w, h = (int(v) for v in a.size.lower().split("x"))
        screenshot(a.screenshot, a.at, a.model, (w, h))
    else:
        bench(a.seconds, a.model, not a.no_record)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
