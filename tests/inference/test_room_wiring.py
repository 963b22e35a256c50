"""``--room`` / ``[model] input = "room"`` observed by its effect: mer-live (real subprocess, real
terminal output), mer-analyze (real onnxruntime sessions), the fused path (the shipped teacher),
one-line errors for bad values, and the line path left as it was."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mer_live.analyze import analyze_array
from mer_live.analyze import main as analyze_main
from mer_live.inference.fusion import Fusion
from mer_live.inference.model import Model, default_model_path
from mer_live.inference.roominput import RoomModel, input_kind, load_for_input, room_model_path
from mer_live.inference.teacher import default_head_path, default_teacher_path
from mer_live.live.records import Estimate
from mer_live.outputs.terminal import format_line
from tests.audio import plucked
from tests.test_cli import run_cli

pytestmark = pytest.mark.timeout(180)

SR = 16000
OFFSETS = [-1.0, 1.5]
TEACHER_OFFSETS = [0.8, -0.6]
LINE = re.compile(r"s  (line|room)  A \[[#.]{10}\] (\d\.\d\d)\s+V \[[#.]{10}\] (\d\.\d\d)")


def _logit(p):
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _sigmoid(z):
    return 1 / (1 + np.exp(-np.asarray(z, np.float64)))


def _with_card(src: Path, dst: Path, **extra) -> Path:
    shutil.copy(src, dst)
    card = json.loads(src.with_suffix(".json").read_text())
    card.update(extra)
    dst.with_suffix(".json").write_text(json.dumps(card))
    return dst


@pytest.fixture(scope="module")
def room_card(loudness_model, tmp_path_factory) -> Path:
    """The loudness model with room offsets in its card (a plain CNN, no fusion)."""
    return _with_card(loudness_model, tmp_path_factory.mktemp("room") / "roomy.onnx",
                      room={"input": "room", "offsets": OFFSETS})


@pytest.fixture(scope="module")
def fused_room_card(loudness_model, tmp_path_factory) -> Path:
    """The loudness model fused with the shipped teacher, with CNN and teacher room offsets."""
    if not default_teacher_path().is_file():
        pytest.skip("the shipped teacher is not installed")
    return _with_card(loudness_model, tmp_path_factory.mktemp("room") / "fused.onnx",
                      room={"input": "room", "offsets": OFFSETS, "teacher_offsets": TEACHER_OFFSETS},
                      fusion={"teacher": str(default_teacher_path()), "head": str(default_head_path()),
                              "live_every_s": 3.0, "analyze_every_s": 3.0, "memory_s": 6.0})


def _music(seconds: float, seed: int = 0) -> np.ndarray:
    return plucked(seconds, SR, seed, peak=0.2)


def _reverberant(x: np.ndarray, rt60: float = 1.2, seed: int = 1) -> np.ndarray:
    """``x`` in a diffuse room: an exponentially decaying noise tail (-60 dB at ``rt60``), a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rt60 * SR)) / SR
    h = rng.standard_normal(len(t)) * 10 ** (-3 * t / rt60)
    h[0] = 4.0  # the direct sound
    y = np.convolve(x, h)[: len(x)]
    y = y / np.abs(y).max() * 0.3 + 0.003 * rng.standard_normal(len(y))
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def reverb_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("room") / "reverb.wav"
    sf.write(path, _reverberant(_music(8.0)), SR)
    return path


# -- the model and its label ------------------------------------------------------------------


def test_line_input_is_the_plain_shipped_model() -> None:
    m = load_for_input("line")
    assert type(m) is Model and m.path == default_model_path() and input_kind(m) == "line"


def test_room_input_labels_and_offsets(room_card) -> None:
    m = load_for_input("room", room_card)
    assert isinstance(m, RoomModel) and input_kind(m) == "room"
    assert m.offsets == tuple(OFFSETS) and m.teacher_offsets is None


