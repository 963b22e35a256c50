"""The live dashboard: a Qt window (PySide6 + pyqtgraph) that shows what mer-live hears and sends.

Why a polling timer: the pipeline thread must never wait for the GUI, so the window does not get
pushed estimates; a QTimer on the Qt main thread (at most ~30 fps) reads ``app.history.snapshot()``,
``app.history.events()`` (beats, sections) and ``app.status()`` and redraws only when a new estimate
arrived (the beat pulse, a small widget, on every tick). All plot items are created once and
updated with ``setData`` (pyqtgraph's fast path).

Why the layout folds: a show laptop's screen may be 1280 x 720 logical pixels (a 1920 x 1080 panel
at 150 %). The window opens inside the available geometry of its screen (maximised the first time,
where it was the next times: ``QSettings``), sizes the valence-arousal plane as a square as tall as
the body, and hides the panels that do not fit, in ``FOLD_ORDER`` (details first); the live values
(the plane, the big numbers, the quadrant, the tempo with its beat pulse, the time series) never fold.

This is the only runtime module that imports Qt; ``mer-live`` imports it only when a window is wanted.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from mer_live.common.logs import one_line
from mer_live.live.records import QUADRANT_NAMES, Estimate, Event, mood_label

log = logging.getLogger(__name__)

# --- theme ---------------------------------------------------------------------------------------
BG = "#07090d"
PANEL = "#10141b"
FG = "#eef2f7"
DIM = "#8a94a6"
AROUSAL_COLOR = "#ff9f1c"
VALENCE_COLOR = "#2ec4ff"
GOOD, WARN, BAD = "#3ddc84", "#ffd23f", "#ff3b3b"
BEAT_FADE_S = 0.2  #: the beat pulse fades out over this long after each beat (3 pulses/s at 180 BPM)
SECTION_COLOR, DROP_COLOR, SONG_COLOR = "#c7cfdc", "#ff5ad1", GOOD  #: time-series marks
#: Quadrant tints (Q1 happy: gold, Q2 tense: red, Q3 sad: blue, Q4 calm: green).
QUADRANT_COLORS = {1: (255, 196, 0), 2: (235, 50, 60), 3: (70, 110, 255), 4: (40, 200, 120)}
NO_MUSIC_COLOR = (150, 156, 168)  #: quadrant 0: no music (between songs, talk, applause)
#: Where each quadrant sits on the (valence x, arousal y) plane.
QUADRANT_RECTS = {1: (0.5, 0.5), 2: (0.0, 0.5), 3: (0.0, 0.0), 4: (0.5, 0.0)}
METER_MIN_DB = -60.0
CLIP_HOLD_S = 1.5
#: What folds away first when the window is too small for everything (the status panel's details,
#: then the controls row, then the input level panel). The plane, the big numbers, the quadrant,
#: the tempo and the time series never fold.
FOLD_ORDER = ("status", "controls", "input")
MIN_WINDOW = (960, 540)  #: the smallest window (logical px) the layout is made for, all folded
SERIES_MIN_H = 150  #: the time series never gets shorter than this (its live edge stays readable)
SETTINGS_ORG, SETTINGS_APP = "mer-live", "dashboard"  #: ~/.config/mer-live/dashboard.conf

STYLE = f"""
QWidget {{ background: {BG}; color: {FG}; font-size: 16px; }}
QFrame#panel {{ background: {PANEL}; border-radius: 10px; }}
QFrame#panel QLabel {{ background: transparent; }}
QLabel#big {{ font-weight: 800; }}
QLabel#bigcap {{ font-size: 18px; font-weight: 700; color: {DIM}; letter-spacing: 3px; }}
QLabel#quadrant {{ font-size: 32px; font-weight: 800; }}
QLabel#lamp {{ font-size: 18px; font-weight: 800; border-radius: 6px; padding: 4px 10px;
               background: #1c222c; color: #3a4350; }}
QLabel#statuskey {{ color: {DIM}; }}
QLabel#statusline {{ font-size: 15px; color: {DIM}; }}
QComboBox, QLineEdit, QDoubleSpinBox, QPushButton {{ background: #1a2029; border: 1px solid #2c3542;
    border-radius: 6px; padding: 5px 8px; min-height: 26px; }}
