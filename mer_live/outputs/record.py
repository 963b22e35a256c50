"""A record of the show: one row per estimate to CSV or JSONL, and a plot of it.

Why: after a show people want to see what the music did (and what the lights were told), and
when something looked wrong, a file to check it against. ``Recorder(path)`` is a pipeline sink:
``sink(estimate)`` only queues the row; its own thread writes it, appending to the file, and
flushes (and fsyncs) at least every ``flush_s`` (0.5 s), so a crash or kill loses at most that.
The format follows the extension: ``.csv`` (header once, checked when appending) or ``.jsonl``
(one JSON object a line). Columns are defined once, in ``COLUMNS`` / ``row_of``, so
``mer-analyze --timeline-csv`` can write the same rows.

    python -m mer_live.outputs.record plot show.csv show.png

draws arousal, valence (smoothed, raw faint) and tempo over wall-clock time, shades the stretches
without music and marks song boundaries (music starting after a pause). Needs matplotlib (the
``train`` extra); without it the command says so in one line.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import logging
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mer_live.live.records import Estimate
from mer_live.registry import Flag, OutputSpec, register_output

log = logging.getLogger(__name__)

#: The record's columns, in order (CSV header, JSONL keys). ``time``: ISO 8601 local wall-clock
#: time with offset; ``t``: stream seconds; ``quadrant``: 0 = no music; ``level_db``: input RMS
#: dBFS; ``music``: 1/0; ``bpm``: 0 = tempo not known; ``beats``: running count.
COLUMNS = ("time", "t", "arousal_raw", "valence_raw", "arousal", "valence", "quadrant", "level_db",
           "music", "bpm", "beats")
FORMATS = (".csv", ".jsonl")


class RecordError(Exception):
    """A record file problem; the message is one line."""


def iso_time(wall: float, now_wall: float | None = None, now_epoch: float | None = None) -> str:
    """ISO 8601 local time (ms, with UTC offset) of ``wall`` (a time.monotonic() value)."""
    now_wall = time.monotonic() if now_wall is None else now_wall
    now_epoch = time.time() if now_epoch is None else now_epoch
    epoch = now_epoch - (now_wall - wall)
    return dt.datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="milliseconds")


def _num(x: float, nd: int) -> float:
    return round(float(x), nd) if math.isfinite(x) else 0.0


def row_of(e: Estimate, time_iso: str) -> dict[str, Any]:
    """One record row for ``e`` (keys = COLUMNS): what mer-live knew at that hop."""
    return {
        "time": time_iso,
        "t": _num(e.t, 3),
        "arousal_raw": _num(e.arousal_raw, 4),
        "valence_raw": _num(e.valence_raw, 4),
        "arousal": _num(e.arousal, 4),
        "valence": _num(e.valence, 4),
        "quadrant": int(e.quadrant),
        "level_db": _num(e.level_rms_db, 1),
        "music": int(e.hears_music),
        "bpm": _num(e.bpm, 2),
        "beats": int(e.beats),
    }


def format_row(row: dict[str, Any], fmt: str) -> str:
    """One line of ``fmt`` (".csv" or ".jsonl") for ``row``, newline included."""
    if fmt == ".jsonl":
        return json.dumps({k: row[k] for k in COLUMNS}, separators=(",", ":")) + "\n"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([row[k] for k in COLUMNS])
    return buf.getvalue()


def record_format(path: Path) -> str:
    fmt = Path(path).suffix.lower()
    if fmt not in FORMATS:
        raise RecordError(f"record file {str(path)!r} must end in .csv or .jsonl")
    return fmt


class Recorder:
    """Pipeline sink that appends one row per estimate: ``start()``, ``sink(estimate)``, ``stop()``."""

    def __init__(self, path: str | Path, flush_s: float = 0.5) -> None:
        self.path = Path(path)
        self.fmt = record_format(self.path)
        self.flush_s = flush_s
        self._q: queue.SimpleQueue[tuple[Estimate, str] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._f: io.TextIOWrapper | None = None
        self.rows = 0
        self.error = ""

    def start(self) -> None:
        """Open (append) and start the writer; a bad path is a one-line ``RecordError``."""
        if self._thread is not None:
            return
        try:
            self._f = open(self.path, "a+", encoding="utf-8", newline="")
            self._f.seek(0)
            first = self._f.readline()
            self._f.seek(0, os.SEEK_END)
        except OSError as e:
            raise RecordError(f"cannot write the record to {str(self.path)!r}: {e.strerror or e}") from None
        if self.fmt == ".csv":
            header = ",".join(COLUMNS)
            if not first:
                self._f.write(header + "\n")
                self._f.flush()
            elif first.rstrip("\r\n") != header:
                self._f.close()
                raise RecordError(f"{str(self.path)!r} holds other columns than a mer-live record; "
                                  "choose a new file")
        self._thread = threading.Thread(target=self._run, name="mer-record", daemon=True)
        self._thread.start()

    def __call__(self, estimate: Estimate) -> None:
        self._q.put((estimate, iso_time(estimate.wall)))

    def _run(self) -> None:
        f = self._f
        assert f is not None
        last_flush = time.monotonic()
        dirty = False
        while True:
            try:
                item = self._q.get(timeout=self.flush_s)
            except queue.Empty:
                item = ()  # type: ignore[assignment]
            if item is None:
                break
            if item:
                e, iso = item
                try:
                    f.write(format_row(row_of(e, iso), self.fmt))
                    self.rows += 1
                    dirty = True
                except OSError as err:
                    self._fail(err)
            if dirty and time.monotonic() - last_flush >= self.flush_s:
                self._flush(f)
                dirty, last_flush = False, time.monotonic()
        if dirty:
            self._flush(f)

    def _flush(self, f: io.TextIOWrapper) -> None:
        try:
            f.flush()
            os.fsync(f.fileno())
        except OSError as err:
            self._fail(err)

    def _fail(self, err: OSError) -> None:
        if not self.error:
            log.warning("record: writing %s failed: %s", self.path, err.strerror or err)
        self.error = str(err)

    @property
    def part_name(self) -> str:
        """How stop warnings name this output (``mer_live.live.stopping``)."""
        return f"record ({self.path})"

    def stop(self, timeout: float = 2.0) -> None:
        """Write what is queued, flush and close. Safe to call twice. A writer stuck in the file
        system (a hung network share) is a daemon thread: after ``timeout`` it is left, the file
        unclosed, and a ``TimeoutError`` names it (``LiveApp`` abandons it at its own deadline)."""
        th, self._thread = self._thread, None
        if th is None:
            return
        self._q.put(None)
        th.join(timeout=timeout)
        f, self._f = self._f, None
        if th.is_alive():
            raise TimeoutError(f"the writer did not finish within {timeout:g} s (last rows may be lost)")
        if f is not None:
            f.close()


def read_record(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a record file, typed as ``row_of`` writes them (a torn last line is skipped)."""
    path = Path(path)
    fmt = record_format(path)
    ints = {"quadrant", "music", "beats"}
    rows: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RecordError(f"cannot read {str(path)!r}: {e.strerror or e}") from None
    if fmt == ".jsonl":
        for line in text.splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return rows
    if tuple(header) != COLUMNS:
        raise RecordError(f"{str(path)!r} is not a mer-live record (its header is {','.join(header)[:80]!r})")
    for vals in reader:
        if len(vals) != len(COLUMNS):
            continue
        try:
            rows.append({k: (v if k == "time" else int(v) if k in ints else float(v))
                         for k, v in zip(COLUMNS, vals, strict=True)})
        except ValueError:
            continue
    return rows