def test_terminal_line_names_the_input_kind() -> None:
    e = Estimate(t=1.0, wall=0.0, arousal_raw=0.6, valence_raw=0.4, arousal=0.6, valence=0.4,
                 level_rms_db=-20.0, level_peak_db=-10.0, silent=False, clipping=False, input_ok=True,
                 bad_samples=0, model_ms=1.0, latency_ms=5.0, overflows=0, hops_skipped=0)
    assert "s  room  A [" in format_line(e, "room")
    assert "s  A [" in format_line(e)  # without a label: the line as before


# -- mer-live ---------------------------------------------------------------------------------


def _live(model: Path, wav: Path, *extra: str, config: Path | None = None):
    args = ["--model", str(model), "--input", str(wav), "--headless", "--no-music-gate", "--no-osc",
            "--no-beat", "--no-sections", "--hop", "0.25", "--duration", "2.5", *extra]
    if config is not None:
        args += ["--config", str(config)]
    r = run_cli(*args, timeout=60)
    assert r.returncode == 0, r.stderr
    got = [(m.group(1), float(m.group(2)), float(m.group(3))) for m in map(LINE.search, r.stdout.splitlines())
           if m]
    assert got, r.stdout
    return r, got


def test_room_flag_and_config_key_reach_the_pipeline(room_card, reverb_file, tmp_path) -> None:
    """The same file through mer-live as line and as room input: every room line says "room", and its
    values are the line values moved by the card's offsets (valence up, arousal down)."""
    r_line, line = _live(room_card, reverb_file)
    r_room, room = _live(room_card, reverb_file, "--room")
    cfg = tmp_path / "show.toml"
    cfg.write_text('[model]\ninput = "room"\n')
    _, room_cfg = _live(room_card, reverb_file, config=cfg)
    assert {k for k, _, _ in line} == {"line"} and {k for k, _, _ in room} == {"room"}
    assert {k for k, _, _ in room_cfg} == {"room"}
    assert "line input" in r_line.stderr and "room input" in r_room.stderr
    a_line, v_line = np.mean([a for _, a, _ in line]), np.mean([v for _, _, v in line])
    a_room, v_room = np.mean([a for _, a, _ in room]), np.mean([v for _, _, v in room])
    assert a_room < a_line - 0.05 and v_room > v_line + 0.05, (line, room)


def test_bad_input_kind_is_one_line(room_card, tmp_path) -> None:
    cfg = tmp_path / "show.toml"
    cfg.write_text('[model]\ninput = "desk"\n')
    r = run_cli("--config", str(cfg), "--model", str(room_card), "--headless", timeout=30)
    assert r.returncode == 2
    want = 'mer-live: error: show.toml: [model] input must be one of "line", "room", got "desk"'
    assert r.stderr.strip() == want
    r = run_cli("--room=yes", "--model", str(room_card), "--headless", timeout=30)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--room" in r.stderr


def test_broken_room_offsets_are_one_line(loudness_model, tmp_path) -> None:
    bad = _with_card(loudness_model, tmp_path / "bad.onnx", room={"offsets": [1.0, "x"]})
    r = run_cli("--room", "--model", str(bad), "--headless", "--duration", "1", timeout=30)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("mer-live: error: model card")
    assert "room.offsets" in r.stderr


# -- mer-analyze -------------------------------------------------------------------------------


def _analyze(capsys, *argv: str) -> tuple[dict, str]:
    rc = analyze_main(list(argv))
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    return json.loads(cap.out.strip().splitlines()[0]), cap.err


def test_mer_analyze_room_recentres_the_summary(room_card, reverb_file, capsys) -> None:
    line, _ = _analyze(capsys, str(reverb_file), "--model", str(room_card), "--no-music-gate")
    room, err = _analyze(capsys, str(reverb_file), "--model", str(room_card), "--no-music-gate", "--room",
                         "-v")
    assert "room input" in err
    # each window is re-centred, so every timeline point moves by the offsets in logit space
    for (t1, a1, v1, _), (t2, a2, v2, _) in zip(line["timeline"], room["timeline"], strict=True):
        assert t1 == t2
        assert _logit(a2) - _logit(a1) == pytest.approx(OFFSETS[0], abs=0.02)
        assert _logit(v2) - _logit(v1) == pytest.approx(OFFSETS[1], abs=0.02)