QPushButton:hover {{ background: #243040; }}
QPushButton#startstop {{ font-weight: 800; min-width: 80px; }}
QComboBox QAbstractItemView {{ background: #1a2029; selection-background-color: #2c3a50; }}
"""


@dataclass(frozen=True)
class GuiSettings:
    """What the window needs from the [gui] config; validated here, at the edge."""

    history_s: float = 60.0
    trail_s: float = 10.0
    fullscreen: bool = False
    fps: float = 30.0

    def __post_init__(self) -> None:
        if not 1.0 <= self.history_s <= 3600.0:
            raise ValueError(f"gui history_s must be in 1..3600 seconds, got {self.history_s}")
        if not 0.0 <= self.trail_s <= self.history_s:
            raise ValueError(f"gui trail_s must be in 0..history_s ({self.history_s}), got {self.trail_s}")
        if not 1.0 <= self.fps <= 30.0:
            raise ValueError(f"gui fps must be in 1..30, got {self.fps}")

    @classmethod
    def from_any(cls, cfg: Any) -> GuiSettings:
        """Accept any object with (some of) history_s, trail_s, fullscreen; defaults for the rest."""
        if cfg is None:
            return cls()
        d = cls()
        return cls(
            history_s=float(getattr(cfg, "history_s", d.history_s)),
            trail_s=float(getattr(cfg, "trail_s", d.trail_s)),
            fullscreen=bool(getattr(cfg, "fullscreen", d.fullscreen)),
            fps=float(getattr(cfg, "fps", d.fps)),
        )


@dataclass(frozen=True)
class Series:
    """The history as arrays, x in seconds relative to the newest estimate (<= 0)."""

    x: np.ndarray
    arousal: np.ndarray
    valence: np.ndarray
    arousal_raw: np.ndarray
    valence_raw: np.ndarray
    music: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  #: the music flag per estimate
    t_last: float = 0.0  #: stream time of the newest estimate (x = 0)
    wall0: float = -np.inf  #: about when this stream started (time.monotonic); older events are another's


@dataclass(frozen=True)
class Mark:
    """A vertical mark on the time series: a song's start, a section change or a drop."""

    x: float  #: seconds relative to the newest estimate (<= 0)
    kind: str  #: "song", "section" or "drop"
    text: str


def marks_of(s: Series, events: Sequence[Event], history_s: float) -> list[Mark]:
    """The marks to draw, oldest first: where the music flag turned on (a song started) and the
    section and drop events of this stream inside the plotted ``history_s``."""
    marks: list[Mark] = []
    if s.x.size:
        m = s.music.astype(bool)
        starts = np.flatnonzero(m[1:] & ~m[:-1]) + 1
        marks.extend(Mark(float(s.x[i]), "song", "song") for i in starts)
    for ev in events:
        if ev.kind not in ("section", "drop") or ev.wall < s.wall0:
            continue
        x = ev.t - s.t_last
        if -history_s <= x <= 0.5:
            marks.append(Mark(x, ev.kind, f"S{ev.count}" if ev.kind == "section" else "drop"))
    return sorted(marks, key=lambda k: k.x)


def series_of(estimates: Sequence[Estimate], history_s: float) -> Series:
    """Arrays for the last ``history_s`` seconds of stream time.

    When the stream time goes backwards (the source was switched and restarted at 0), only the
    estimates after the restart are kept: mixing two time bases would draw garbage.
    """
    if not estimates:
        e = np.zeros(0)
        return Series(e, e, e, e, e)
    t = np.fromiter((e.t for e in estimates), float, len(estimates))
    back = np.flatnonzero(np.diff(t) < 0)
    start = restart = int(back[-1]) + 1 if back.size else 0
    t_last = t[-1]
    start = max(start, int(np.searchsorted(t[start:], t_last - history_s, side="left")) + start)
    keep = estimates[start:]
    n = len(keep)
    return Series(
        x=np.fromiter((e.t - t_last for e in keep), float, n),
        arousal=np.fromiter((e.arousal for e in keep), float, n),
        valence=np.fromiter((e.valence for e in keep), float, n),
        arousal_raw=np.fromiter((e.arousal_raw for e in keep), float, n),
        valence_raw=np.fromiter((e.valence_raw for e in keep), float, n),
        music=np.fromiter((e.music for e in keep), bool, n),
        t_last=float(t_last),
        # the stream's start, less a second of slack (latency); a restart cut the older estimates
        wall0=(estimates[restart].wall - estimates[restart].t - 1.0) if back.size else -np.inf,
    )


def _num(v: Any, fmt: str) -> str:
    """Format a number; "–" for missing or NaN (not known yet)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v):
        return fmt.format(v)
    return "–"


def input_device_names() -> list[str]:
    """Names of the PortAudio input devices (empty, with one warning, when PortAudio fails)."""
    try:
        from mer_live.sources.capture import list_devices

        # No rescan_devices() here: Pa_Terminate would also close a FileSource's playback stream.
        return [d["name"] for d in list_devices()]
    except Exception as e:  # no PortAudio library, no devices: the picker still shows the source
        log.warning("cannot list input devices: %s", one_line(e))
        return []


# --- widgets -------------------------------------------------------------------------------------
class AVPlane(pg.PlotWidget):
    """Valence (x) against arousal (y) on [0, 1], shaded quadrants, a fading trail, the current point."""

    TRAIL_LEVELS = 24

    def __init__(self) -> None:
        super().__init__(background=PANEL)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        pi = self.getPlotItem()
        pi.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.05)  # a point at 0 or 1 stays whole
        pi.setAspectLocked(True)
        pi.showGrid(x=False, y=False)
        for ax, text in (("bottom", "VALENCE  →  positive"), ("left", "AROUSAL  →  energetic")):
            a = pi.getAxis(ax)
            a.setPen(pg.mkPen("#5a6475"))
            a.setTextPen(pg.mkPen(DIM))
            a.setStyle(tickFont=_font(12))
            a.setTicks([[(0, "0"), (0.5, "0.5"), (1, "1")]])
            a.setLabel(text, color=DIM, **{"font-size": "13pt", "font-weight": "bold"})
        for q, (x0, y0) in QUADRANT_RECTS.items():
            r, g, b = QUADRANT_COLORS[q]
            rect = QtWidgets.QGraphicsRectItem(x0, y0, 0.5, 0.5)
            rect.setBrush(QtGui.QColor(r, g, b, 38))
            rect.setPen(QtGui.QPen(QtCore.Qt.PenStyle.NoPen))
            rect.setZValue(-20)
            pi.addItem(rect)
            label = pg.TextItem(
                html=f'<div style="text-align:center"><span style="color:rgb({r},{g},{b});'
                f'font-size:20pt;font-weight:800">Q{q}</span><br><span style="color:rgb({r},{g},{b});'
                f'font-size:15pt;font-weight:600">{QUADRANT_NAMES[q]}</span></div>',
                anchor=(0.5, 0.5),
            )
            label.setPos(x0 + 0.25, y0 + (0.42 if y0 else 0.08))
            label.setZValue(-10)
            pi.addItem(label)
        for pos, angle in ((0.5, 0), (0.5, 90)):
            pi.addItem(pg.InfiniteLine(pos=pos, angle=angle, pen=pg.mkPen("#4a5566", width=1.5)))
        self._trail_line = pg.PlotDataItem(pen=pg.mkPen(255, 255, 255, 70, width=2))
        self._trail = pg.ScatterPlotItem(pen=None)
        self._brushes = [pg.mkBrush(255, 255, 255, int(15 + 200 * (i / (self.TRAIL_LEVELS - 1)) ** 1.5))
                         for i in range(self.TRAIL_LEVELS)]
        self.current = pg.ScatterPlotItem(size=40, pen=pg.mkPen("w", width=4), brush=pg.mkBrush(FG))
        self.current.setZValue(10)
        self.no_input = pg.TextItem(
            html=f'<span style="color:{BAD};font-size:44pt;font-weight:900">NO INPUT</span>',
            anchor=(0.5, 0.5), fill=pg.mkBrush(0, 0, 0, 180))
        self.no_input.setPos(0.5, 0.5)
        self.no_input.setZValue(20)
        self.no_input.hide()
        r, g, b = NO_MUSIC_COLOR
        self.no_music = pg.TextItem(  # between songs: calm, not an alarm (the values hold or relax)
            html=f'<span style="color:rgb({r},{g},{b});font-size:30pt;font-weight:800">NO MUSIC</span>',
            anchor=(0.5, 0.5), fill=pg.mkBrush(0, 0, 0, 140))
        self.no_music.setPos(0.5, 0.5)
        self.no_music.setZValue(19)
        self.no_music.hide()
        for it in (self._trail_line, self._trail, self.current, self.no_input, self.no_music):
            pi.addItem(it)

    def update_from(self, s: Series, trail_s: float, latest: Estimate) -> None:
        """Draw the trail of the last ``trail_s`` seconds and the newest (smoothed) point."""
        m = s.x >= -trail_s
        tx, ty, age = s.valence[m], s.arousal[m], s.x[m]
        if tx.size:
            frac = 1.0 - np.clip(-age / max(trail_s, 1e-9), 0.0, 1.0)
            idx = np.minimum((frac * (self.TRAIL_LEVELS - 1)).astype(int), self.TRAIL_LEVELS - 1)
            self._trail.setData(tx, ty, brush=[self._brushes[i] for i in idx], size=6 + 10 * frac)
        else:
            self._trail.clear()
        self._trail_line.setData(tx, ty)
        r, g, b = QUADRANT_COLORS.get(latest.quadrant, NO_MUSIC_COLOR)
        self.current.setData([latest.valence], [latest.arousal], brush=pg.mkBrush(r, g, b, 255))
        self.no_input.setVisible(not latest.input_ok)
        self.no_music.setVisible(latest.input_ok and not latest.hears_music)


class TimeSeries(pg.PlotWidget):
    """Arousal and valence over the last ``history_s`` seconds: raw faint, smoothed bold."""

    def __init__(self, history_s: float) -> None:
        super().__init__(background=PANEL)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        pi = self.getPlotItem()
        pi.setClipToView(True)
        pi.setDownsampling(auto=True, mode="peak")
        pi.setRange(xRange=(-history_s, 0), yRange=(0, 1), padding=0.01)
        pi.showGrid(x=True, y=False, alpha=0.15)
        for ax in ("left", "bottom"):
            a = pi.getAxis(ax)
            a.setPen(pg.mkPen("#5a6475"))
            a.setTextPen(pg.mkPen(DIM))
            a.setStyle(tickFont=_font(12))
        pi.getAxis("left").setTicks([[(0, "0"), (0.5, "0.5"), (1, "1")]])
        pi.getAxis("bottom").setLabel("seconds", color=DIM)
        pi.addItem(pg.InfiniteLine(pos=0.5, angle=0, pen=pg.mkPen("#6b7689", width=1.5,
                                                                  style=QtCore.Qt.PenStyle.DashLine)))
        a, v = QtGui.QColor(AROUSAL_COLOR), QtGui.QColor(VALENCE_COLOR)
        self.arousal_raw = pi.plot(pen=pg.mkPen(a.red(), a.green(), a.blue(), 90, width=1.5))
        self.valence_raw = pi.plot(pen=pg.mkPen(v.red(), v.green(), v.blue(), 90, width=1.5))
        self.arousal = pi.plot(pen=pg.mkPen(AROUSAL_COLOR, width=4))
        self.valence = pi.plot(pen=pg.mkPen(VALENCE_COLOR, width=4))
        legend = pg.LegendItem(offset=(8, 4), labelTextColor=FG, labelTextSize="12pt",
                               brush=pg.mkBrush(0, 0, 0, 120))
        legend.setParentItem(pi.getViewBox())
        legend.addItem(self.arousal, "arousal")
        legend.addItem(self.valence, "valence")
        # marks: one item per kind, vertical segments as pairs of points (no item per mark)
        self.mark_lines: dict[str, pg.PlotDataItem] = {}
        for kind, color, width, style in (
            ("section", SECTION_COLOR, 1.5, QtCore.Qt.PenStyle.DashLine),
            ("drop", DROP_COLOR, 2.0, QtCore.Qt.PenStyle.DashLine),
            ("song", SONG_COLOR, 3.0, QtCore.Qt.PenStyle.SolidLine),
        ):
            item = pg.PlotDataItem(pen=pg.mkPen(color, width=width, style=style), connect="pairs")
            pi.addItem(item)
            item.setDownsampling(ds=1, auto=False)  # downsampling would pair the wrong points
            item.setClipToView(False)
            item.setZValue(-5)
            self.mark_lines[kind] = item
        self._labels: list[pg.TextItem] = []
        self.marks: list[Mark] = []

    MAX_LABELS = 24

    def update_from(self, s: Series) -> None:
        self.arousal_raw.setData(s.x, s.arousal_raw)
        self.valence_raw.setData(s.x, s.valence_raw)
        self.arousal.setData(s.x, s.arousal)
        self.valence.setData(s.x, s.valence)

    def set_marks(self, marks: Sequence[Mark]) -> None:
        """Draw the song starts, sections and drops as vertical lines, each labelled at the top."""
        self.marks = list(marks)
        for kind, item in self.mark_lines.items():
            xs = [m.x for m in marks if m.kind == kind]
            item.setData(np.repeat(xs, 2), np.tile([0.0, 1.0], len(xs)))
        shown = list(marks)[-self.MAX_LABELS:]
        pi = self.getPlotItem()
        while len(self._labels) < len(shown):
            lab = pg.TextItem(anchor=(0, 0))
            lab.setZValue(-4)
            pi.addItem(lab)
            self._labels.append(lab)
        colors = {"song": SONG_COLOR, "section": SECTION_COLOR, "drop": DROP_COLOR}
        x0, x1 = self.getPlotItem().viewRange()[0]
        near = 0.07 * (x1 - x0)  # closer marks than this get their labels on the next line down
        row, last_x = 0, -np.inf
        for lab, m in zip(self._labels, shown, strict=False):
            row = (row + 1) % 3 if m.x - last_x < near else 0
            last_x = m.x
            html = f'<span style="color:{colors[m.kind]};font-size:11pt;font-weight:700">{m.text}</span>'
            if getattr(lab, "_html", None) != html:  # re-laying out text 10 times a second costs
                lab.setHtml(html)
                lab._html = html
            lab.setPos(m.x, 1.0 - 0.16 * row)
            lab.show()
        for lab in self._labels[len(shown):]:
            lab.hide()


class BeatPulse(QtWidgets.QWidget):
    """A round lamp that lights on each beat and fades out: the beat you can see beside the tempo."""

    def __init__(self) -> None:
        super().__init__()
        self.level = 0.0
        self.setMinimumSize(24, 24)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Fixed, QtWidgets.QSizePolicy.Policy.Fixed)

    def set_level(self, level: float) -> None:
        level = float(np.clip(level, 0.0, 1.0))
        if level != self.level:
            self.level = level
            self.update()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt override)
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        d = min(self.width(), self.height()) - 4
        rect = QtCore.QRectF((self.width() - d) / 2, (self.height() - d) / 2, d, d)
        c = QtGui.QColor(FG)
        c.setAlpha(int(25 + 230 * self.level))
        p.setBrush(c)
        p.setPen(QtGui.QPen(QtGui.QColor("#5a6475"), 2))
        p.drawEllipse(rect)
        p.end()


class LevelMeter(QtWidgets.QWidget):
    """Horizontal dBFS meter: RMS bar (green/yellow/red) and a peak tick, -60..0 dBFS."""

    def __init__(self) -> None:
        super().__init__()
        self.rms_db = METER_MIN_DB
        self.peak_db = METER_MIN_DB
        self.setMinimumHeight(34)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed)

    def set_levels(self, rms_db: float, peak_db: float) -> None:
        if (rms_db, peak_db) != (self.rms_db, self.peak_db):
            self.rms_db, self.peak_db = rms_db, peak_db
            self.update()

    @staticmethod
    def _frac(db: float) -> float:
        return float(np.clip((db - METER_MIN_DB) / -METER_MIN_DB, 0.0, 1.0))

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt override)
        p = QtGui.QPainter(self)
        w, h = self.width(), self.height()
        p.fillRect(0, 0, w, h, QtGui.QColor("#1c222c"))
        fr = self._frac(self.rms_db)
        grad = QtGui.QLinearGradient(0, 0, w, 0)
        grad.setColorAt(0.0, QtGui.QColor(GOOD))
        grad.setColorAt(self._frac(-12), QtGui.QColor(GOOD))
        grad.setColorAt(self._frac(-6), QtGui.QColor(WARN))
        grad.setColorAt(1.0, QtGui.QColor(BAD))
        p.fillRect(0, 0, int(fr * w), h, QtGui.QBrush(grad))
        p.setPen(QtGui.QPen(QtGui.QColor(FG), 3))
        xp = int(self._frac(self.peak_db) * (w - 2)) + 1
        p.drawLine(xp, 0, xp, h)
        p.setPen(QtGui.QPen(QtGui.QColor(0, 0, 0, 150), 1))
        for db in range(int(METER_MIN_DB), 1, 6):
            x = int(self._frac(db) * (w - 1))
            p.drawLine(x, h - 6, x, h)
        p.end()


def _font(points: int) -> QtGui.QFont:
    """The default family at ``points`` (``QFont("", n)`` crashes pyqtgraph's axis painter)."""
    f = QtGui.QFont()
    f.setPointSize(points)
    return f


def _lamp(text: str) -> QtWidgets.QLabel:
    lab = QtWidgets.QLabel(text)
    lab.setObjectName("lamp")
    lab.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
    return lab


def _set_lamp(lab: QtWidgets.QLabel, on: bool, color: str) -> None:
    lab.setStyleSheet(f"background:{color}; color:#000;" if on else "")


def _panel() -> tuple[QtWidgets.QFrame, QtWidgets.QVBoxLayout]:
    f = QtWidgets.QFrame()
    f.setObjectName("panel")
    lay = QtWidgets.QVBoxLayout(f)
    lay.setContentsMargins(12, 10, 12, 10)
    return f, lay


# --- where the window remembers its place --------------------------------------------------------
def window_store() -> QtCore.QSettings:
    """The window's remembered size, position and state: ``$XDG_CONFIG_HOME/mer-live/dashboard.conf``
    (``~/.config`` by default) on Linux, Qt's usual place elsewhere."""
    return QtCore.QSettings(SETTINGS_ORG, SETTINGS_APP)


def reset_window_settings(store: QtCore.QSettings | None = None) -> str:
    """Forget the window's place (``mer-live --reset-window``); returns the settings file's path."""
    st = store or window_store()
    st.remove("window")
    st.sync()
    return st.fileName()


def _truthy(v: Any) -> bool:
    """QSettings gives a bool back as "true"/"false" from an ini file."""
    return v is True or (isinstance(v, str) and v.lower() == "true")


# --- the window ----------------------------------------------------------------------------------
class _Resizing(QtWidgets.QWidget):
    """A plain widget that tells ``on_resize`` its new size (the window re-folds and re-sizes)."""

    def __init__(self, on_resize: Callable[[QtCore.QSize], None]) -> None:
        super().__init__()
        self._on_resize = on_resize

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self._on_resize(event.size())


class _Body(QtWidgets.QWidget):
    """The plane (a square as tall as the body, at most half its width) and the column beside it.

    Placed by hand: a box layout cannot give a widget a width equal to its height, and a fixed
    width would stop the window from shrinking.
    """

    GAP = 12

    def __init__(self, plane: QtWidgets.QWidget, right: QtWidgets.QWidget,
                 on_resize: Callable[[int], None]) -> None:
        super().__init__()
        self.plane, self.right = plane, right
        plane.setParent(self)
        right.setParent(self)
        self._on_resize = on_resize

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt override)
        return QtCore.QSize(300 + self.GAP + 300, 300)

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt override)
        return QtCore.QSize(1400, 700)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 (Qt override)
        w, h = event.size().width(), event.size().height()
        side = max(0, min(h, (w - self.GAP) // 2))
        self.plane.setGeometry(0, 0, side, h)
        right_w = max(0, w - side - self.GAP)
        self._on_resize(right_w)  # fonts first, so the column lays out with them
        self.right.setGeometry(side + self.GAP, 0, right_w, h)


class DashboardWindow(QtWidgets.QMainWindow):
    """The whole dashboard over one ``LiveApp`` (duck-typed: history, status(), controls).

    ``devices`` lists the choices for the input picker (default: PortAudio input devices); the
    current source is always offered too. ``store`` is where the window remembers its place
    (default: ``window_store()``); ``show_placed`` opens it there.
    """

    STATUS_EVERY_S = 0.25

    def __init__(
        self,
        app: Any,
        settings: GuiSettings | None = None,
        devices: Callable[[], list[str]] | None = None,
        store: QtCore.QSettings | None = None,
    ) -> None:
        super().__init__()
        self.app = app
        self.settings = settings or GuiSettings()
        self._devices = devices or input_device_names
        self._store = store
        self._last_key: tuple[float, float] | None = None
        self._last_status = 0.0
        self._clip_until = 0.0
        self._beats_seen, self._beat_at, self._beat_events_seen = 0, -np.inf, False
        self._music = False
        self._big_px = 0
        self._quad_px = 32
        self.folded: tuple[str, ...] = ()
        self.frames_drawn = 0
        self._stopped = False
        self._remembers = False  #: set by show_placed: only a placed window saves its place on close
        self.setWindowTitle("mer-live")
        self.setStyleSheet(STYLE)
        self._build()
        self._refresh_devices()
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(int(round(1000.0 / self.settings.fps)))
        self.timer.timeout.connect(self.tick)
        self.timer.start()
        for key, slot in (("F11", self.toggle_fullscreen), ("Escape", self.leave_fullscreen)):
            sc = QtGui.QShortcut(QtGui.QKeySequence(key), self)
            sc.setContext(QtCore.Qt.ShortcutContext.ApplicationShortcut)
            sc.activated.connect(slot)

    # layout
    def _build(self) -> None:
        central = _Resizing(self._fold)
        central.setMinimumSize(*MIN_WINDOW)  # not the layout's minimum: folding makes room instead
        root = QtWidgets.QVBoxLayout(central)
        root.setContentsMargins(12, 10, 12, 8)
        root.setSpacing(10)
        self.controls = QtWidgets.QWidget()
        self.controls.setLayout(self._build_controls())
        self.controls.layout().setContentsMargins(0, 0, 0, 0)
        root.addWidget(self.controls)
        self.plane = AVPlane()
        self.plane.setMinimumSize(200, 200)
        right = QtWidgets.QWidget()
        col = QtWidgets.QVBoxLayout(right)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(10)
        self.numbers = QtWidgets.QWidget()
        self.numbers.setLayout(self._build_numbers())
        self.numbers.layout().setContentsMargins(0, 0, 0, 0)
        col.addWidget(self.numbers)
        col.addWidget(self.quadrant_panel)
        self.series = TimeSeries(self.settings.history_s)
        self.series.setMinimumHeight(SERIES_MIN_H)
        col.addWidget(self.series, 1)
        self.input_panel = self._build_input()
        col.addWidget(self.input_panel)
        self.status_panel = self._build_status()
        col.addWidget(self.status_panel)
        self.body = _Body(self.plane, right, self._size_numbers)
        root.addWidget(self.body, 1)
        self.status_line = QtWidgets.QLabel("starting…")
        self.status_line.setObjectName("statusline")
        root.addWidget(self.status_line)
        self.setCentralWidget(central)
        self._foldable = {"status": self.status_panel, "controls": self.controls, "input": self.input_panel}

    def _fold(self, size: QtCore.QSize) -> None:
        """Hide the panels that do not fit ``size`` (the central widget's), in ``FOLD_ORDER``."""
        root = self.centralWidget().layout()
        m = root.contentsMargins()
        sp = root.spacing()
        col_sp = 10
        fixed = m.top() + m.bottom() + self.status_line.sizeHint().height() + sp
        column = (self.numbers.sizeHint().height() + col_sp + self.quadrant_panel.sizeHint().height() + col_sp
                  + SERIES_MIN_H)
        cost = {
            "status": self.status_panel.sizeHint().height() + col_sp,
            "controls": self.controls.sizeHint().height() + sp,
            "input": self.input_panel.sizeHint().height() + col_sp,
        }
        too_narrow = self.controls.minimumSizeHint().width() > size.width() - m.left() - m.right()
        folded: list[str] = []
        for name in FOLD_ORDER:
            shown = [k for k in FOLD_ORDER if k not in folded]
            need = fixed + column + sum(cost[k] for k in shown)
            if need <= size.height() and not (too_narrow and "controls" in shown):
                break
            folded.append(name)
        self.folded = tuple(folded)
        for name, w in self._foldable.items():
            w.setVisible(name not in folded)

    def _size_numbers(self, width: int) -> None:
        """The big numbers as large as the column beside the plane allows (64 px at most), and the
        quadrant's name (32 px at most) so that the longest one fits whole beside its caption."""
        font = QtGui.QFont()
        font.setPixelSize(32)
        font.setWeight(QtGui.QFont.Weight.ExtraBold)
        fm = QtGui.QFontMetrics(font)
        longest = max(fm.horizontalAdvance(f"Q{q} {n}") for q, n in QUADRANT_NAMES.items())
        room = width - 24 - 12 - 180  # panel margins, spacing, the "QUADRANT" caption
        quad = int(np.clip(32 * room / max(longest, 1), 16, 32))
        if quad != self._quad_px:
            self._quad_px = quad
            self.quadrant.setStyleSheet(self.quadrant.styleSheet().split("font-size")[0]
                                        + f"font-size: {quad}px;")
        if hasattr(self, "_input_cap"):
            lamps = (self.music_lamp, self.clip_lamp, self.silent_lamp, self.noinput_lamp)
            need = sum(w.sizeHint().width() + 6 for w in lamps) + self._input_cap.sizeHint().width() + 24 + 12
            self._input_cap.setVisible(width >= need)
        px = int(np.clip((width - 150) / 8.5, 30, 64))
        if px == self._big_px:
            return
        self._big_px = px
        for name, color in (("arousal", AROUSAL_COLOR), ("valence", VALENCE_COLOR), ("bpm", FG)):
            self.big[name].setStyleSheet(f"color: {color}; font-size: {px}px;")
        self.pulse.setFixedSize(int(px * 0.7), int(px * 0.7))
        self.numbers.updateGeometry()

    # where the window opens, and remembering it
    def store(self) -> QtCore.QSettings:
        if self._store is None:
            self._store = window_store()
        return self._store

    def show_placed(self, fullscreen: bool = False) -> None:
        """Show the window where it was last time (moved onto the screen it lands on; maximised
        there if its size does not fit), else maximised on the screen under the mouse; fullscreen
        if it was or ``fullscreen`` (the config) says so."""
        st = self.store()
        self._remembers = True
        normal = st.value("window/normal")  # our own rect: restoreGeometry refuses some places
        restored = isinstance(normal, QtCore.QRect) and normal.isValid()
        if restored:
            self.setGeometry(normal)
        too_big = restored and self._fit_normal_geometry()
        if not restored:
            screen = (QtGui.QGuiApplication.screenAt(QtGui.QCursor.pos())
                      or QtGui.QGuiApplication.primaryScreen())
            if screen is not None:
                avail = screen.availableGeometry()
                size = avail.size() * 0.85
                size = size.expandedTo(QtCore.QSize(*MIN_WINDOW)).boundedTo(avail.size())
                rect = QtCore.QRect(QtCore.QPoint(0, 0), size)
                rect.moveCenter(avail.center())
                self.setGeometry(rect)  # what un-maximising gives
        if fullscreen or _truthy(st.value("window/fullscreen")):
            self.showFullScreen()
        elif not restored or too_big or _truthy(st.value("window/maximized")):
            self.showMaximized()
        else:
            self.show()
            QtCore.QTimer.singleShot(300, self, self.keep_on_screen)  # once the window manager framed it

    def _fit_normal_geometry(self) -> bool:
        """Bring a remembered place onto the screen it lands on now (another, smaller monitor, or
        none there any more); True when the size did not fit: then it opens maximised there."""
        app = QtGui.QGuiApplication
        screen = app.screenAt(self.geometry().center()) or app.primaryScreen()
        if screen is None:
            return False
        avail = screen.availableGeometry()
        g = self.geometry()
        too_big = g.width() > avail.width() or g.height() > avail.height()
        if too_big:  # what un-maximising gives
            g.setSize((avail.size() * 0.85).expandedTo(QtCore.QSize(*MIN_WINDOW)).boundedTo(avail.size()))
        g.moveLeft(min(max(g.left(), avail.left()), avail.right() + 1 - g.width()))
        g.moveTop(min(max(g.top(), avail.top()), avail.bottom() + 1 - g.height()))
        self.setGeometry(g)
        return too_big

    def keep_on_screen(self) -> bool:
        """Move and shrink the framed window into its screen's available geometry; True if it had to."""
        if self.isFullScreen() or self.isMaximized() or not self.isVisible():
            return False
        screen = self.screen()
        avail, frame, geo = screen.availableGeometry(), self.frameGeometry(), self.geometry()
        dw, dh = frame.width() - geo.width(), frame.height() - geo.height()
        w = min(geo.width(), avail.width() - dw)
        h = min(geo.height(), avail.height() - dh)
        fx = min(max(frame.x(), avail.x()), avail.x() + avail.width() - (w + dw))
        fy = min(max(frame.y(), avail.y()), avail.y() + avail.height() - (h + dh))
        if (w, h, fx, fy) == (geo.width(), geo.height(), frame.x(), frame.y()):
            return False
        self.resize(w, h)
        self.move(fx, fy)  # move() places the frame's top-left corner
        return True

    def remember(self) -> None:
        """Save size, position, maximised and fullscreen state for the next run."""
        st = self.store()
        st.setValue("window/normal", self.normalGeometry() if self.isMaximized() or self.isFullScreen()
                    else self.geometry())
        st.setValue("window/fullscreen", self.isFullScreen())
        st.setValue("window/maximized", self.isMaximized())
        st.sync()

    def _build_controls(self) -> QtWidgets.QHBoxLayout:
        row = QtWidgets.QHBoxLayout()
        row.setSpacing(8)
        title = QtWidgets.QLabel("mer-live")
        title.setStyleSheet("font-size: 22px; font-weight: 900; letter-spacing: 2px;")
        row.addWidget(title)
        row.addSpacing(6)
        row.addWidget(QtWidgets.QLabel("input"))
        self.device_box = QtWidgets.QComboBox()
        self.device_box.setMinimumWidth(120)  # grows with the window; a long name is elided
        self.device_box.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.device_box.setMinimumContentsLength(12)
        self.device_box.activated.connect(self._on_device_chosen)
        row.addWidget(self.device_box, 2)
        rescan = QtWidgets.QPushButton("↻")
        rescan.setToolTip("rescan input devices")
        rescan.clicked.connect(self._refresh_devices)
        row.addWidget(rescan)
        self.start_stop = QtWidgets.QPushButton("Stop")
        self.start_stop.setObjectName("startstop")
        self.start_stop.clicked.connect(self.toggle_running)
        row.addWidget(self.start_stop)
        row.addSpacing(6)
        self.attack = self._spin("attack s", row)
        self.release = self._spin("release s", row)
        cfg = getattr(self.app, "config", None)
        self.attack.setValue(float(getattr(cfg, "attack_s", 0.3)))
        self.release.setValue(float(getattr(cfg, "release_s", 1.0)))
        self.attack.editingFinished.connect(self._on_smoothing)
        self.release.editingFinished.connect(self._on_smoothing)
        row.addSpacing(6)
        row.addWidget(QtWidgets.QLabel("OSC"))
        self.osc_edit = QtWidgets.QLineEdit()
        self.osc_edit.setPlaceholderText("host:port, host:port")
        self.osc_edit.setMinimumWidth(110)
        self.osc_edit.returnPressed.connect(self._on_osc_targets)
        row.addWidget(self.osc_edit, 2)
        self.fs_button = QtWidgets.QPushButton("Fullscreen (F11)")
        self.fs_button.clicked.connect(self.toggle_fullscreen)
        row.addWidget(self.fs_button)
        return row

    def _spin(self, label: str, row: QtWidgets.QHBoxLayout) -> QtWidgets.QDoubleSpinBox:
        row.addWidget(QtWidgets.QLabel(label))
        s = QtWidgets.QDoubleSpinBox()
        s.setRange(0.0, 60.0)
        s.setDecimals(2)
        s.setSingleStep(0.25)
        s.setKeyboardTracking(False)
        s.setMinimumWidth(s.fontMetrics().horizontalAdvance("60.00") + 48)  # not 60.00's full hint
        row.addWidget(s)
        return s

    def _build_numbers(self) -> QtWidgets.QHBoxLayout:
        """The live values: arousal, valence, the tempo with its beat pulse (the quadrant below)."""
        row = QtWidgets.QHBoxLayout()
        row.setSpacing(10)
        self.big: dict[str, QtWidgets.QLabel] = {}
        for name, cap_text in (("arousal", "AROUSAL"), ("valence", "VALENCE"), ("bpm", "BPM")):
            f, lay = _panel()
            cap = QtWidgets.QLabel(cap_text)
            cap.setObjectName("bigcap")
            num = QtWidgets.QLabel("–")
            num.setObjectName("big")
            lay.addWidget(cap)
            if name == "bpm":
                line = QtWidgets.QHBoxLayout()
                line.setSpacing(12)
                line.addWidget(num)
                self.pulse = BeatPulse()
                line.addWidget(self.pulse, 0, QtCore.Qt.AlignmentFlag.AlignVCenter)
                line.addStretch(1)
                lay.addLayout(line)
            else:
                lay.addWidget(num)
            self.big[name] = num
            row.addWidget(f, 1)
        f, lay = _panel()
        lay.setContentsMargins(12, 6, 12, 6)
        line = QtWidgets.QHBoxLayout()
        cap = QtWidgets.QLabel("QUADRANT")
        cap.setObjectName("bigcap")
        line.addWidget(cap)
        line.addSpacing(12)
        self.quadrant = QtWidgets.QLabel("waiting for audio")
        self.quadrant.setObjectName("quadrant")
        line.addWidget(self.quadrant, 1)
        lay.addLayout(line)
        self.quadrant_panel = f
        self._size_numbers(640)
        return row

    def _build_input(self) -> QtWidgets.QFrame:
        f, lay = _panel()
        top = QtWidgets.QHBoxLayout()
        cap = QtWidgets.QLabel("INPUT")
        cap.setObjectName("bigcap")
        top.addWidget(cap)
        self._input_cap = cap  # hidden in a narrow column, so that the lamps stay whole
        top.addStretch(1)
        self.clip_lamp, self.silent_lamp = _lamp("CLIP"), _lamp("SILENT")
        self.noinput_lamp, self.music_lamp = _lamp("NO INPUT"), _lamp("MUSIC")
        for lamp in (self.music_lamp, self.clip_lamp, self.silent_lamp, self.noinput_lamp):
            top.addWidget(lamp)
        lay.addLayout(top)
        bottom = QtWidgets.QHBoxLayout()  # the numbers beside the meter, not beside the lamps: room for both
        self.meter = LevelMeter()
        bottom.addWidget(self.meter, 1)
        self.level_text = QtWidgets.QLabel("RMS –  peak – dBFS")
        self.level_text.setStyleSheet("font-size: 15px; font-weight: 700;")
        font = QtGui.QFont()  # the style sheet's font is applied later: measure with it now
        font.setPixelSize(15)
        font.setBold(True)
        widest = QtGui.QFontMetrics(font).horizontalAdvance("RMS -120.0  peak -120.0 dBFS")
        self.level_text.setMinimumWidth(widest + 8)
        bottom.addWidget(self.level_text)
        lay.addLayout(bottom)
        return f

    def _build_status(self) -> QtWidgets.QFrame:
        f, lay = _panel()
        grid = QtWidgets.QGridLayout()
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(4)
        self.status_labels: dict[str, QtWidgets.QLabel] = {}
        keys = ["source", "sample rate", "model", "provider", "model ms", "latency",
                "overflows", "OSC", "send rate", "hops skipped", "input kind"]
        for i, key in enumerate(keys):
            k = QtWidgets.QLabel(key)
            k.setObjectName("statuskey")
            v = QtWidgets.QLabel("–")
            v.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            grid.addWidget(k, i // 2, (i % 2) * 2)
            grid.addWidget(v, i // 2, (i % 2) * 2 + 1)
            self.status_labels[key] = v
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        lay.addLayout(grid)
        return f

    # updates
    def tick(self) -> None:
        """One timer tick: redraw if a new estimate arrived; the beat pulse every tick; the status a
        few times a second. ``now`` is ``time.monotonic()``, the clock of ``Estimate.wall`` and
        ``Event.wall``."""
        now = time.monotonic()
        try:
            snap = self.app.history.snapshot()
            get_events = getattr(self.app.history, "events", None)
            events = get_events() if callable(get_events) else []
        except Exception as e:  # the window must survive whatever the app does
            self.show_message(f"history unavailable: {one_line(e)}")
            return
        self._beat_from_events(events)
        if snap:
            latest = snap[-1]
            key = (latest.t, latest.wall)
            if key != self._last_key:
                self._last_key = key
                self.draw(snap, now, events)
        self.show_beat(now)
        if now - self._last_status >= self.STATUS_EVERY_S:
            self._last_status = now
            self.refresh_status()

    def _beat_from_events(self, events: Sequence[Event]) -> None:
        """The newest beat event restarts the pulse at the beat's own time (not the next hop's)."""
        for ev in reversed(events):
            if ev.kind == "beat":
                self._beat_events_seen = True
                if ev.wall > self._beat_at:
                    self._beat_at = ev.wall
                break

    def show_beat(self, now: float) -> None:
        """Light the pulse for ``BEAT_FADE_S`` after the last beat, while music plays."""
        age = now - self._beat_at
        level = 1.0 - age / BEAT_FADE_S if self._music and 0.0 <= age < BEAT_FADE_S else 0.0
        self.pulse.set_level(level)

    def draw(self, snap: Sequence[Estimate], now: float | None = None, events: Sequence[Event] = ()) -> None:
        """Redraw every panel from a history snapshot (oldest first) and the recent events."""
        latest = snap[-1]
        now = now if now is not None else time.monotonic()
        s = series_of(snap, self.settings.history_s)
        self.plane.update_from(s, self.settings.trail_s, latest)
        self.series.update_from(s)
        self.series.set_marks(marks_of(s, events, self.settings.history_s))
        self.big["arousal"].setText(f"{latest.arousal:.2f}")
        self.big["valence"].setText(f"{latest.valence:.2f}")
        self.big["bpm"].setText(f"{latest.bpm:.0f}" if latest.bpm > 0 else "–")
        r, g, b = QUADRANT_COLORS.get(latest.quadrant, NO_MUSIC_COLOR)
        if not latest.input_ok:
            self.quadrant.setText("NO INPUT")
            self.quadrant.setStyleSheet(f"color: {BAD}; font-size: {self._quad_px}px;")
        else:
            self.quadrant.setText(mood_label(latest))
            self.quadrant.setStyleSheet(f"color: rgb({r},{g},{b}); font-size: {self._quad_px}px;")
        self.meter.set_levels(latest.level_rms_db, latest.level_peak_db)
        self.level_text.setText(
            f"RMS {latest.level_rms_db:.1f}  peak {latest.level_peak_db:.1f} dBFS")
        if latest.clipping:
            self._clip_until = now + CLIP_HOLD_S
        _set_lamp(self.clip_lamp, latest.clipping or now < self._clip_until, BAD)
        _set_lamp(self.silent_lamp, latest.silent, WARN)
        _set_lamp(self.noinput_lamp, not latest.input_ok, BAD)
        _set_lamp(self.music_lamp, latest.hears_music, GOOD)
        self._music = latest.music
        if latest.beats != self._beats_seen:  # without beat events (another history), the hop's count
            self._beats_seen = latest.beats
            if not self._beat_events_seen:
                self._beat_at = now
        self.show_beat(now)
        sl = self.status_labels
        sl["latency"].setText(f"{latest.latency_ms:.0f} ms")
        sl["overflows"].setText(str(latest.overflows))
        sl["hops skipped"].setText(str(latest.hops_skipped))
        self.frames_drawn += 1

    def refresh_status(self) -> None:
        """Fill the status panel from ``app.status()`` and the model; never raises."""
        try:
            st = dict(self.app.status())
        except Exception as e:
            self.show_message(f"status unavailable: {one_line(e)}")
            return
        sl = self.status_labels
        model = getattr(self.app, "model", None)
        card = getattr(model, "card", None)
        source = st.get("source", getattr(self.app, "source_name", "?"))
        sl["source"].setText(str(source))
        sr = st.get("samplerate", st.get("sample_rate"))
        sl["sample rate"].setText(f"{sr} Hz" if sr else "–")
        sl["model"].setText(str(st.get("model", getattr(card, "name", "?"))))
        sl["input kind"].setText(str(getattr(model, "input_kind", "line")))  # line or room (--room)
        prov = str(st.get("provider", getattr(model, "active_provider", "?")))
        sl["provider"].setText(prov.replace("ExecutionProvider", ""))
        targets = st.get("osc_targets", [])
        if isinstance(targets, (list, tuple)):
            targets = ", ".join(map(str, targets)) or "off"
        sl["OSC"].setText(str(targets))
        rate = st.get("osc_rate_hz")
        sl["send rate"].setText(_num(rate, "{:.1f} /s"))
        if "model_ms" in st:  # median over recent hops: steadier to read than the last hop
            sl["model ms"].setText(_num(st["model_ms"], "{:.1f} ms"))
        for key, name in (("overflows", "overflows"), ("hops_skipped", "hops skipped")):
            if key in st:
                sl[name].setText(str(st[key]))
        running = bool(getattr(self.app, "running", False))
        self.start_stop.setText("Stop" if running else "Start")
        msg = st.get("message") or ("running" if running else "stopped")
        if not self.osc_edit.hasFocus() and not self.osc_edit.text() and targets not in ("off", ""):
            self.osc_edit.setText(str(targets))
        if self._message_until < time.monotonic():
            self.status_line.setText(str(msg))
            self.status_line.setStyleSheet("")

    _message_until = 0.0

    def show_message(self, text: str, error: bool = True, hold_s: float = 8.0) -> None:
        """Show a one-line message in the status line (held for ``hold_s`` over routine status)."""
        self.status_line.setText(text)
        self.status_line.setStyleSheet(f"color: {BAD if error else GOOD}; font-weight: 700;")
        self._message_until = time.monotonic() + hold_s
        if error:
            log.warning("%s", text)

    # controls
    def _refresh_devices(self) -> None:
        current = str(getattr(self.app, "source_name", ""))
        names = list(dict.fromkeys([n for n in [current, *self._devices()] if n]))
        self.device_box.blockSignals(True)
        self.device_box.clear()
        self.device_box.addItems(names)
        if current:
            self.device_box.setCurrentIndex(names.index(current))
        self.device_box.blockSignals(False)

    def _on_device_chosen(self, index: int) -> None:
        name = self.device_box.itemText(index)
        self.choose_device(name)

    def choose_device(self, name: str) -> bool:
        """Switch the input (re-opens the stream); an error goes to the status line, never a crash."""
        if name == str(getattr(self.app, "source_name", "")) and getattr(self.app, "running", False):
            return True
        try:
            self.app.switch_device(name)
        except Exception as e:
            self.show_message(f"cannot switch to {name!r}: {one_line(e)}")
            self._refresh_devices()
            return False
        self._last_key = None
        self.show_message(f"input: {name}", error=False, hold_s=3.0)
        self._refresh_devices()
        return True

    def toggle_running(self) -> None:
        try:
            if getattr(self.app, "running", False):
                self.app.stop()
            else:
                self.app.start()
        except Exception as e:
            self.show_message(f"cannot {'stop' if self.app.running else 'start'}: {one_line(e)}")
        self.refresh_status()

    def _on_smoothing(self) -> None:
        try:
            self.app.set_smoothing(self.attack.value(), self.release.value())
        except Exception as e:
            self.show_message(f"smoothing not changed: {one_line(e)}")

    def _on_osc_targets(self) -> None:
        text = self.osc_edit.text()
        targets = [t.strip() for t in text.replace(";", ",").replace(" ", ",").split(",") if t.strip()]
        try:
            self.app.set_osc_targets(targets)
        except Exception as e:
            self.show_message(f"OSC targets not changed: {one_line(e)}")
            return
        self.show_message(f"OSC targets: {', '.join(targets) or 'off'}", error=False, hold_s=3.0)

    def toggle_fullscreen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()

    def leave_fullscreen(self) -> None:
        if self.isFullScreen():
            self.showNormal()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt override)
        """Closing the window stops the timer and the whole app (pipeline, source, OSC)."""
        self.timer.stop()
        if self._remembers:
            try:
                self.remember()
            except Exception as e:  # a read-only home must not stop the show from closing
                log.warning("cannot save the window's place: %s", one_line(e))
        if not self._stopped:
            self._stopped = True
            try:
                self.app.stop()
            except Exception as e:
                log.warning("stopping: %s", one_line(e))
        super().closeEvent(event)


def run_dashboard(app: Any, gui_config: Any = None, devices: Callable[[], list[str]] | None = None) -> int:
    """Show the dashboard over a started ``LiveApp`` until the window closes; return an exit code.

    Creates the QApplication if none exists. Ctrl-C in the terminal closes the window. The app is
    stopped when the window closes (and again, harmlessly, if exec returns another way).
    """
    settings = GuiSettings.from_any(gui_config)
    qapp = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    pg.setConfigOptions(antialias=True)
    win = DashboardWindow(app, settings, devices=devices)
    win.show_placed(fullscreen=settings.fullscreen)
    # Ctrl-C closes the window, unless the caller (the CLI) already handles SIGINT itself. Python
    # only sees a signal between Qt events, so a timer wakes it a few times a second.
    old = signal.getsignal(signal.SIGINT)
    ours = old is signal.default_int_handler and threading.current_thread() is threading.main_thread()
    if ours:
        signal.signal(signal.SIGINT, lambda *_: win.close())
    wake = QtCore.QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(200)
    try:
        rc = qapp.exec()
    finally:
        wake.stop()
        if ours:
            signal.signal(signal.SIGINT, old)
        if not win._stopped:
            win.close()
    return int(rc)
