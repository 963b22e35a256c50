"""``mer-train export`` and ``make-example-set``, and docs/training.md's first-model walkthrough run
as written (its commands through bash, in a scratch folder, on the set ``mer-train`` makes itself).

The commands run through small wrappers named ``mer-train``, ``mer-analyze`` and ``mer-live`` that
call THIS checkout's code (``python -m train.cli`` and so on), so the test checks the docs against
the code beside them, not against whatever version is installed.
"""

from __future__ import annotations

import csv
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import need_module  # noqa: E402

torch = need_module("torch", "train")
need_module("nnAudio", "train")

from mer_live.inference.model import Model  # noqa: E402
from train.checkpoint import FORMAT, CheckpointError, load_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--model", "sample_rate=8000", "window_seconds=1", "n_fft=256", "hop=256", "n_mels=24", "fmax=4000",
        "channels=8,16", "embed_dim=16", "--fit", "epochs=2", "batch_size=8"]


def code_env() -> dict[str, str]:
    """This checkout first on the path (the installed mer_train may be another copy)."""
    e = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return e


def mer_train(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=code_env())


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    """An example set and one tiny fit that wrote both the ONNX (--out) and the weights (--save)."""
    d = tmp_path_factory.mktemp("export")
    r = mer_train("make-example-set", "data", "--n", "12", "--seconds", "3", "--artists", "6", cwd=d)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("wrote data/manifest.csv and 12 clips in data/audio (6 artists)")
    r = mer_train("fit", "--data", "data/manifest.csv", "--cache", "cache", "--seeds", "2", *TINY,
                  "--out", "direct.onnx", "--save", "fit.pt", "--no-progress", cwd=d)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "wrote fit.pt (2 fitted model(s)" in r.stdout
    return d


