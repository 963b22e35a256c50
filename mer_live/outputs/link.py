"""Ableton Link: the session's tempo and beat phase follow the beat mer-live hears.

Why: Resolume, TouchDesigner, Ableton Live, Traktor and Rekordbox follow a Link session; a VJ
should not need a bridge script from /mer/bpm. ``LinkOutput`` is a pipeline sink (``sink``,
``event`` only store) with its own thread, which owns the Link instance (LinkPython-extern's
module ``link``, the ``[link]`` extra; it contains Ableton Link, GPL-2.0-or-later).

Rules, so that mer-live never disturbs a session it cannot hear:

* it **joins only once it hears music with a beat and a tempo** (two of the last four beats
  heard, below), with that tempo (before, it is
  not in the session at all, so a session's tempo is never replaced by a default; joining a running
  session adopts that session's tempo), and **changes the session only once the beat is steady**
  (``BeatFollower.steady``: the last ``steady_beats`` intervals at the published tempo, the beats
  heard: the tracker's own, each with an onset; aubio also beats on a held chord). It leaves
  again after ``leave_s`` without a steady beat, so a peer joining between songs adopts nothing
  from it.
* while the beat is steady, on each beat it sets the session tempo to the tracker's (only when
  they differ by more than ``tempo_tolerance``) and moves the session's beat grid towards the
  beat: the beat's place in the bar (``/mer/beat_in_bar``, 1 -> phase 0 of the quantum) at the
  moment it sounded. Errors under ``phase_deadband_ms`` are left alone, others are corrected by
  half each beat (a tracker's few-ms jitter does not jitter the session), a jump of more than a
  quarter beat (a new song, a reset) at once. At most one correction per beat.
* with no beat (a break, talk, silence) it commits nothing: the session keeps its tempo.

Times: beats are placed where they sounded (``BeatFollower``) on ``time.monotonic()``; Link's
clock is CLOCK_MONOTONIC_RAW on Linux, so the offset between them is read at each use.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from mer_live.analysers.beatfollow import Beat, BeatFollower
from mer_live.common.validate import check, config_from_dict
from mer_live.live.sinks import ThreadedSink
from mer_live.registry import Flag, OutputSpec, register_output

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkConfig:
    """``[link]``: join the Link session and drive it from the beat (off by default)."""

    enabled: bool = False
    quantum: float = 4.0  #: beats per Link phase cycle (a bar of 4/4)
    steady_beats: int = 3  #: this many steady intervals before mer-live joins and drives the session
    tempo_tolerance: float = 0.002  #: set the session tempo only when it differs by more (0.2 %)
    phase_deadband_ms: float = 3.0  #: phase errors below this are left alone
    leave_s: float = 10.0  #: leave the session after this long without a steady beat

    def __post_init__(self) -> None:
        s = "link"
        check(1.0 <= self.quantum <= 16.0, s, "quantum", "beats in 1..16", self.quantum)
        check(2 <= self.steady_beats <= 16, s, "steady_beats", "an integer in 2..16", self.steady_beats)
        check(0.0 <= self.tempo_tolerance <= 0.05, s, "tempo_tolerance", "a fraction in 0..0.05",
              self.tempo_tolerance)
        check(0.0 <= self.phase_deadband_ms <= 50.0, s, "phase_deadband_ms", "ms in 0..50",
              self.phase_deadband_ms)
        check(1.0 <= self.leave_s <= 3600.0, s, "leave_s", "seconds in 1..3600", self.leave_s)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LinkConfig:
        return config_from_dict(cls, data, "link")


def _link_module() -> Any:
    try:
        import link
    except ImportError as e:
        raise OSError(f"Ableton Link needs the [link] extra: pip install 'mer-live[link]' ({e})") from None
    return link


def target_beat(session_beat: float, pos: int, quantum: float) -> float:
    """The session beat the beat at ``pos`` (1..N, 0: not known) should be: the nearest value to
    ``session_beat`` whose phase in the quantum is ``pos - 1`` (or any whole beat if not known)."""
    if pos <= 0 or quantum < 1:
        return float(round(session_beat))
    want = (pos - 1) % quantum
    base = session_beat - ((session_beat - want) % quantum)  # the latest value <= beat with that phase
    return min((base, base + quantum), key=lambda b: abs(b - session_beat))


class LinkOutput(ThreadedSink):
    """Pipeline sink: ``sink(estimate)``, ``event(ev)``, ``start``/``stop``; a thread drives Link."""

    event_kinds = ("beat", "beat_in_bar", "bar", "onset")

    def __init__(self, config: LinkConfig) -> None:
        super().__init__()
        self.config = config
        self._module: Any = None
        self._link: Any = None
        self.follow = BeatFollower(steady_beats=config.steady_beats)
        self._last_steady = -math.inf
        self._joined_at = -math.inf
        self._done_count = -1  #: the beat count last used (one correction per beat)
        self.counts = {"joins": 0, "tempo_sets": 0, "phase_sets": 0, "beats_seen": 0}
        self.log: deque[tuple[float, float, float]] = deque(maxlen=4096)  #: (wall, bpm, phase err ms)

    def describe(self) -> str:
        c = self.config
        return (f"Ableton Link: joins when a steady beat is heard (quantum {c.quantum:g}); "
                "never sets a tempo it does not hear")

    @property
    def joined(self) -> bool:
        return self._link is not None and bool(self._link.enabled)

    def peers(self) -> int:
        return int(self._link.numPeers()) if self._link is not None else 0

    def start(self) -> None:
        """Load the binding (one-line OSError without it) and start the thread; joins nothing yet."""
        if not self.config.enabled or self._thread is not None:
            return
        self._module = _link_module()
        self._start_thread("mer-link")

    def stop(self) -> None:
        """Leave the session and stop the thread; returns within about 0.5 s."""
        th = self._stop_thread(0.5)
        lk = self._link
        if lk is not None and (th is None or not th.is_alive()):
            try:
                lk.enabled = False
            except Exception:
                pass

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    self._step(time.monotonic())
                except Exception as e:  # Link must never take the show down
                    log.warning("Link: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)
                self._wake.wait(0.05)
        finally:
            if self._link is not None:
                try:
                    self._link.enabled = False
                except Exception:
                    pass

    def _step(self, now: float) -> None:
        est = self._latest
        if est is not None:
            self.follow.estimate(est)
        newest: Beat | None = None
        while self._events:
            b = self.follow.event(self._events.popleft())
            if b is not None:
                newest = b
        b = self.follow.last
        if self._link is None and b is not None and b.bpm > 0 and self.follow.music and \
                sum(self.follow.heard(x) for x in list(self.follow.beats)[-4:]) >= 2:
            # Listen early: join when music with a beat and a tempo starts, so the peers are found by
            # the time the beat is steady (~1 beat). Joining adopts a running session's timeline;
            # nothing is committed before the beat is steady.
            self._join(b.bpm)
        steady = self.follow.steady(now)
        if steady:
            self._last_steady = now
        elif self.joined and now - max(self._last_steady, self._joined_at) > self.config.leave_s:
            self._link.enabled = False
            log.info("Link: no steady beat for %g s: left the session", self.config.leave_s)
        if not steady or newest is None:
            if newest is not None:
                log.debug("Link: beat %d not steady yet (%s)", newest.count,
                          [round(x.wall, 3) for x in list(self.follow.beats)[-5:]])
            return
        # A beat's place in the bar comes in its own event right after the beat: use the newest
        # beat once its place is known (or the next pass, when no place is coming)
        b = self.follow.last
        assert b is not None
        if b.count == self._done_count or (b.pos == 0 and now - b.wall < 0.03):
            return
        self._done_count = b.count
        self._drive(b)

    def _join(self, bpm: float) -> None:
        if self._link is None:
            self._link = self._module.Link(bpm)
        if not self._link.enabled:
            self._link.enabled = True
            self._joined_at = time.monotonic()
            self.counts["joins"] += 1
            log.info("Link: joined the session, hearing %.1f BPM", bpm)

    def _drive(self, b: Beat) -> None:
        c = self.config
        if not self.joined:
            self._join(b.bpm)
        clock = self._link.clock()
        offset = clock.micros() / 1e6 - time.monotonic()
        t_beat = int(round((b.wall + offset) * 1e6))
        t_now = clock.micros()
        st = self._link.captureAppSessionState()
        tempo = st.tempo()
        if abs(math.log(b.bpm / tempo)) > math.log1p(c.tempo_tolerance):
            st.setTempo(b.bpm, t_now)
            self.counts["tempo_sets"] += 1
        beat = st.beatAtTime(t_beat, c.quantum)
        want = target_beat(beat, b.pos, c.quantum)
        err = want - beat  # beats
        err_ms = err * 60000.0 / b.bpm
        self.log.append((b.wall, st.tempo(), err_ms))
        self.counts["beats_seen"] += 1
        if abs(err_ms) >= c.phase_deadband_ms:
            step = err if abs(err) > 0.25 else 0.5 * err  # a jump at once, a drift by halves
            st.forceBeatAtTime(beat + step, t_beat, c.quantum)
            self.counts["phase_sets"] += 1
        self._link.commitAppSessionState(st)


# ---- registration: the [link] section, --link, the factory ---------------------------------------

register_output(OutputSpec(
    name="link", order=140, config=LinkConfig,
    build=lambda cfg: LinkOutput(cfg.link) if cfg.link.enabled else None,
    flags=(Flag(("--link",),
                dict(action="store_const", const=True,
                     help="Ableton Link: drive the session's tempo and beat phase from the beat, only "
                     "while a steady beat is heard ([link]; needs the [link] extra)"),
                ("link", "enabled"), group="tempo sync"),),
))
