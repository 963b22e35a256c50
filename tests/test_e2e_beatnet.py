"""Issue #31 item 3 through the real product: `python -m mer_live --input FILE --headless
--beat-tracker beatnet` (BeatNet's CRNN in onnxruntime, its particle filter in numpy) with the
shipped models and the music gate on, OSC over real UDP to a Wire.

A 186-BPM groove made here gets /mer/bpm within 2 % of 186 and one /mer/beat per beat from the
first on; speech sends no beat (BeatNet beats on talk: the rhythm gate stays in front of it); a
missing or broken BeatNet model stops the start with one line and exit code 2 when BeatNet was
asked for, and is one warning under the default hybrid tracker, whose beats then are aubio's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import need_tool
from tests.grooves import groove
from tests.net import Wire
from tests.test_cli import run_cli
from tests.test_e2e_beat import SR, check_one_per_beat

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def play(tmp_path: Path, x: np.ndarray, name: str, *extra: str, tracker: str = "beatnet") -> Wire:
    wav = tmp_path / f"{name}.wav"
    sf.write(wav, x, SR)
    wire = Wire()
    try:
        r = run_cli("--input", str(wav), "--headless", "--no-teacher", "--beat-tracker", tracker,
                    "--osc", f"127.0.0.1:{wire.port}", "--osc-rate", "20", *extra, timeout=len(x) / SR + 60)
    finally:
        wire.close()
    assert r.returncode == 0, r.stderr
    wire.stderr = r.stderr
    return wire


def test_beatnet_gives_a_186_bpm_groove_its_tempo_and_a_beat_per_beat(tmp_path) -> None:
    x, truth = groove(186.0, 12.0, SR, seed=3)
    wire = play(tmp_path, x, "groove186")
    check_one_per_beat(wire, truth, 186.0, start_s=float(truth[0]), first_within_s=3.0)
    assert wire.values("/mer/bpm")[-1][0] == pytest.approx(186.0, rel=0.02)


@pytest.mark.parametrize("tracker", ["beatnet", "hybrid"])
def test_beatnet_sends_no_beat_on_speech(tmp_path, tracker: str) -> None:
    need_tool("espeak-ng")
    from train.negatives import talk

    x = talk(12.0, SR, "espeak-ng", "en-gb-x-rp+m2", seed=12345).astype(np.float32)
    wire = play(tmp_path, x, "talk", tracker=tracker)
    assert max(p[0] for p in wire.values("/mer/level")) > -40.0, "the talk reached mer-live"
    assert wire.values("/mer/beat") == [], "beats sent on speech"
    assert wire.values("/mer/bpm") == [], "a tempo sent on speech"


@pytest.mark.parametrize("kind", ["missing", "malformed"])
def test_a_missing_or_broken_beatnet_model_is_one_line_and_exit_2(tmp_path, kind: str) -> None:
    model = tmp_path / "beatnet.onnx"
    if kind == "malformed":
        model.write_bytes(b"\x08\x07garbage" * 100)
    cfg = tmp_path / "show.toml"
    cfg.write_text(f'[beat]\nbeatnet_path = "{model}"\n')
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros(SR, np.float32), SR)
    r = run_cli("--config", str(cfg), "--input", str(wav), "--headless", "--no-teacher",
                "--beat-tracker", "beatnet", timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr)
    errors = [ln for ln in r.stderr.splitlines() if "error" in ln.lower() or "Traceback" in ln]
    assert len(errors) == 1 and errors[0].startswith("mer-live: error: BeatNet model"), r.stderr
    assert ("not found" if kind == "missing" else "cannot be loaded") in errors[0]
    assert r.stderr.strip().splitlines()[-1] == errors[0], "the error is the last word"


def test_the_default_hybrid_without_a_usable_beatnet_model_warns_once_and_beats_with_aubio(tmp_path) -> None:
    model = tmp_path / "beatnet.onnx"
    model.write_bytes(b"\x08\x07garbage" * 100)
    cfg = tmp_path / "show.toml"
    cfg.write_text(f'[beat]\nbeatnet_path = "{model}"\n')
    x, truth = groove(128.0, 10.0, SR, seed=4)
    wire = play(tmp_path, x, "groove128", "--config", str(cfg), tracker="hybrid")
    warn = [ln for ln in wire.stderr.splitlines() if "BeatNet model" in ln]
    assert len(warn) == 1, wire.stderr
    assert "aubio's tracker alone" in warn[0] and "cannot be loaded" in warn[0], warn[0]
    check_one_per_beat(wire, truth, 128.0, start_s=float(truth[0]), first_within_s=3.0)