def _windows(model: Model, n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(model.window_samples) / model.sample_rate
    rows = [0.3 * np.sin(2 * np.pi * (200 + 150 * k) * t) * (1 + rng.standard_normal(t.size) * 0.1)
            for k in range(n)]
    return np.stack(rows).astype(np.float32)


def test_export_of_saved_weights_equals_the_fits_own_export(fitted: Path) -> None:
    r = mer_train("export", "fit.pt", "--out", "again/exported.onnx", "--name", "again", cwd=fitted)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "wrote again/exported.onnx and again/exported.json (from fit.pt, 2 member(s))" in r.stdout
    direct = Model(fitted / "direct.onnx", provider="cpu")
    again = Model(fitted / "again" / "exported.onnx", provider="cpu")
    x = _windows(direct)
    np.testing.assert_allclose(again.predict(x), direct.predict(x), atol=1e-6)
    card = json.loads((fitted / "again" / "exported.json").read_text())
    first = json.loads((fitted / "direct.json").read_text())
    assert card["name"] == "again" and card["sample_rate"] == 8000 and card["window_samples"] == 8000
    assert card["training_data"] == first["training_data"] and "12 clips, 6 artists" in card["training_data"]
    assert card["recipe"]["seeds"] == 2 and card["recipe"]["model"] == first["recipe"]["model"]
    assert card["fit_command"] == first["command"] and card["command"].startswith("mer-train export fit.pt")
    assert card["protocol"].startswith("not measured") and "metrics" not in card
    assert card["exported_from"] == f"fit.pt ({FORMAT}, 2 member(s))"


def test_export_puts_the_cv_numbers_on_the_card(fitted: Path) -> None:
    r = mer_train("evaluate", "--data", "data/manifest.csv", "--cache", "cache", "--k", "3", *TINY,
                  "--folds", "0", "--out", "cv", "--no-progress", cwd=fitted)
    assert r.returncode == 0, r.stderr[-2000:]
    r = mer_train("export", "fit.pt", "--cv", "cv/results.json", "--out", "withcv.onnx", cwd=fitted)
    assert r.returncode == 0, r.stderr[-2000:]
    card = json.loads((fitted / "withcv.json").read_text())
    res = json.loads((fitted / "cv" / "results.json").read_text())
    assert card["metrics"]["pooled"] == res["pooled"] and card["protocol"] == res["protocol"]
    # seeds differ (2 fitted, 1 cross-validated): the same model config, so no warning about it
    assert "another recipe or model config" not in r.stderr


def test_export_of_a_checkpoint_dir_last_pt_best_and_last(tmp_path: Path) -> None:
    """The wave recipe's --checkpoint-dir file: the best epoch's weights by default, or the last."""
    from tests.train.test_train_fit import small_cfg, synthetic_clips
    from train.augment import AugmentConfig
    from train.fit import FitConfig, fit_model
    from train.models import build_model

    clips, audio = synthetic_clips(12)
    torch.manual_seed(5)
    cfg = FitConfig(epochs=3, batch_size=6, lr=5e-3, crops_per_clip=1, val_fraction=0.3, patience=10,
                    threads=1, progress=False, seed=3, checkpoint_dir=str(tmp_path / "ck"))
    aug = AugmentConfig().only("crop", "gain")
    res = fit_model(build_model(small_cfg("mel_cnn")), clips, audio, cfg, aug)
    last_pt = tmp_path / "ck" / "last.pt"
    ck = torch.load(last_pt, weights_only=True)
    if ck["best_epoch"] == ck["epoch"]:  # the last epoch was the best (it varies): make them differ
        torch.manual_seed(99)
        ck["best_model"], ck["best_epoch"] = build_model(small_cfg("mel_cnn")).state_dict(), 1
        torch.save(ck, last_pt)
    best_state, last_state = ck["best_model"], ck["model"]
    assert any(not torch.equal(best_state[k], last_state[k]) for k in best_state)
    for which, state in (("best", best_state), ("last", last_state)):
        r = mer_train("export", str(last_pt), "--weights", which, "--out", f"{which}.onnx", cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        m = build_model(small_cfg("mel_cnn"))
        m.load_state_dict(state)
        m.eval()
        onnx_model = Model(tmp_path / f"{which}.onnx", provider="cpu")
        x = _windows(onnx_model)
        with torch.no_grad():
            ref = m(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(onnx_model.predict(x), ref, atol=1e-4)
        card = json.loads((tmp_path / f"{which}.json").read_text())
        assert card["recipe"]["recipe"] == "wave" and card["recipe"]["weights"].startswith(which)
    assert res.best_epoch >= 1 and len(res.history) == 3  # validation ran, every epoch checkpointed


def test_bad_checkpoints_are_one_line_errors(fitted: Path, tmp_path: Path) -> None:
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file at all")
    torch.save([{"w": torch.zeros(2)}], tmp_path / "members.pt")  # a members file without its .json
    torch.save({"format": FORMAT, "model_config": {"arch": "mel_cnn"}, "members": [{"w": torch.zeros(2)}],
                "card": {}}, tmp_path / "wrong.pt")  # weights that do not fit the config
    cases = [
        (["missing.pt", "--out", "x.onnx"], "mer-train: error: checkpoint not found: missing.pt"),
        (["garbage.pt", "--out", "x.onnx"], "mer-train: error: garbage.pt is not a readable checkpoint"),
        (["members.pt", "--out", "x.onnx"], "mer-train: error: members.pt holds 1 state dicts but no model"),
        (["wrong.pt", "--out", "x.onnx"], "mer-train: error: member 0 does not fit its model config"),
        ([str(fitted / "fit.pt"), "--out", "x.txt"], "mer-train: error: --out x.txt: the model file"),
    ]
    for args, want in cases:
        r = mer_train("export", *args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.strip().startswith(want), (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_a_checkpoint_is_data_never_code(tmp_path: Path) -> None:
    """torch.load(weights_only=True): a pickle that would run code is refused, and nothing runs."""
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"format": FORMAT, "model_config": {}, "members": [Evil()]}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def test_fit_needs_out_or_save(tmp_path: Path) -> None:
    r = mer_train("fit", "--data", "nothing.csv", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == ("mer-train: error: give --out models/NAME.onnx (export now) and/or --save "
                                "FIT.pt (export later)")


def test_make_example_set_is_a_labelled_set_the_loader_reads(tmp_path: Path) -> None:
    from train.data import load_manifest

    r = mer_train("make-example-set", "set", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    clips = load_manifest(tmp_path / "set" / "manifest.csv")
    assert len(clips) == 24 and len({c.artist for c in clips}) == 8
    assert all(c.path.is_file() and c.has_continuous for c in clips)
    # louder clips carry higher arousal: the labels follow the audio
    import soundfile as sf

    rms = [float(np.sqrt(np.mean(sf.read(c.path)[0] ** 2))) for c in clips]
    assert np.corrcoef(rms, [c.arousal for c in clips])[0, 1] > 0.8
    r = mer_train("make-example-set", "bad", "--n", "1", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip() == "mer-train: error: --n must be at least 2"


# -- docs/training.md's walkthrough, as written ----------------------------------------------------


def walkthrough() -> str:
    text = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- walkthrough -->\s*```bash\n(.*?)```", text, re.S)
    assert m, "docs/training.md has a walkthrough block after <!-- walkthrough -->"
    return m.group(1)


def _wrappers(bin_dir: Path) -> None:
    bin_dir.mkdir()
    tools = (("mer-train", "train.cli"), ("mer-analyze", "mer_live.analyze"), ("mer-live", "mer_live"))
    for name, module in tools:
        p = bin_dir / name
        p.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {module} "$@"\n')
        p.chmod(p.stat().st_mode | stat.S_IXUSR)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_training_walkthrough_runs_as_written(tmp_path: Path) -> None:
    script = walkthrough()
    commands = [ln.split()[0] for ln in script.splitlines() if ln.strip() and not ln.startswith(("#", "M="))]
    assert commands == ["mer-train"] * 4 + ["mer-analyze", "mer-live"], commands
    _wrappers(tmp_path / "bin")
    e = code_env()
    e["PATH"] = f"{tmp_path / 'bin'}{os.pathsep}{e['PATH']}"
    r = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], cwd=tmp_path, env=e,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    ex = tmp_path / "runs" / "example"
    with open(ex / "data" / "manifest.csv", newline="") as f:
        truth = {Path(row["file"]).name: float(row["arousal"]) for row in csv.DictReader(f)}
    assert len(truth) == 24
    res = json.loads((ex / "cv" / "results.json").read_text())
    assert res["k"] == 3 and len(res["oof"]) == 24
    model = Model(ex / "example.onnx", provider="cpu")
    card = model.card.extra
    assert card["metrics"]["pooled"] == res["pooled"]
    assert card["fit_command"].startswith("mer-train fit --data runs/example/data/manifest.csv")
    # mer-analyze's table: one row per clip, values from the exported model
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("runs/example/data/audio/")]
    assert len(rows) == 24
    got = {Path(ln.split(",")[0]).name: float(ln.split(",")[2]) for ln in rows}
    assert set(got) == set(truth) and all(0.0 <= a <= 1.0 for a in got.values())
    # mer-live played one clip through the model and stopped at its end
    assert "mer-live: model example (8000 Hz, 2.00 s window) on CPUExecutionProvider" in r.stderr
    assert "mer-live: input finished" in r.stderr and "A [" in r.stdout