def song_starts(seconds: Sequence[float], music: Sequence[int], min_gap_s: float = 2.0) -> list[float]:
    """Times where music starts after at least ``min_gap_s`` without it (and the first start)."""
    starts: list[float] = []
    off_since: float | None = -math.inf
    for t, m in zip(seconds, music, strict=True):
        if m:
            if off_since is not None and t - off_since >= min_gap_s:
                starts.append(t)
            off_since = None
        elif off_since is None:
            off_since = t
    return starts


def plot_record(src: str | Path, png: str | Path, title: str | None = None) -> int:
    """Draw the record ``src`` to ``png``; returns the number of rows drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RecordError("plotting needs matplotlib: pip install matplotlib (or mer-live[train])") from None
    rows = read_record(src)
    if not rows:
        raise RecordError(f"{str(src)!r} holds no rows to plot")
    try:
        t0 = dt.datetime.fromisoformat(rows[0]["time"])
        x = [(dt.datetime.fromisoformat(r["time"]) - t0).total_seconds() / 60.0 for r in rows]
    except (TypeError, ValueError):  # no usable wall-clock: fall back to stream time
        x = [r["t"] / 60.0 for r in rows]
        t0 = None
    music = [int(r["music"]) for r in rows]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, height_ratios=(2, 1))
    for ax in (ax1, ax2):  # shade no-music stretches
        i = 0
        while i < len(rows):
            if not music[i]:
                j = i
                while j + 1 < len(rows) and not music[j + 1]:
                    j += 1
                ax.axvspan(x[i], x[j], color="0.9", lw=0)
                i = j + 1
            else:
                i += 1
        for s in song_starts(x, music, min_gap_s=2.0 / 60.0):
            ax.axvline(s, color="0.4", ls="--", lw=0.8)
    ax1.plot(x, [r["arousal_raw"] for r in rows], color="tab:red", alpha=0.2, lw=0.7)
    ax1.plot(x, [r["valence_raw"] for r in rows], color="tab:blue", alpha=0.2, lw=0.7)
    ax1.plot(x, [r["arousal"] for r in rows], color="tab:red", lw=1.5, label="arousal")
    ax1.plot(x, [r["valence"] for r in rows], color="tab:blue", lw=1.5, label="valence")
    ax1.axhline(0.5, color="0.6", lw=0.6)
    ax1.set_ylim(0, 1)
    ax1.set_ylabel("0..1 (0.5 neutral)")
    ax1.legend(loc="upper right", fontsize=8)
    bpm = [r["bpm"] if r["bpm"] > 0 else float("nan") for r in rows]
    ax2.plot(x, bpm, color="tab:green", lw=1.2)
    ax2.set_ylabel("tempo (BPM)")
    ax2.set_xlabel("minutes" + (f" since {t0:%Y-%m-%d %H:%M:%S}" if t0 else " (stream time)"))
    fig.suptitle(title or f"mer-live show record: {Path(src).name} ({len(rows)} rows; grey: no music, "
                 "dashed: song starts)", fontsize=10)
    fig.tight_layout()
    try:
        fig.savefig(str(png), dpi=110)
    except OSError as e:
        raise RecordError(f"cannot write {str(png)!r}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mer_live.outputs.record",
                                 description="Work with mer-live show records.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("plot", help="draw a record (CSV or JSONL) to a PNG")
    p.add_argument("record", type=Path)
    p.add_argument("png", type=Path)
    p.add_argument("--title", default=None)
    args = ap.parse_args(argv)
    try:
        n = plot_record(args.record, args.png, args.title)
    except RecordError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.png}: {n} rows drawn")
    return 0


# ---- registration: --record (the [run] section's record) and the factory -------------------------

register_output(OutputSpec(
    name="record", order=105,
    build=lambda cfg: Recorder(cfg.run.record) if cfg.run.record is not None else None,
    flags=(Flag(("--record",), dict(metavar="FILE", help="append one row per estimate to FILE (.csv or "
                                    ".jsonl): a record of the show"), ("run", "record")),),
))


if __name__ == "__main__":
    raise SystemExit(main())
