"""mer-analyze over real files (wav written here, mp3 encoded by ffmpeg) with a real ONNX model."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mer_live.analyze import analyze_array, analyze_file, main
from mer_live.inference.model import Model
from tests.conftest import need_tool

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"file", "duration", "arousal", "valence", "quadrant", "music", "timeline"}


def tone(seconds: float, sr: int, amp: float, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1) if channels > 1 else x


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("audio")
    (d / "sub").mkdir()
    out = {
        "loud": d / "loud.wav",
        "quiet": d / "sub" / "quiet.flac",
        "short": d / "short.wav",
        "corrupt": d / "corrupt.mp3",
    }
    sf.write(out["loud"], tone(2.0, 44100, 0.5, channels=2), 44100)
    sf.write(out["quiet"], tone(2.0, 22050, 0.003), 22050)
    sf.write(out["short"], tone(0.3, 16000, 0.2), 16000)
    out["corrupt"].write_bytes(b"ID3\x03\x00\x00\x00" + bytes(range(256)) * 40)
    if shutil.which("ffmpeg"):
        out["mp3"] = d / "sub" / "loud.mp3"
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-i", str(out["loud"]), "-b:a", "128k", str(out["mp3"])],
            check=True, timeout=60,
        )
    return out


@pytest.fixture(scope="module")
def model(loudness_model: Path) -> Model:
    return Model(loudness_model, provider="cpu", threads=1)


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def check_record(rec: dict, duration: float, note: bool = False) -> None:
    assert set(rec) == KEYS | ({"note"} if note else set())
    assert rec["music"] == 1.0  # tones, no music gate: every audible window counts
    assert isinstance(rec["file"], str)
    assert rec["duration"] == pytest.approx(duration, abs=0.06)
    assert 0.0 <= rec["arousal"] <= 1.0 and 0.0 <= rec["valence"] <= 1.0
    assert rec["quadrant"] in {"Q1", "Q2", "Q3", "Q4"}
    assert rec["timeline"], "at least one window"
    for point in rec["timeline"]:
        assert len(point) == 4
        t, a, v, m = point
        assert m == 1
        assert round(t, 3) == t
        assert 0.0 <= a <= 1.0 and 0.0 <= v <= 1.0
    means = np.mean([p[1:3] for p in rec["timeline"]], axis=0)
    assert rec["arousal"] == pytest.approx(means[0], abs=1e-3)
    assert rec["valence"] == pytest.approx(means[1], abs=1e-3)


def test_jsonl_schema_and_window_times(files, loudness_model, capsys) -> None:
    argv = [str(files["loud"]), str(files["quiet"]), "--model", str(loudness_model), "--no-music-gate",
            "--threads", "1"]
    rc, out, err = run_main(argv, capsys)
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    loud, quiet = (json.loads(line) for line in lines)
    assert loud["file"] == str(files["loud"]) and quiet["file"] == str(files["quiet"])
    for rec in (loud, quiet):
        check_record(rec, 2.0)
        # 1 s window, 1 s hop (the default): windows end at 1.0 and 2.0 s
        assert [p[0] for p in rec["timeline"]] == [1.0, 2.0]
    # the test model's arousal follows loudness: -9 dBFS vs -53 dBFS
    assert loud["arousal"] > 0.9 > 0.1 > quiet["arousal"]
    assert loud["quadrant"] in {"Q1", "Q2"} and quiet["quadrant"] in {"Q3", "Q4"}


def test_hop_flag_changes_the_timeline(files, loudness_model, capsys) -> None:
    argv = [str(files["loud"]), "--model", str(loudness_model), "--no-music-gate", "--hop", "0.25"]
    rc, out, _ = run_main(argv, capsys)
    assert rc == 0
    times = [p[0] for p in json.loads(out)["timeline"]]
    assert times == [1.0, 1.25, 1.5, 1.75, 2.0]


def test_mp3_and_folder_recursion(files, loudness_model, capsys) -> None:
    if "mp3" not in files:
        need_tool("ffmpeg")
    folder = files["loud"].parent
    rc, out, _ = run_main([str(folder / "sub"), "--model", str(loudness_model), "--no-music-gate"], capsys)
    assert rc == 0
    recs = {Path(r["file"]).name: r for r in map(json.loads, out.splitlines())}
    assert set(recs) == {"loud.mp3", "quiet.flac"}
    check_record(recs["loud.mp3"], 2.0)
    assert recs["loud.mp3"]["arousal"] > 0.9


def test_short_file_gives_one_padded_window(files, model) -> None:
    rec = analyze_file(files["short"], model)
    check_record(rec, 0.3, note=True)
    assert rec["note"].startswith("shorter than the model's 1-s window")
    assert len(rec["timeline"]) == 1
    assert rec["timeline"][0][0] == pytest.approx(0.3, abs=1e-3)


def test_corrupt_file_is_an_error_line_and_others_go_on(files, loudness_model, capsys) -> None:
    missing = files["loud"].parent / "missing.wav"
    argv = [str(files["corrupt"]), str(files["loud"]), str(missing), "--model", str(loudness_model),
            "--no-music-gate"]
    rc, out, err = run_main(argv, capsys)
    assert rc == 1
    recs = [json.loads(line) for line in out.splitlines()]
    assert [r["file"] for r in recs] == [str(files["corrupt"]), str(files["loud"]), str(missing)]
    assert set(recs[0]) == {"file", "error"} and recs[0]["error"]
    assert "\n" not in recs[0]["error"]
    check_record(recs[1], 2.0)
    assert recs[2] == {"file": str(missing), "error": "file not found"}
    assert "corrupt.mp3" in err  # a warning line per failed file


def test_csv_and_timeline_csv(files, loudness_model, tmp_path, capsys) -> None:
    tl = tmp_path / "tl.csv"
    argv = [str(files["loud"]), str(files["corrupt"]), "--model", str(loudness_model), "--no-music-gate",
            "--csv", "--timeline-csv", str(tl)]
    rc, out, _ = run_main(argv, capsys)
    assert rc == 1
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["file"] for r in rows] == [str(files["loud"]), str(files["corrupt"])]
    assert rows[0]["quadrant"] in {"Q1", "Q2"} and rows[0]["error"] == ""
    assert float(rows[0]["duration"]) == pytest.approx(2.0, abs=0.01)
    assert rows[1]["arousal"] == "" and rows[1]["error"]
    assert rows[0]["music"] == "1.0" and rows[0]["note"] == ""
    tl_rows = list(csv.DictReader(tl.open()))
    assert list(tl_rows[0]) == ["file", "t", "arousal", "valence", "quadrant", "music"]
    assert [float(r["t"]) for r in tl_rows] == [1.0, 2.0]
    assert [(r["quadrant"], r["music"]) for r in tl_rows] == [(rows[0]["quadrant"][1:], "1")] * 2
    assert all(r["file"] == str(files["loud"]) for r in tl_rows)


def test_analyze_array_matches_analyze_file(files, model) -> None:
    data, sr = sf.read(files["loud"], dtype="float32")
    a = analyze_array(data, sr, model)
    b = analyze_file(files["loud"], model)
    assert a["timeline"] == b["timeline"]
    assert a["duration"] == b["duration"] == 2.0


def test_batch_size_does_not_change_results(files, model) -> None:
    data, sr = sf.read(files["loud"], dtype="float32")
    a = analyze_array(data, sr, model, hop=0.1, batch=1)
    b = analyze_array(data, sr, model, hop=0.1, batch=64)
    assert len(a["timeline"]) == 11
    np.testing.assert_allclose(np.array(a["timeline"]), np.array(b["timeline"]), atol=2e-4)


@pytest.mark.parametrize("batch,decoders", [(1, 1), (3, 2), (7, 3), (64, 1)])
def test_windows_of_several_files_share_batches(files, model, batch, decoders) -> None:
    """run() packs the windows of consecutive files into full batches and decodes several files
    at once: every file's record equals analyze_file's, in input order, a failed file in the
    middle included, whatever the batch and the number of decoding threads."""
    from mer_live.analyze import run

    order = [files["loud"], files["quiet"], files["corrupt"], files["short"], files["loud"], files["quiet"]]
    buf = io.StringIO()
    failed = run([str(p) for p in order], model, hop=0.25, batch=batch, out=buf, decoders=decoders)
    recs = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert failed == 1
    assert [r["file"] for r in recs] == [str(p) for p in order]
    assert set(recs[2]) == {"file", "error"}
    for p, rec in zip(order, recs, strict=True):
        if p == files["corrupt"]:
            continue
        alone = analyze_file(p, model, hop=0.25)
        assert rec["duration"] == alone["duration"]
        assert len(rec["timeline"]) == len(alone["timeline"])
        np.testing.assert_allclose(np.array(rec["timeline"]), np.array(alone["timeline"]), atol=2e-4)


def test_bad_model_is_one_line_exit_2(files, tmp_path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    broken.with_suffix(".json").write_text(json.dumps({"sample_rate": 16000, "window_samples": 16000}))
    out = subprocess.run(
        [sys.executable, "-m", "mer_live.analyze", str(files["loud"]), "--model", str(broken)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mer-analyze: error: cannot load model"), out.stderr


def test_bad_flags_are_one_line(files, loudness_model, capsys) -> None:
    argv = [str(files["loud"]), "--model", str(loudness_model), "--no-music-gate", "--hop", "0"]
    rc, out, err = run_main(argv, capsys)
    assert rc == 2 and out == ""
    assert err.strip() == "mer-analyze: error: --hop must be a number of seconds > 0, got 0.0"


def test_silence_has_no_emotion_and_says_why(tmp_path, capsys) -> None:
    """10 s of digital silence with the shipped models: no arousal, valence or quadrant (it was
    "Q2 tense / angry" before the music gate), a note, music 0, timeline flags 0."""
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(10 * 16000, np.float32), 16000)
    rc, out, _ = run_main([str(path), "--threads", "1"], capsys)
    assert rc == 0
    rec = json.loads(out)
    assert rec["arousal"] is None and rec["valence"] is None and rec["quadrant"] is None
    assert rec["music"] == 0.0 and rec["note"].startswith("no music detected")
    assert rec["timeline"] and all(p[3] == 0 for p in rec["timeline"])


def test_unwritable_timeline_and_cuda_warning_are_one_line(files, loudness_model, capsys) -> None:
    argv = [str(files["loud"]), "--model", str(loudness_model), "--timeline-csv", "/nonexistent/x.csv"]
    rc, out, err = run_main(argv, capsys)
    assert rc == 2 and out == ""
    assert err.strip() == ("mer-analyze: error: cannot write --timeline-csv /nonexistent/x.csv: "
                           "No such file or directory")
    rc, out, err = run_main([str(files["loud"]), "--model", str(loudness_model), "--no-music-gate",
                             "--provider", "cuda"], capsys)
    assert rc == 0 and json.loads(out)["arousal"] > 0.9
    warn = [ln for ln in err.splitlines() if "CUDA" in ln]
    assert len(warn) == 1 and warn[0].startswith("mer-analyze: warning: CUDA requested")
