"""``mer-train ship`` and ``mer-train cv``, the one training path of the shipped models, run for real.

The default and the room model are built on the generated stand-in set (12 clips of 3 s, 6
artists; tests/fixtures_train.py) with a tiny recipe: ``cv spec`` cross-validates it, ``ship``
fits it on every clip and exports the ONNX + card the runtime loads. The models learn little; what
is checked is what a user gets: a graph onnxruntime runs, a card whose ``command`` is the
``mer-train`` command typed, metrics computed from the CV's out-of-fold scores, and a rebuild from
the saved members that gives the same outputs. The presence model needs 4Q and the negatives bank,
so only its command's wiring is run here (tests/train/test_train_presence.py trains a tiny one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import need_module

need_module("torch", "train")
need_module("nnAudio", "train")
need_module("onnxruntime", "cpu")

from tests.fixtures_train import make_fixture_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--model", "sample_rate=8000", "window_seconds=1", "n_fft=256", "hop=256", "n_mels=24", "fmax=4000",
        "channels=8,16", "embed_dim=16", "--fit", "epochs=2", "batch_size=8", "threads=1"]

pytestmark = pytest.mark.timeout(300)


def mer_train(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """``mer-train`` of THIS tree (``python -m train.cli`` with the repository on the path), its
    cache in ``cwd/cache``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MER_CACHE": str(cwd / "cache")}
    return subprocess.run([sys.executable, "-m", "train.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def ort_outputs(onnx: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ship")
    make_fixture_dataset(d / "ds")
    return d


def test_ship_default_builds_the_cross_validated_recipe_as_an_onnx_the_runtime_loads(standin: Path) -> None:
    from mer_live.inference.model import Model

    d = standin
    r = mer_train("cv", "spec", "--data", "ds/manifest.csv", "--name", "tiny", "--results", "res", *TINY,
                  cwd=d)
    assert r.returncode == 0, r.stderr[-2000:]
    cv = json.loads((d / "res" / "tiny.json").read_text())
    assert cv["folds_run"] == [0, 1, 2, 3, 4] and len(cv["ids"]) == 12
    assert all(row is not None for row in cv["oof"])
    assert cv["command"].startswith("mer-train cv spec --data ds/manifest.csv --name tiny")

    ship = ["ship", "default", "--data", "ds/manifest.csv", "--recipe", "res/tiny.json", "--cv",
            "res/tiny.json", "--members", "runs/tiny.pt", "--name", "tiny", "--threads", "1"]
    r = mer_train(*ship, "--out", "out/tiny.onnx", cwd=d)
    assert r.returncode == 0, r.stderr[-2000:]
    onnx, card_path = d / "out" / "tiny.onnx", d / "out" / "tiny.json"
    card = json.loads(card_path.read_text())
    assert card["command"] == " ".join(["mer-train", *ship, "--out", "out/tiny.onnx"])
    assert card["cv_command"] == cv["command"]
    assert card["recipe"]["model"]["sample_rate"] == 8000 and card["recipe"]["seeds"] == 1
    # the card's pooled numbers are the CV's out-of-fold scores, not the refit's
    assert card["metrics"]["pooled"]["n"] == 12
    assert card["metrics"]["pooled"]["arousal"]["auc"] == pytest.approx(cv["pooled"]["arousal_auc"], abs=1e-4)

    x = np.random.default_rng(0).uniform(-0.5, 0.5, (3, 8000)).astype(np.float32)
    y = ort_outputs(onnx, x)
    assert y.shape == (3, 2) and np.all((y >= 0) & (y <= 1)) and np.all(np.isfinite(y))
    m = Model(onnx)  # the runtime's loader: card, sha256, window, rate
    assert m.sample_rate == 8000 and m.window_samples == 8000

    # a second run finds the fitted members and exports the same model again, without fitting
    r = mer_train(*ship, "--out", "out/again.onnx", cwd=d)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "loaded 1 fitted members" in r.stderr
    np.testing.assert_allclose(ort_outputs(d / "out" / "again.onnx", x), y, atol=1e-6)


def test_ship_room_trains_on_simulated_rooms_and_copies_the_default_cards_fusion(standin: Path) -> None:
    d = standin
    r = mer_train("cv", "spec", "--data", "ds/manifest.csv", "--name", "tiny-room", "--results", "res", *TINY,
                  "p_room=0.5", "--room-train", "1", "--stage-train", "1", cwd=d)
    assert r.returncode == 0, r.stderr[-2000:]
    cv = json.loads((d / "res" / "tiny-room.json").read_text())
    assert cv["room_train"] == 1 and cv["stage_train"] == 1 and cv["fit"]["p_room"] == 0.5
    # the room preset: name, fusion from models/mer-default.json with the room head; no room test here
    ship = ["ship", "room", "--data", "ds/manifest.csv", "--recipe", "res/tiny-room.json", "--cv",
            "res/tiny-room.json", "--members", "runs/room.pt", "--out", "out/room.onnx",
            "--room-fusion", "none"]
    r = mer_train(*ship, cwd=d)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "room training: 2 room and stage-chain versions per clip" in r.stderr
    card = json.loads((d / "out" / "room.json").read_text())
    assert card["name"] == "mer-room"
    assert card["command"] == " ".join(["mer-train", *ship])
    default_fusion = json.loads((ROOT / "models" / "mer-default.json").read_text())["fusion"]
    assert card["fusion"] == {**default_fusion, "head": "mer-room-head.json"}
    assert card["recipe"]["fit"]["p_room"] == 0.5
    y = ort_outputs(d / "out" / "room.onnx", np.zeros((1, 8000), np.float32) + 0.01)
    assert y.shape == (1, 2) and np.all(np.isfinite(y))


def test_ship_stages_fail_on_bad_input_in_one_line(standin: Path) -> None:
    r = mer_train("ship", "default", "--recipe", "res/none.json", cwd=standin)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("mer-train: error: ") and "res/none.json" in r.stderr, r.stderr
    recipe = str(ROOT / "train" / "experiments" / "results" / "abl-eq+band.json")
    r = mer_train("ship", "default", "--data", "nothing.csv", "--recipe", recipe, cwd=standin)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("ship: error: manifest not found: nothing.csv"), r.stderr
    r = mer_train("ship", "everything", cwd=standin)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("mer-train: error: argument model: invalid choice"), r.stderr


def test_presence_stage_runs_through_mer_train(tmp_path: Path) -> None:
    """``mer-train ship presence`` hands its options to train/presence/ (``--table``: the results
    tables of a committed run, as docs/presence.md prints them)."""
    res = ROOT / "train" / "experiments" / "results" / "presence-default.json"
    r = mer_train("ship", "presence", "--table", str(res), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    alone = subprocess.run([sys.executable, "-m", "train.presence", "--table", str(res)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert alone.returncode == 0 and r.stdout == alone.stdout and "|" in r.stdout
    r = mer_train("cv", "presence", "--help", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("usage: mer-train cv presence")


@pytest.mark.data
def test_mer_train_report_gives_the_default_cards_cv_numbers(shared_data: Path, tmp_path: Path) -> None:
    """The card's pooled CV numbers are what ``mer-train report`` recomputes from the stored
    out-of-fold scores of the CV its ``cv_command`` names."""
    card = json.loads((ROOT / "models" / "mer-default.json").read_text())
    name = card["cv_command"].split("--name ")[1].split()[0]
    assert card["cv_command"].startswith("mer-train cv spec ") and name == "abl-eq+band"
    r = mer_train("report", name, "--short", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    row = next(line for line in r.stdout.splitlines() if line.startswith(f"| {name} |"))
    cells = [float(c) for c in row.strip("|").split("|")[1:]]
    pooled = card["metrics"]["pooled"]
    assert cells[0] == pytest.approx(pooled["arousal"]["auc"], abs=5e-4)
    assert cells[1] == pytest.approx(pooled["valence"]["auc"], abs=5e-4)
    assert cells[-1] == pytest.approx(pooled["quadrant"]["macro_f1"], abs=5e-4)
