"""The live dashboard with real parts: real Qt (offscreen), a running LiveApp fed by paced
FileSources, the loudness test model in onnxruntime, OSC over a real UDP socket.

Every wait has a timeout (qtbot.waitUntil); nothing here asserts a timing.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before pytest-qt creates the QApplication

import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import need_module, need_tool  # noqa: E402

need_module("PySide6", "cpu")  # a default dependency
need_module("pytestqt", "dev")

from PySide6 import QtCore, QtGui  # noqa: E402

from mer_live.inference.model import Model  # noqa: E402
from mer_live.live.app import History, LiveApp  # noqa: E402
from mer_live.live.pipeline import PipelineConfig  # noqa: E402
from mer_live.live.records import Estimate, Event  # noqa: E402
from mer_live.sources.filesource import FileSource, SourceError  # noqa: E402
from mer_live.ui.dashboard import (  # noqa: E402
    AROUSAL_COLOR,
    BEAT_FADE_S,
    QUADRANT_COLORS,
    SONG_COLOR,
    VALENCE_COLOR,
    DashboardWindow,
    GuiSettings,
    marks_of,
    series_of,
)

pytestmark = pytest.mark.gui

SR = 22050  # not the model's 16 kHz: the live resampler is part of what is shown


def _tone(seconds: float, db: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    amp = 10 ** (db / 20) * np.sqrt(2)  # sine RMS = amp / sqrt(2)
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


QUIET_THEN_LOUD = np.concatenate([_tone(2.5, -50.0), _tone(6.0, -12.0)])
OTHER = _tone(30.0, -20.0, hz=1500.0)


def _factory(spec: str | int | None) -> FileSource:
    """Map picker names to real paced sources; anything else fails like a missing device."""
    if spec in (None, "quiet-then-loud"):
        return FileSource(QUIET_THEN_LOUD, SR, realtime=True, loop=False, name="quiet-then-loud")
    if spec == "tone-b":
        return FileSource(OTHER, SR, realtime=True, loop=True, name="tone-b")
    raise SourceError(f"input device {spec!r} not found")


def _our_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("mer-", "FileSource("))]


@pytest.fixture(autouse=True)
def _settings_in_tmp(tmp_path):
    """The window's remembered place goes to a temp dir, never the user's ~/.config."""
    for fmt in (QtCore.QSettings.Format.NativeFormat, QtCore.QSettings.Format.IniFormat):
        QtCore.QSettings.setPath(fmt, QtCore.QSettings.Scope.UserScope, str(tmp_path / "config"))


@pytest.fixture(autouse=True)
def _delete_closed_windows(qapp):
    """Delete the windows pytest-qt closed. It closes each test's widgets with ``deleteLater()``,
    which only an event loop carries out: the next test's waits did it for the previous window, but
    the last window of the session (holding its LiveApp, pipeline and soxr resampler) lived until
    the interpreter exited, where nanobind reported the resampler as leaked (~20 lines)."""
    yield
    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)


@pytest.fixture
def live(loudness_model: Path):
    model = Model(loudness_model, provider="cpu")
    app = LiveApp(model, PipelineConfig(hop_s=0.1, attack_s=0.1, release_s=0.1), _factory)
    app.start()
    yield app
    app.stop()


@pytest.fixture
def window(qtbot, live):
    win = DashboardWindow(live, GuiSettings(history_s=30, trail_s=5), devices=lambda: ["tone-b", "broken"])
    qtbot.addWidget(win)
    win.resize(1600, 900)
    win.show()
    qtbot.waitExposed(win)
    return win


def _point(win: DashboardWindow) -> tuple[float, float] | None:
    """The plotted current point (valence, arousal), read back from the plot item."""
    x, y = win.plane.current.getData()
    if x is None or len(x) == 0:
        return None
    return float(x[0]), float(y[0])


def _rgb(img: QtGui.QImage) -> np.ndarray:
    img = img.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    return np.frombuffer(img.constBits(), np.uint8).reshape(h, bpl)[:, : w * 3].reshape(h, w, 3).copy()


def _near(region: np.ndarray, color: tuple[int, int, int], tol: int = 40) -> int:
    """Pixels within ``tol`` of ``color`` (per channel)."""
    return int((np.abs(region.astype(int) - np.array(color)).max(axis=2) <= tol).sum())


def _hex(c: str) -> tuple[int, int, int]:
    q = QtGui.QColor(c)
    return q.red(), q.green(), q.blue()


def test_series_cuts_at_restart_and_keeps_history_window() -> None:
    def est(t: float) -> Estimate:
        return Estimate(t, t, 0.5, 0.5, t / 100, 0.5, -20, -10, False, False, True, 0, 1.0, 10.0, 0, 0)

    s = series_of([est(t) for t in np.arange(0, 50, 0.5)], history_s=10)
    assert s.x[-1] == 0 and s.x[0] >= -10 and len(s.x) == 21
    np.testing.assert_allclose(s.arousal[-1], 49.5 / 100)
    # the source was switched: stream time restarted at 1.0; the old time base is dropped
    s = series_of([est(t) for t in (10, 11, 12, 1, 2)], history_s=60)
    np.testing.assert_allclose(s.x, [-1, 0])
    assert len(series_of([], 60).x) == 0


def test_gui_settings_from_any_object_and_validation() -> None:
    class Cfg:
        history_s = 45
        trail_s = 5

    s = GuiSettings.from_any(Cfg())
    assert (s.history_s, s.trail_s, s.fullscreen) == (45.0, 5.0, False)
    assert GuiSettings.from_any(None) == GuiSettings()
    with pytest.raises(ValueError, match="trail_s"):
        GuiSettings(history_s=10, trail_s=20)


def test_point_moves_up_when_the_audio_gets_louder(qtbot, window, live) -> None:
    # before the first full window the point sits at neutral (0.5, 0.5) with "neutral" shown
    qtbot.waitUntil(lambda: _point(window) is not None, timeout=8000)
    if _point(window) == (0.5, 0.5):
        assert window.quadrant.text() == "neutral"
    qtbot.waitUntil(lambda: _point(window) not in (None, (0.5, 0.5)), timeout=8000)
    quiet = _point(window)
    assert quiet is not None and quiet[1] < 0.3, quiet
    qtbot.waitUntil(lambda: (_point(window) or (0, 0))[1] > 0.7, timeout=10000)
    loud = _point(window)
    assert loud[1] > quiet[1] + 0.4
    # the big number and the time series agree with what is plotted
    assert abs(float(window.big["arousal"].text()) - loud[1]) < 0.1
    _, ys = window.series.arousal.getData()
    assert ys is not None and ys.min() < 0.3 and ys.max() > 0.7
    # the trail holds the recent past, inside the plane
    tx, ty = window.plane._trail.getData()
    assert len(tx) >= 5 and np.all((ty >= 0) & (ty <= 1))


def test_screenshot_shows_both_panels(qtbot, window, live, tmp_path) -> None:
    qtbot.waitUntil(lambda: (_point(window) or (0, 0))[1] > 0.7, timeout=15000)
    qtbot.wait(300)
    img = _rgb(window.grab().toImage())
    assert img.shape[0] >= 800 and img.shape[1] >= 1500
    assert img.std() > 20, "screenshot is blank"

    def region(w) -> np.ndarray:
        p = w.mapTo(window, QtCore.QPoint(0, 0))
        return img[p.y() : p.y() + w.height(), p.x() : p.x() + w.width()]

    plane, series = region(window.plane), region(window.series)
    assert plane.size and series.size
    latest = live.history.snapshot()[-1]
    # the current point is drawn in its quadrant's colour; all four quadrants are tinted
    assert _near(plane, QUADRANT_COLORS[latest.quadrant], tol=25) > 300
    assert len({tuple(c) for c in plane.reshape(-1, 3)[:: 7]}) > 50
    # the time series shows both bold curves
    assert _near(series, _hex(AROUSAL_COLOR), tol=25) > 200
    assert _near(series, _hex(VALENCE_COLOR), tol=25) > 200
    assert series.std() > 10 and plane.std() > 10


def test_picker_switches_device_and_reports_errors(qtbot, window, live) -> None:
    box = window.device_box
    names = [box.itemText(i) for i in range(box.count())]
    assert names[0] == "quiet-then-loud" and "tone-b" in names
    qtbot.waitUntil(lambda: len(live.history.snapshot()) > 3, timeout=8000)
    old_source = live.source
    i = names.index("tone-b")
    box.setCurrentIndex(i)
    box.activated.emit(i)
    assert live.source_name == "tone-b"
    assert window.device_box.currentText() == "tone-b"
    # the stream was re-opened: estimates restart on the new source's clock, the old writer ended
    qtbot.waitUntil(lambda: window.status_labels["source"].text() == "tone-b", timeout=5000)
    qtbot.waitUntil(lambda: live.history.snapshot()[-1].t < 1.5, timeout=5000)
    assert old_source.join(2.0)
    n = len(live.history.snapshot())
    qtbot.waitUntil(lambda: len(live.history.snapshot()) > n + 3, timeout=5000)

    # a device that cannot be opened: one line in the status line, the show goes on
    j = [box.itemText(k) for k in range(box.count())].index("broken")
    box.setCurrentIndex(j)
    box.activated.emit(j)
    text = window.status_line.text()
    assert "cannot switch to 'broken'" in text and "not found" in text and "\n" not in text
    assert live.running and live.source_name == "tone-b"
    assert window.device_box.currentText() == "tone-b"


def test_controls_drive_the_app(qtbot, window, live) -> None:
    window.attack.setValue(2.5)
    window.release.setValue(4.0)
    window.attack.editingFinished.emit()
    assert (live.pipeline.config.attack_s, live.pipeline.config.release_s) == (2.5, 4.0)
    # start/stop
    qtbot.mouseClick(window.start_stop, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not live.running, timeout=3000)
    qtbot.waitUntil(lambda: window.start_stop.text() == "Start", timeout=3000)
    qtbot.mouseClick(window.start_stop, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: live.running and window.start_stop.text() == "Stop", timeout=3000)
    # F11 toggles fullscreen, Esc leaves it
    qtbot.keyClick(window, QtCore.Qt.Key.Key_F11)
    qtbot.waitUntil(window.isFullScreen, timeout=3000)
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.isFullScreen(), timeout=3000)


def test_osc_targets_edit_sends_to_a_real_socket(qtbot, loudness_model: Path) -> None:
    from pythonosc.osc_packet import OscPacket

    from mer_live.outputs.osc import OscConfig, OscSender

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    port = sock.getsockname()[1]
    osc = OscSender(OscConfig(targets=["127.0.0.1:9"], rate_hz=20))
    app = LiveApp(Model(loudness_model, provider="cpu"), PipelineConfig(), _factory, osc=osc)
    app.start()
    win = DashboardWindow(app, devices=lambda: [])
    qtbot.addWidget(win)
    try:
        win.osc_edit.setText("nonsense")
        qtbot.keyClick(win.osc_edit, QtCore.Qt.Key.Key_Return)
        assert "OSC targets not changed" in win.status_line.text()
        win.osc_edit.setText(f"127.0.0.1:{port}")
        qtbot.keyClick(win.osc_edit, QtCore.Qt.Key.Key_Return)
        got: list[str] = []

        def received() -> bool:
            try:
                data, _ = sock.recvfrom(65536)
            except TimeoutError:
                return False
            got.extend(m.message.address for m in OscPacket(data).messages)
            return "/mer/arousal" in got

        qtbot.waitUntil(received, timeout=5000)
        qtbot.waitUntil(lambda: f"127.0.0.1:{port}" in win.status_labels["OSC"].text(), timeout=3000)
    finally:
        win.close()
        sock.close()


def test_closing_the_window_ends_all_pipeline_threads(qtbot, loudness_model: Path) -> None:
    app = LiveApp(Model(loudness_model, provider="cpu"), PipelineConfig(), _factory)
    app.start()
    win = DashboardWindow(app, devices=lambda: [])
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: len(app.history.snapshot()) > 2, timeout=8000)
    assert any(t.name == "mer-pipeline" for t in _our_threads())
    win.close()
    assert not app.running
    qtbot.waitUntil(lambda: not _our_threads(), timeout=3000)
    assert not win.timer.isActive()


def test_no_input_and_clip_are_shown(qtbot, window) -> None:
    """Estimates as the pipeline makes them when the input is lost, then clipping."""
    base = dict(wall=0.0, arousal_raw=0.6, valence_raw=0.4, arousal=0.6, valence=0.4, level_rms_db=-120.0,
                level_peak_db=-120.0, silent=True, clipping=False, input_ok=False, bad_samples=0,
                model_ms=1.0, latency_ms=20.0, overflows=0, hops_skipped=0)
    window.timer.stop()  # draw exactly these estimates
    window.draw([Estimate(t=1.0, **base)], now=10.0)
    assert window.quadrant.text() == "NO INPUT"
    assert window.plane.no_input.isVisible()
    assert "background" in window.noinput_lamp.styleSheet()
    base.update(input_ok=True, silent=False, clipping=True, level_rms_db=-3.0, level_peak_db=0.0)
    window.draw([Estimate(t=1.0, **{**base, "clipping": False}), Estimate(t=1.1, **base)], now=10.1)
    assert window.quadrant.text().startswith("Q2")
    assert not window.plane.no_input.isVisible()
    assert "background" in window.clip_lamp.styleSheet()
    assert "background" not in window.noinput_lamp.styleSheet()
    # the clip lamp holds for a moment after clipping stops, then goes out
    base.update(clipping=False)
    window.draw([Estimate(t=1.2, **base)], now=10.5)
    assert "background" in window.clip_lamp.styleSheet()
    window.draw([Estimate(t=1.3, **base)], now=20.0)
    assert "background" not in window.clip_lamp.styleSheet()


@pytest.mark.slow
def test_demo_under_xvfb_exits_cleanly_without_qt_warnings(loudness_model: Path, tmp_path: Path) -> None:
    need_tool("xvfb-run", "xvfb")
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "XDG_CONFIG_HOME": str(tmp_path)}  # remembered there
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x900x24", sys.executable, "-m", "mer_live.cli",
           "--demo", "--duration", "4", "--model", str(loudness_model)]
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("mer-live --demo under Xvfb did not exit within 90 s")
    assert r.returncode == 0, r.stderr[-2000:]
    qt_lines = [ln for ln in r.stderr.splitlines() if "qt." in ln.lower() or "QObject" in ln
                or "QWidget" in ln or "QPainter" in ln or "This plugin" in ln]
    assert not qt_lines, qt_lines
    other = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("mer-live: ")]
    assert not other, other  # everything on stderr is mer-live's own one-line notices


def test_no_music_and_the_beat_are_shown(qtbot, window, tmp_path) -> None:
    """Between songs: grey point, "NO MUSIC" on the plane, "no music" as the quadrant, the MUSIC
    lamp off; with music: the lamp on, the quadrant named; a beat flashes the BEAT lamp with the
    tempo on it."""
    base = dict(wall=0.0, arousal_raw=0.7, valence_raw=0.2, arousal=0.7, valence=0.2, level_rms_db=-25.0,
                level_peak_db=-10.0, silent=False, clipping=False, input_ok=True, bad_samples=0,
                model_ms=1.0, latency_ms=20.0, overflows=0, hops_skipped=0)
    window.timer.stop()
    window.draw([Estimate(t=1.0, **base, music=False, bpm=0.0)], now=10.0)
    assert window.quadrant.text() == "no music"
    assert window.plane.no_music.isVisible() and not window.plane.no_input.isVisible()
    assert "background" not in window.music_lamp.styleSheet()
    window.grab().save(str(tmp_path / "no-music.png"))
    window.draw([Estimate(t=1.1, **base, music=True, bpm=128.0, beats=5)], now=10.1)
    assert window.quadrant.text() == "Q2 tense / angry" and not window.plane.no_music.isVisible()
    assert "background" in window.music_lamp.styleSheet()
    assert window.big["bpm"].text() == "128" and window.pulse.level == 1.0
    window.draw([Estimate(t=1.2, **base, music=True, bpm=128.0, beats=5)], now=10.5)
    assert window.pulse.level == 0.0  # the pulse is over, no new beat
    neutral = {**base, "arousal_raw": 0.5, "valence_raw": 0.5, "arousal": 0.5, "valence": 0.5}
    window.draw([Estimate(t=0.1, **neutral, music=False)], now=11.0)
    assert window.quadrant.text() == "neutral"


def test_the_input_kind_is_shown(qtbot, window, loudness_model: Path) -> None:
    """The status panel says which input path runs: "line" by default, "room" with --room."""
    from mer_live.inference.roominput import load_for_input

    qtbot.waitUntil(lambda: window.status_labels["input kind"].text() == "line", timeout=5000)
    app = LiveApp(load_for_input("room", loudness_model, provider="cpu"), PipelineConfig(), _factory)
    app.start()
    win = DashboardWindow(app, devices=lambda: [])
    qtbot.addWidget(win)
    try:
        qtbot.waitUntil(lambda: win.status_labels["input kind"].text() == "room", timeout=5000)
    finally:
        win.close()
        app.stop()


def _est(t: float, wall: float, music: bool = True, arousal: float = 0.7) -> Estimate:
    return Estimate(t=t, wall=wall, arousal_raw=arousal, valence_raw=0.6, arousal=arousal, valence=0.6,
                    level_rms_db=-20.0, level_peak_db=-8.0, silent=not music, clipping=False, input_ok=True,
                    bad_samples=0, model_ms=1.0, latency_ms=20.0, overflows=0, hops_skipped=0, music=music,
                    bpm=120.0 if music else 0.0)


def test_marks_come_from_the_music_flag_and_this_streams_events() -> None:
    """A song starts where the music flag turns on; sections and drops sit at their stream time;
    another stream's events (before a restart) and events outside the plotted range are left out."""
    snap = [_est(t, 100 + t, music=t >= 3.0) for t in np.arange(0.5, 10.05, 0.5)]
    events = [Event("section", 1, 5.0, 105.2), Event("drop", 1, 8.0, 108.6), Event("beat", 9, 9.5, 109.5),
              Event("section", 2, -30.0, 70.0)]
    marks = marks_of(series_of(snap, 30.0), events, 30.0)
    assert [(m.kind, m.text, m.x) for m in marks] == [("song", "song", -7.0), ("section", "S1", -5.0),
                                                      ("drop", "drop", -2.0)]
    # the source was switched at wall 200: stream time restarts; the old section is not this stream's
    snap2 = snap + [_est(t, 200 + t) for t in (1.0, 1.5, 2.0)]
    events2 = [*events, Event("section", 1, 1.2, 201.5)]
    assert [(m.kind, m.x) for m in marks_of(series_of(snap2, 30.0), events2, 30.0)] == [("section", -0.8)]