def test_fused_room_model_recentres_cnn_and_teacher(fused_room_card) -> None:
    """A fused model for room input: the CNN's windows get ``offsets``, the teacher's logits
    ``teacher_offsets``, then they are fused (estimator and mer-analyze alike)."""
    x = _reverberant(_music(9.0, seed=3))
    line_m, room_m = load_for_input("line", fused_room_card), load_for_input("room", fused_room_card)
    f_line, f_room = Fusion.of(line_m), Fusion.of(room_m)
    assert f_line.offsets is None and np.allclose(f_room.offsets, TEACHER_OFFSETS)
    starts = f_line.patch_starts(len(x), SR)
    z_line = f_line.logits(f_line.patches(x, starts))
    np.testing.assert_allclose(f_room.logits(f_room.patches(x, starts)), z_line + TEACHER_OFFSETS, atol=1e-9)
    line = analyze_array(x, SR, line_m, fusion=f_line)
    room = analyze_array(x, SR, room_m, fusion=f_room)
    cnn = analyze_array(x, SR, room_m)  # the room CNN alone: its re-centred mean
    base = (1 - f_room.w) * _logit([cnn["arousal"], cnn["valence"]])
    want = _sigmoid(base + f_room.w * (z_line.mean(axis=0) + TEACHER_OFFSETS))
    without = _sigmoid(base + f_room.w * z_line.mean(axis=0))  # had the teacher not been re-centred
    got = np.array([room["arousal"], room["valence"]])
    assert np.abs(got - want).max() < 3e-3 and np.abs(got - without).min() > 0.02, (got, want, without)
    assert abs(room["valence"] - line["valence"]) > 0.05


def test_shipped_room_model_changes_reverberant_outputs(reverb_file, capsys) -> None:
    """The shipped room path on a reverberant recording: the record comes from mer-room (its card
    has the room section) and differs from the line path's."""
    if not room_model_path().is_file():
        pytest.skip("models/mer-room.onnx is not built")
    card = json.loads(room_model_path().with_suffix(".json").read_text())
    assert card["room"]["input"] == "room" and len(card["room"]["offsets"]) == 2
    line, err_line = _analyze(capsys, str(reverb_file), "--no-music-gate", "-v")
    room, err_room = _analyze(capsys, str(reverb_file), "--no-music-gate", "--room", "-v")
    assert "model mer-default" in err_line and "model mer-room" in err_room and "room input" in err_room
    diff = math.hypot(room["arousal"] - line["arousal"], room["valence"] - line["valence"])
    assert diff > 0.03, (line, room)


def test_shipped_room_path_is_the_room_model_with_its_own_teacher_head() -> None:
    """``--room`` loads models/mer-room.onnx fused with the same teacher through mer-room-head.json
    (fitted on clean and room audio), not re-centred (its card's offsets are 0, as cross-validated:
    docs/room.md); the line path keeps the default model and head."""
    assert room_model_path().is_file(), "models/mer-room.onnx ships with the package"
    room, line = load_for_input("room"), load_for_input("line")
    assert room.path.name == "mer-room.onnx" and line.path == default_model_path()
    f_room, f_line = Fusion.of(room), Fusion.of(line)
    assert f_room.spec.head.name == "mer-room-head.json" and f_line.spec.head == default_head_path()
    assert f_room.spec.teacher == f_line.spec.teacher == default_teacher_path()
    assert room.offsets == (0.0, 0.0) and f_room.offsets is None
    assert not np.allclose(f_room.teacher.head.weight, f_line.teacher.head.weight)
    card = json.loads(room_model_path().with_suffix(".json").read_text())
    fused = card["room"]["room_test_fused"]["room"]
    assert fused["quadrant_macro_f1"] >= 0.60 and fused["valence_auc"] >= 0.80  # what the card claims
