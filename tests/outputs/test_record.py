"""The show record: rows round-trip through real CSV/JSONL files, appending works, a killed
process loses at most a second, bad paths are one-line errors, and the plot command draws."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mer_live.live.records import Estimate
from mer_live.outputs.record import COLUMNS, Recorder, RecordError, read_record, row_of, song_starts
from tests.conftest import need_module

ROOT = Path(__file__).resolve().parents[2]


def est(i: int, music: bool = True) -> Estimate:
    a = (i % 10) / 10
    return Estimate(t=i * 0.1, wall=time.monotonic(), arousal_raw=a, valence_raw=1 - a, arousal=a * 0.9,
                    valence=0.5, level_rms_db=-20.0 - i % 7, level_peak_db=-6.0, silent=not music,
                    clipping=False, input_ok=True, bad_samples=0, model_ms=1.0, latency_ms=2.0, overflows=0,
                    hops_skipped=0, music=music, music_prob=0.9, bpm=120.0 + i % 3, beats=i // 5)


@pytest.mark.parametrize("ext", [".csv", ".jsonl"])
def test_rows_round_trip_and_append(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"show{ext}"
    for _run in range(2):  # the second run appends (one header in CSV)
        rec = Recorder(path)
        rec.start()
        for i in range(40):
            rec(est(i, music=i % 13 != 0))
        rec.stop()
        assert rec.rows == 40 and not rec.error
    rows = read_record(path)
    assert len(rows) == 80
    for i, r in enumerate(rows[:40]):
        want = row_of(est(i, music=i % 13 != 0), r["time"])
        assert r == want
        assert tuple(r) == COLUMNS
    assert rows[0]["quadrant"] == 0 and rows[0]["music"] == 0  # no music: quadrant 0
    assert rows[1]["quadrant"] in (3, 4) and rows[1]["bpm"] == 121.0 and rows[39]["beats"] == 7
    if ext == ".csv":
        lines = path.read_text().splitlines()
        assert lines[0] == ",".join(COLUMNS) and sum(ln == lines[0] for ln in lines) == 1
    assert rows[0]["time"][:4].isdigit() and "T" in rows[0]["time"]  # ISO 8601


def test_bad_paths_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match=r"must end in \.csv or \.jsonl"):
        Recorder(tmp_path / "show.txt")
    with pytest.raises(RecordError) as e:
        Recorder(tmp_path / "no" / "such" / "dir" / "show.csv").start()
    assert "\n" not in str(e.value) and "No such file or directory" in str(e.value)
    other = tmp_path / "other.csv"
    other.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(RecordError, match="other columns"):
        Recorder(other).start()
    assert other.read_text() == "a,b,c\n1,2,3\n"  # untouched


CHILD = """
import sys, time
from mer_live.live.records import Estimate
from mer_live.outputs.record import Recorder
rec = Recorder(sys.argv[1])
rec.start()
i = 0
while True:
    rec(Estimate(t=i * 0.1, wall=time.monotonic(), arousal_raw=0.5, valence_raw=0.5, arousal=0.5,
                 valence=0.5, level_rms_db=-20.0, level_peak_db=-6.0, silent=False, clipping=False,
                 input_ok=True, bad_samples=0, model_ms=1.0, latency_ms=2.0, overflows=0, hops_skipped=0))
    print(i, flush=True)
    i += 1
    time.sleep(0.1)
"""


@pytest.mark.parametrize("ext", [".csv", ".jsonl"])
def test_a_killed_process_loses_at_most_a_second(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"crash{ext}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        last = -1
        assert p.stdout is not None
        while last < 30:  # 3 s of rows
            line = p.stdout.readline()
            assert line, "the recording process died"
            last = int(line)
        os.kill(p.pid, signal.SIGKILL)  # no chance to flush or close
    finally:
        p.kill()
        p.wait(timeout=10)
    rows = read_record(path)
    assert rows, "nothing survived the kill"
    assert rows[-1]["t"] >= last * 0.1 - 1.0, f"lost over a second: last row t={rows[-1]['t']}, sent {last}"
    assert [r["t"] for r in rows] == [round(i * 0.1, 3) for i in range(len(rows))]  # in order, none torn


def test_song_starts() -> None:
    t = [i * 0.5 for i in range(20)]
    music = [0, 0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1]
    # the 0.5 s dip and the last 1 s gap are not songs
    assert song_starts(t, music, min_gap_s=2.0) == [1.0, 6.5]


def test_plot_command_draws_a_png(tmp_path: Path) -> None:
    need_module("matplotlib", "train")
    path = tmp_path / "show.csv"
    rec = Recorder(path)
    rec.start()
    for i in range(300):
        rec(est(i, music=not 100 <= i < 140))
    rec.stop()
    png = tmp_path / "show.png"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "mer_live.outputs.record", "plot", str(path), str(png)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    missing = tmp_path / "none.csv"
    r = subprocess.run([sys.executable, "-m", "mer_live.outputs.record", "plot", str(missing), str(png)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "cannot read" in r.stderr
