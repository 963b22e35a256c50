"""The dashboard on real X screens: Xvfb at laptop and desktop sizes, at 100, 150 and 200 % scaling,
with openbox as the window manager. The window opens inside the screen's available geometry, every
panel that should show is fully on the screen (from the widgets' global geometry, as the window
manager placed them), the live values always show, and the window remembers its place between runs
until ``--reset-window``. The screenshots are saved under the test's tmp_path (screen.png).

Each run is a subprocess (tests/screens.py); every wait in it has a timeout of seconds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_module, need_tool

need_module("PySide6", "cpu")
need_tool("Xvfb", "xvfb")
need_tool("openbox", "openbox")

from mer_live.ui.dashboard import FOLD_ORDER  # noqa: E402
from tests.screens import run_probe, x_screen  # noqa: E402

pytestmark = pytest.mark.gui

#: the live values: never folded, always fully on the screen
LIVE = ("plane", "numbers", "quadrant_panel", "series", "arousal", "valence", "bpm", "quadrant", "pulse")
PANELS = {"status": ("status",), "controls": ("controls", "fs_button"), "input": ("input",)}


def _inside(r: list[int], a: list[int], tol: int) -> bool:
    x, y, w, h = r
    ax, ay, aw, ah = a
    return x >= ax - tol and y >= ay - tol and x + w <= ax + aw + tol and y + h <= ay + ah + tol


def _check_fits(rep: dict[str, Any], scale: float) -> None:
    """Everything that should show is visible and inside the screen's available geometry and the
    window; what folded went in FOLD_ORDER; the plane is a large square; the live edge shows."""
    avail, win = rep["screen"]["available"], rep["window"]
    tol = 0 if scale == 1 else 1  # logical px rounded from device px at 150 / 200 %
    assert _inside(win["frame"], avail, tol), (win, avail)
    folded = tuple(win["folded"])
    assert folded == FOLD_ORDER[: len(folded)], folded
    should = [*LIVE, "status_line", *(n for p, names in PANELS.items() if p not in folded for n in names)]
    for name in should:
        w = rep["widgets"][name]
        assert w["visible"], f"{name} is not visible"
        assert _inside(w["rect"], avail, tol), f"{name} {w['rect']} is not inside the screen {avail}"
        assert _inside(w["rect"], win["geometry"], tol), f"{name} {w['rect']} sticks out of {win['geometry']}"
    for p in folded:
        assert not rep["widgets"][PANELS[p][0]]["visible"], f"{p} folded but visible"
    # the live values are there and readable from across the stage
    float(rep["texts"]["arousal"]), float(rep["texts"]["valence"])
    assert rep["texts"]["quadrant"].strip()
    assert min(rep["font_px"][k] for k in ("arousal", "valence", "bpm")) >= 40, rep["font_px"]
    assert rep["font_px"]["quadrant"] >= 28
    # the valence-arousal plane: square and large
    _, _, pw, ph = rep["plane_view"]
    assert abs(pw - ph) <= 0.06 * max(pw, ph), rep["plane_view"]
    assert min(pw, ph) >= 0.45 * win["geometry"][3], (rep["plane_view"], win["geometry"])
    # the time series' live edge (x = 0) is inside the plot and the screen
    ex, ey = rep["live_edge"]
    sx, sy, sw, sh = rep["widgets"]["series"]["rect"]
    assert sx + sw * 0.7 < ex <= sx + sw and sy <= ey <= sy + sh, (rep["live_edge"], rep["widgets"]["series"])
    assert _inside([ex, ey, 1, 1], avail, 0)


def _check_screenshot(path: Path, rep: dict[str, Any], scale: float) -> None:
    """The screenshot has the physical size and shows the plane (many colours), not a blank."""
    from PySide6 import QtGui

    img = QtGui.QImage(str(path))
    gx, gy, gw, gh = rep["screen"]["geometry"]
    assert (img.width(), img.height()) == (round(gw * scale), round(gh * scale))
    x, y, w, h = rep["widgets"]["plane"]["rect"]
    colors = {img.pixel(int((x + i * w / 24) * scale), int((y + j * h / 24) * scale))
              for i in range(1, 24) for j in range(1, 24)}
    assert len(colors) >= 6, len(colors)  # a blank or black window gives 1-2


@pytest.mark.parametrize(("width", "height", "scale"), [
    (1280, 720, 1.0), (1366, 768, 1.0), (1920, 1080, 1.0), (1920, 1080, 1.5), (2560, 1440, 2.0)],
    ids=["1280x720", "1366x768", "1920x1080", "1920x1080@150", "2560x1440@200"])
def test_window_fits_the_screen(width: int, height: int, scale: float, loudness_model: Path,
                                tmp_path: Path) -> None:
    marks = (width, scale) == (1280, 1.0)  # the smallest screen also shows the marks and the beat
    with x_screen(width, height, tmp_path) as env:
        rep = run_probe(env, tmp_path / "shot", loudness_model, *(["--marks"] if marks else []), scale=scale)
    assert rep["screen"]["dpr"] == scale and rep["window"]["dpr"] == scale
    logical = [0, 0, round(width / scale), round(height / scale)]
    assert rep["screen"]["geometry"] == logical
    assert rep["window"]["maximized"], "the first run opens maximised"
    _check_fits(rep, scale)
    _check_screenshot(tmp_path / "shot" / "screen.png", rep, scale)
    if logical[3] >= 1000:
        assert rep["window"]["folded"] == [], "a desktop screen shows every panel"
    assert rep["widgets"]["fs_button"]["visible"], "the Fullscreen button shows from 1280 x 720 up"
    if marks:
        assert {"song", "section"} <= set(rep["marks"]), rep["marks"]
        assert abs(float(rep["texts"]["bpm"]) - 128) <= 3, rep["texts"]
    assert not [ln for ln in rep["stderr"].splitlines() if "qt." in ln.lower() or "QWidget" in ln]


def test_window_remembers_its_place_and_reset_forgets_it(loudness_model: Path, tmp_path: Path) -> None:
    """Moved and sized by hand, it opens there next time (folding what does not fit); left
    fullscreen, it opens fullscreen; ``mer-live --reset-window`` forgets both; the config's
    fullscreen opens it fullscreen whatever was saved."""
    with x_screen(1366, 768, tmp_path) as env:
        run_probe(env, tmp_path / "1", loudness_model, "--then", "1200x560+120+60")
        rep = run_probe(env, tmp_path / "2", loudness_model)
        assert not rep["window"]["maximized"] and not rep["window"]["fullscreen"]
        assert rep["window"]["geometry"] == [120, 60, 1200, 560], rep["window"]
        assert rep["window"]["folded"] == ["status"], "560 px tall: the details fold away, not the controls"
        _check_fits(rep, 1.0)
        run_probe(env, tmp_path / "3", loudness_model, "--then", "fullscreen")
        rep = run_probe(env, tmp_path / "4", loudness_model)
        assert rep["window"]["fullscreen"] and rep["window"]["frame"] == [0, 0, 1366, 768]
        _check_fits(rep, 1.0)
        conf = tmp_path / "mer-live" / "dashboard.conf"
        assert "normal" in conf.read_text()
        r = subprocess.run([sys.executable, "-m", "mer_live.cli", "--reset-window", "--print-config"],
                           env=env, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        assert f"window settings reset ({conf})" in r.stderr
        assert "normal" not in conf.read_text() and "fullscreen" not in conf.read_text()
        rep = run_probe(env, tmp_path / "5", loudness_model)
        assert rep["window"]["maximized"] and not rep["window"]["fullscreen"]
        rep = run_probe(env, tmp_path / "6", loudness_model, "--fullscreen")  # [gui] fullscreen = true
        assert rep["window"]["fullscreen"] and rep["window"]["frame"] == [0, 0, 1366, 768]
        _check_fits(rep, 1.0)



def test_a_place_remembered_on_a_bigger_screen_is_brought_inside_a_smaller_one(loudness_model: Path,
                                                                               tmp_path: Path) -> None:
    """Saved at 1800 x 1000 on a desktop monitor, opened on the 1366 x 768 laptop: maximised there,
    not hanging off it; a place that fits but lies off the smaller screen is moved onto it."""
    with x_screen(1920, 1080, tmp_path) as env:
        run_probe(env, tmp_path / "big", loudness_model, "--then", "1800x1000+100+60")
    with x_screen(1366, 768, tmp_path) as env:
        rep = run_probe(env, tmp_path / "small", loudness_model)
    assert rep["window"]["maximized"] and not rep["window"]["fullscreen"]
    _check_fits(rep, 1.0)
    with x_screen(1920, 1080, tmp_path) as env:
        run_probe(env, tmp_path / "big2", loudness_model, "--then", "1200x600+700+450")
    with x_screen(1366, 768, tmp_path) as env:
        rep = run_probe(env, tmp_path / "small2", loudness_model)
    assert not rep["window"]["maximized"] and rep["window"]["geometry"][2:] == [1200, 600], rep["window"]
    _check_fits(rep, 1.0)