def test_history_events_reach_the_window_marks_and_pulse(qtbot, tmp_path) -> None:
    """The pipeline's path: estimates and events into a real History (its sink methods), the window
    reads them on its timer: a song start and a section drawn on the time series at their times,
    and a beat event lights the pulse beside the BPM, which fades after BEAT_FADE_S."""
    import time as _time

    class App:  # what the window reads; the data goes through the real History
        history = History(120.0)
        running = True

        def status(self) -> dict:
            return {}

        def stop(self) -> None:
            pass

    app = App()
    win = DashboardWindow(app, GuiSettings(history_s=30, trail_s=5), devices=lambda: [])
    qtbot.addWidget(win)
    win.resize(1280, 700)
    win.show()
    qtbot.waitExposed(win)
    win.timer.stop()
    now = _time.monotonic()
    t0 = now - 10.0
    for t in np.round(np.arange(0.5, 10.05, 0.1), 1):
        app.history(_est(float(t), t0 + float(t), music=t >= 4.0))
    app.history.event(Event("section", 1, 6.0, t0 + 6.3))
    app.history.event(Event("beat", 20, 10.0, now, bpm=120.0))
    win.tick()
    kinds = [(m.kind, round(m.x, 1)) for m in win.series.marks]
    assert kinds == [("song", -6.0), ("section", -4.0)]
    xs, ys = win.series.mark_lines["song"].getData()
    assert list(xs) == [pytest.approx(-6.0)] * 2 and list(ys) == [0.0, 1.0]
    assert win.big["bpm"].text() == "120" and win.pulse.level > 0.5
    img = _rgb(win.series.grab().toImage())
    assert _near(img, _hex(SONG_COLOR), tol=30) > 30  # the song line is drawn
    win.show_beat(now + BEAT_FADE_S + 0.01)
    assert win.pulse.level == 0.0
    win.grab().save(str(tmp_path / "marks.png"))


