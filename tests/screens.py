"""Real X screens for the dashboard: Xvfb at a given size with openbox (a real window manager), and a
probe that opens the window there as ``mer-live`` does and reports what the screen shows.

Why a subprocess: a process has one QApplication on one Qt platform, and pytest-qt's is offscreen.
The probe (``python -m tests.screens``) runs a real LiveApp (the model it is given, a paced
FileSource: silence, a pad, then a drum groove, so a song starts, a section follows and beats come),
shows the window with ``show_placed`` (remembering in ``$XDG_CONFIG_HOME``), waits until the window
manager has framed it and a value is drawn, saves a screenshot of the whole screen and writes the
widgets' global geometry as JSON. Every wait has a timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SETTLE_S = 0.6  #: the frame must stay unchanged this long (the window manager is done)


@contextmanager
def x_screen(width: int, height: int, home: Path) -> Iterator[dict[str, str]]:
    """Xvfb at ``width`` x ``height`` plus openbox on it; yields the environment to run Qt there.

    ``home`` becomes XDG_CONFIG_HOME (openbox's and the window's settings). Both servers are
    always killed."""
    procs: list[subprocess.Popen] = []
    r, w = os.pipe()
    try:
        procs.append(subprocess.Popen(
            ["Xvfb", "-displayfd", str(w), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp",
             "-noreset"], pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        os.close(w)
        w = -1
        ready, _, _ = select.select([r], [], [], 10.0)
        number = os.read(r, 64).decode().strip() if ready else ""
        if not number:
            raise RuntimeError("Xvfb did not start within 10 s")
        env = {**os.environ, "DISPLAY": f":{number}", "XDG_CONFIG_HOME": str(home),
               "QT_QPA_PLATFORM": "xcb"}
        env.pop("WAYLAND_DISPLAY", None)
        flag = home / f"openbox-ready-{number}"
        procs.append(subprocess.Popen(["openbox", "--sm-disable", "--startup", f"touch {flag}"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 10.0
        while not flag.exists():  # --startup runs once openbox manages the screen
            if time.monotonic() > deadline or procs[-1].poll() is not None:
                raise RuntimeError("openbox did not start within 10 s")
            time.sleep(0.05)
        yield env
    finally:
        if w >= 0:
            os.close(w)
        os.close(r)
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(3.0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(3.0)


def run_probe(env: dict[str, str], out: Path, model: Path, *extra: str, scale: float = 1.0,
              timeout: float = 40.0) -> dict[str, Any]:
    """Run the probe on the X screen of ``env``; its report (``out``/report.json) as a dict."""
    out.mkdir(parents=True, exist_ok=True)
    penv = {**env, "QT_SCALE_FACTOR": f"{scale:g}"}
    cmd = [sys.executable, "-m", "tests.screens", "--out", str(out), "--model", str(model), *extra]
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run(cmd, env=penv, cwd=root, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"probe failed ({r.returncode}): {r.stderr[-3000:]}")
    rep = json.loads((out / "report.json").read_text())
    rep["stderr"] = r.stderr
    return rep


# --- the probe (runs in the subprocess) ------------------------------------------------------------
def _rect(r: Any) -> list[int]:
    return [r.x(), r.y(), r.width(), r.height()]


def _global(w: Any) -> list[int]:
    from PySide6 import QtCore

    p = w.mapToGlobal(QtCore.QPoint(0, 0))
    return [p.x(), p.y(), w.width(), w.height()]


def _wait(qapp: Any, cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise SystemExit(f"probe: timed out after {timeout:g} s waiting for {said}")
        qapp.processEvents()
        time.sleep(0.01)


def _settle(qapp: Any, win: Any, timeout: float = 8.0) -> None:
    """Until the frame geometry has not changed for SETTLE_S (the window manager is done)."""
    last, since = None, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        qapp.processEvents()
        g = (_rect(win.frameGeometry()), _rect(win.geometry()), win.isMaximized(), win.isFullScreen())
        if g != last:
            last, since = g, time.monotonic()
        elif time.monotonic() - since >= SETTLE_S:
            return
        time.sleep(0.02)
    raise SystemExit("probe: the window did not settle")


def _audio(sr: int):
    import numpy as np

    from tests.grooves import groove, pad

    music, _ = groove(128.0, 24.0, sr, gain=0.5)  # a section: the pad gives way to the drums
    return np.concatenate([np.zeros(int(1.5 * sr), np.float32), pad(5.0, sr, gain=0.3).astype(np.float32),
                           music])


def probe(a: argparse.Namespace) -> int:
    from PySide6 import QtCore, QtWidgets

    qapp = QtWidgets.QApplication(["mer-live"])
    import pyqtgraph as pg

    from mer_live.assemble import make_analysers
    from mer_live.config import build_config
    from mer_live.inference.model import Model
    from mer_live.live.app import LiveApp
    from mer_live.live.pipeline import PipelineConfig
    from mer_live.sources.filesource import FileSource
    from mer_live.ui.dashboard import DashboardWindow, GuiSettings

    pg.setConfigOptions(antialias=True)
    sr = 22050
    audio = _audio(sr)
    analysers, hooks = make_analysers(build_config({}))
    app = LiveApp(Model(Path(a.model), provider="cpu"), PipelineConfig(hop_s=0.1), lambda _s: FileSource(
        audio, sr, realtime=True, loop=False, name="groove"), extra_sinks=hooks, analysers=analysers)
    app.start()
    try:
        win = DashboardWindow(app, GuiSettings(history_s=30, trail_s=5), devices=lambda: ["groove"])
    except BaseException:
        app.stop()
        raise
    win.show_placed(fullscreen=a.fullscreen)
    try:
        _wait(qapp, lambda: win.isVisible() and win.windowHandle() is not None
              and win.windowHandle().isExposed(), 10.0, "the window to be exposed")
        _wait(qapp, lambda: win.frames_drawn > 0, 15.0, "the first estimate drawn")
        if a.marks:
            seen = {"pulse": False}

            def marked() -> bool:
                seen["pulse"] |= win.pulse.level > 0
                kinds = {m.kind for m in win.series.marks}
                return seen["pulse"] and {"song", "section"} <= kinds and win.big["bpm"].text() != "–"

            _wait(qapp, marked, 25.0, lambda: "a song start, a section and a beat pulse (seen: "
                  + repr((seen, [m.kind for m in win.series.marks], win.big["bpm"].text(),
                          [e.kind for e in app.history.events()][-5:], app.history.snapshot()[-1])) + ")")
        _settle(qapp, win)
        if a.then == "fullscreen":
            win.showFullScreen()
            _settle(qapp, win)
        elif a.then:
            w, h, x, y = (int(v) for v in a.then.replace("+", "x").split("x"))
            win.showNormal()
            _settle(qapp, win)
            win.setGeometry(x, y, w, h)
            _settle(qapp, win)
        for _ in range(5):  # a last redraw after the settle
            qapp.processEvents()
            time.sleep(0.02)
        screen = win.screen()
        shot = screen.grabWindow(0)
        shot.save(str(Path(a.out) / "screen.png"))
        vb = win.plane.getPlotItem().getViewBox()
        plane_view = vb.mapRectToScene(vb.boundingRect())
        svb = win.series.getPlotItem().getViewBox()
        edge = win.series.mapToGlobal(win.series.mapFromScene(svb.mapViewToScene(QtCore.QPointF(0.0, 0.5))))
        p0 = win.plane.mapToGlobal(win.plane.mapFromScene(plane_view.topLeft()))
        parts = {"plane": win.plane, "numbers": win.numbers, "quadrant_panel": win.quadrant_panel,
                 "series": win.series, "input": win.input_panel, "status": win.status_panel,
                 "controls": win.controls, "status_line": win.status_line, "fs_button": win.fs_button,
                 "arousal": win.big["arousal"], "valence": win.big["valence"], "bpm": win.big["bpm"],
                 "quadrant": win.quadrant, "pulse": win.pulse}
        report = {
            "screen": {"geometry": _rect(screen.geometry()), "available": _rect(screen.availableGeometry()),
                       "dpr": screen.devicePixelRatio(), "shot": [shot.width(), shot.height()]},
            "window": {"frame": _rect(win.frameGeometry()), "geometry": _rect(win.geometry()),
                       "maximized": win.isMaximized(), "fullscreen": win.isFullScreen(),
                       "folded": list(win.folded), "dpr": win.devicePixelRatio()},
            "widgets": {k: {"visible": w.isVisible() and not w.visibleRegion().isEmpty(),
                            "rect": _global(w)} for k, w in parts.items()},
            "texts": {k: parts[k].text() for k in ("arousal", "valence", "bpm", "quadrant")},
            "font_px": {k: parts[k].fontInfo().pixelSize() for k in ("arousal", "valence", "bpm",
                                                                     "quadrant")},
            "plane_view": [p0.x(), p0.y(), round(plane_view.width()), round(plane_view.height())],
            "live_edge": [edge.x(), edge.y()],
            "marks": [m.kind for m in win.series.marks],
        }
    finally:
        win.close()  # saves the window's place
        app.stop()
    (Path(a.out) / "report.json").write_text(json.dumps(report, indent=1))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description="open the dashboard on this X screen and report")
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--fullscreen", action="store_true", help="as [gui] fullscreen = true")
    ap.add_argument("--marks", action="store_true", help="also wait for a song start, a section and a beat")
    ap.add_argument("--then", default="", help="'fullscreen' or WxH+X+Y (normal) before the report")
    return probe(ap.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