def test_panels_fold_in_order_and_come_back(qtbot, window) -> None:
    """Too short a window folds the status panel first; too narrow for the controls row folds it
    too; the live values stay whole inside the window; a large window shows everything again."""
    from mer_live.ui.dashboard import FOLD_ORDER

    def inside(w) -> bool:
        p = w.mapTo(window, QtCore.QPoint(0, 0))
        return (w.isVisible() and p.x() >= 0 and p.y() >= 0 and p.x() + w.width() <= window.width()
                and p.y() + w.height() <= window.height())

    window.timer.stop()
    window.quadrant.setText("Q3 sad / depressed")  # the longest name
    live = [window.plane, window.numbers, window.quadrant_panel, window.series, window.pulse,
            window.big["arousal"], window.big["valence"], window.big["bpm"], window.quadrant]
    for size, folded in (((1600, 900), ()), ((1280, 600), ("status",)), ((1000, 560), ("status", "controls")),
                         ((960, 540), ("status", "controls")),
                         ((1600, 900), ())):
        window.resize(*size)
        qtbot.waitUntil(lambda s=size: (window.width(), window.height()) == s, timeout=3000)
        qtbot.wait(50)
        assert window.folded == folded and folded == FOLD_ORDER[: len(folded)]
        assert window.status_panel.isVisible() == ("status" not in folded)
        assert window.controls.isVisible() == ("controls" not in folded)
        assert window.input_panel.isVisible()
        assert all(inside(w) for w in live), size
        for w in (window.quadrant, window.big["arousal"], window.big["bpm"], window.noinput_lamp):  # not cut
            assert w.width() >= w.sizeHint().width() and w.height() >= w.sizeHint().height() - 2, size
        side = window.plane.width()
        assert side == window.plane.height() or side == (window.body.width() - 12) // 2
