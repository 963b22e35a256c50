"""``mer-train`` end to end, as a user runs it: a subprocess on the generated fixture manifest.

Tiny configs (8 kHz, 1 s windows, channels 8,16, 2 epochs, 3 artist folds) keep each run to
seconds; the models learn little, so the tests check what the command writes and that it is
real (metrics computed from the out-of-fold scores, PNGs with content, a model the runtime
loads), not how good the numbers are.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import need_module  # noqa: E402

need_module("torch", "train")
need_module("nnAudio", "train")

from tests.fixtures_train import make_fixture_dataset  # noqa: E402
from train.cli import UsageError, parse_kv  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--model", "sample_rate=8000", "window_seconds=1", "n_fft=256", "hop=256", "n_mels=24", "fmax=4000",
        "channels=8,16", "embed_dim=16", "--fit", "epochs=2", "batch_size=8"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def mer_train(*args: str, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mer_train.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=None if env is None else {**os.environ, **env})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("mer_train")
    make_fixture_dataset(d / "ds", n=12, seconds=3.0, n_artists=6)
    return d


@pytest.fixture(scope="module")
def evaluated(workdir: Path) -> tuple[Path, subprocess.CompletedProcess]:
    out = workdir / "cv"
    r = mer_train("evaluate", "--data", "ds/manifest.csv", "--cache", "cache", "--k", "3", *TINY,
                  "--out", str(out), "--no-progress", cwd=workdir)
    return out, r


def assert_real_png(path: Path) -> None:
    import matplotlib.image as mpimg

    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path.name
    assert len(data) > 5000, path.name
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
    assert float(img[..., :3].std()) > 0.05, f"{path.name} is blank"


def test_evaluate_writes_results_and_plots(evaluated: tuple[Path, subprocess.CompletedProcess]) -> None:
    out, r = evaluated
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| majority baseline |" in r.stdout and "How measured:" in r.stdout
    res = json.loads((out / "results.json").read_text())
    assert res["recipe"] == "spec" and res["k"] == 3 and res["folds_run"] == [0, 1, 2]
    assert len(res["folds"]) == 3 and len(res["fold_summaries"]) == 3
    assert "12 clips, 6 artists" in res["data"]
    pooled = res["pooled"]
    for key in ("arousal_auc", "valence_auc", "arousal_balanced_accuracy", "arousal_mcc", "quadrant_accuracy",
                "quadrant_macro_f1", "quadrant_balanced_accuracy", "quadrant_majority_accuracy",
                "arousal_majority_accuracy", "arousal_rmse", "arousal_mae", "arousal_pearson_r", "arousal_r2",
                "valence_ccc"):
        assert key in pooled, key
    for key in ("arousal_auc", "quadrant_macro_f1", "valence_rmse"):
        vals = [f[key] for f in res["folds"] if f[key] is not None]
        assert res["mean"][key] == pytest.approx(np.mean(vals))
        assert res["std"][key] == pytest.approx(np.std(vals))
    # the pooled metrics are those of the stored out-of-fold scores
    with open(out.parent / "ds" / "manifest.csv", newline="") as f:
        truth = {Path(row["file"]).stem: (float(row["arousal"]), float(row["valence"]))
                 for row in csv.DictReader(f)}
    assert all(r is not None for r in res["oof"])
    oof = np.array(res["oof"], np.float64)
    assert oof.shape == (12, 2) and np.all((oof >= 0) & (oof <= 1))
    y = np.array([truth[i] for i in res["ids"]])
    assert pooled["arousal_rmse"] == pytest.approx(float(np.sqrt(np.mean((oof[:, 0] - y[:, 0]) ** 2))))
    conf = np.array(res["pooled_summary"]["quadrant"]["confusion"])
    assert conf.shape == (4, 4) and conf.sum() == 12
    assert len(res["histories"]) == 3 and all(len(h) == 2 for h in res["histories"].values())
    assert res["protocol"].startswith("artist-grouped 3-fold")
    for name in ("confusion.png", "curves.png", "av_scatter.png"):
        assert_real_png(out / name)


def test_fit_exports_a_model_the_runtime_loads_with_cv_metrics_on_its_card(
        workdir: Path, evaluated: tuple[Path, subprocess.CompletedProcess]) -> None:
    from mer_live.analyze import analyze_file
    from mer_live.inference.model import Model

    cv, r0 = evaluated
    assert r0.returncode == 0, r0.stderr[-2000:]
    r = mer_train("fit", "--data", "ds/manifest.csv", "--cache", "cache", "--seeds", "2", *TINY,
                  "--out", "tmp/x.onnx", "--cv", str(cv / "results.json"), "--no-progress", cwd=workdir)
    assert r.returncode == 0, r.stderr[-2000:]
    path = workdir / "tmp" / "x.onnx"
    model = Model(path, provider="cpu")
    assert model.sample_rate == 8000 and model.window_samples == 8000
    card = json.loads(path.with_suffix(".json").read_text())
    results = json.loads((cv / "results.json").read_text())
    assert card["name"] == "x"
    assert card["metrics"]["pooled"] == results["pooled"]
    assert card["metrics"]["mean_std"]["arousal_auc"] == [results["mean"]["arousal_auc"],
                                                          results["std"]["arousal_auc"]]
    assert card["protocol"] == results["protocol"]
    assert card["recipe"]["seeds"] == 2 and card["recipe"]["model"]["channels"] == [8, 16]
    assert "12 clips" in card["training_data"]
    assert card["command"].startswith("mer-train fit ") and "--seeds 2" in card["command"]
    assert card["export"]["parity_max_abs_diff"] <= 1e-4
    rec = analyze_file(workdir / "ds" / "audio" / "clip01.flac", model, hop=0.5)
    assert 0 <= rec["arousal"] <= 1 and 0 <= rec["valence"] <= 1 and len(rec["timeline"]) >= 4


def test_wave_recipe_one_fold(workdir: Path) -> None:
    out = workdir / "cv_wave"
    r = mer_train("evaluate", "--recipe", "wave", "--data", "ds/manifest.csv", "--cache", "cache",
                  "--k", "3", "--folds", "1", *TINY, "val_fraction=0", "--aug", "only:crop,gain",
                  "--model", "arch=raw_cnn", "raw_kernels=40,160", "raw_stride=80", "raw_branch_channels=8",
                  "--out", str(out), "--no-progress", cwd=workdir)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["recipe"] == "wave" and res["folds_run"] == [1] and res["model"]["arch"] == "raw_cnn"
    # repeated --model / --fit options add up
    assert res["model"]["sample_rate"] == 8000 and res["model"]["raw_stride"] == 80
    assert res["fit"]["epochs"] == 2 and res["fit"]["val_fraction"] == 0
    assert "Only folds [1]" in res["protocol"]
    n_oof = sum(x is not None for x in res["oof"])
    assert 0 < n_oof < 12 and res["pooled_summary"]["n"] == n_oof
    assert_real_png(out / "curves.png")


BAD_MANIFESTS = {
    "number": "file,artist,arousal,valence\naudio/clip00.wav,a,0.5,0.4\naudio/clip01.flac,b,high,0.2\n",
    "range": "file,artist,arousal,valence\naudio/clip00.wav,a,1.5,0.4\n",
    "columns": "path,mood\naudio/clip00.wav,happy\n",
    "quadrant": "file,quadrant\naudio/clip00.wav,Q7\n",
}


@pytest.mark.parametrize("kind", sorted(BAD_MANIFESTS))
def test_malformed_manifest_is_one_line_and_exit_2(workdir: Path, kind: str) -> None:
    (workdir / "ds" / f"bad_{kind}.csv").write_text(BAD_MANIFESTS[kind])
    for cmd in ("evaluate", "fit"):
        extra = ["--out", "tmp/never.onnx"] if cmd == "fit" else ["--out", "never"]
        r = mer_train(cmd, "--data", f"ds/bad_{kind}.csv", "--cache", "cache", *extra, cwd=workdir,
                      timeout=60)
        assert r.returncode == 2, (cmd, kind, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mer-train: error: "), r.stderr
        assert f"bad_{kind}.csv" in lines[0]
    assert not (workdir / "never").exists() and not (workdir / "tmp" / "never.onnx").exists()


@pytest.mark.parametrize("args, needle", [
    (["evaluate", "--data", "missing.csv"], "manifest not found"),
    (["evaluate", "--data", "ds/manifest.csv", "--model", "colour=red"], "unknown option 'colour'"),
    (["evaluate", "--data", "ds/manifest.csv", "--fit", "epochs=many"], "epochs='many'"),
    (["evaluate", "--data", "ds/manifest.csv", "--k", "9"], "9 artist folds from 6 artists"),
    (["evaluate", "--data", "ds/manifest.csv", "--model", "arch=raw_cnn"], "spectrogram model"),
    (["fit", "--data", "ds/manifest.csv", "--out", "x.pt"], "must end in .onnx"),
    (["fit", "--data", "ds/manifest.csv", "--out", "x.onnx", "--cv", "nope.json"], "nope.json"),
    (["evaluate", "--frobnicate"], "unrecognized arguments"),
    (["evaluate", "--data", "4q:/no/such/folder"], "use 4q[:DIR], pmemo[:DIR] or a manifest"),
    (["baseline", "--data", "ds"], "use 4q[:DIR], pmemo[:DIR] or a manifest"),
    (["pmemo-standin", "pm", "--labels", "/no/such/folder"], "no PMEmo2019 metadata.csv"),
])
def test_bad_options_are_one_line_and_exit_2(workdir: Path, args: list[str], needle: str) -> None:
    r = mer_train(*args, cwd=workdir, timeout=60)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mer-train: error: ") and needle in lines[0], r.stderr


def test_4q_without_the_shared_data_is_one_line_and_exit_2(workdir: Path) -> None:
    r = mer_train("evaluate", "--data", "4q", cwd=workdir, timeout=60,
                  env={"MER_DATA": str(workdir / "empty")})
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mer-train: error: 4Q labels not found"), r.stderr


def test_help_lists_the_subcommands(workdir: Path) -> None:
    r = mer_train("--help", cwd=workdir, timeout=60)
    assert r.returncode == 0
    for sub in ("baseline", "evaluate", "fit", "pmemo-standin"):
        assert sub in r.stdout
    exe = shutil.which("mer-train")
    if exe:  # the installed console script (pyproject: mer_train.cli:main)
        r2 = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
        assert r2.returncode == 0 and r2.stdout == r.stdout


def test_wave_fit_resumes_from_its_checkpoint(workdir: Path) -> None:
    """A finished checkpoint resumed trains nothing more and exports the same weights."""
    from mer_live.inference.model import Model

    base = ["fit", "--recipe", "wave", "--data", "ds/manifest.csv", "--cache", "cache", *TINY,
            "val_fraction=0", "--aug", "only:crop,gain", "--checkpoint-dir", "ck", "--no-progress"]
    r1 = mer_train(*base, "--out", "tmp/w1.onnx", cwd=workdir)
    assert r1.returncode == 0, r1.stderr[-2000:]
    assert (workdir / "ck" / "last.pt").is_file()
    r2 = mer_train(*base, "--resume", "-v", "--out", "tmp/w2.onnx", cwd=workdir)
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert "resumed from" in r2.stderr and "fit epoch" not in r2.stderr  # no epoch ran again
    x = np.random.default_rng(0).standard_normal((3, 8000)).astype(np.float32) * 0.1
    y1 = Model(workdir / "tmp" / "w1.onnx", provider="cpu").predict(x)
    y2 = Model(workdir / "tmp" / "w2.onnx", provider="cpu").predict(x)
    assert np.abs(y1 - y2).max() < 1e-6
    card = json.loads((workdir / "tmp" / "w2.json").read_text())
    assert card["recipe"]["recipe"] == "wave" and card["recipe"]["fit"]["best_epoch"] == 2
    assert "metrics" not in card and card["protocol"].startswith("not measured")


def test_parse_kv_types_values_by_the_config_fields() -> None:
    from train.fit import FitConfig
    from train.models import ModelConfig
    from train.specfit import SpecFitConfig

    m = parse_kv(["channels=8,16", "trainable_mel=false", "window_seconds=1.5", "arch=crnn", "n_mels=32"],
                 ModelConfig, "model")
    assert m == {"channels": (8, 16), "trainable_mel": False, "window_seconds": 1.5, "arch": "crnn",
                 "n_mels": 32}
    assert ModelConfig(**m).channels == (8, 16)
    f = parse_kv(["augs=eq,noise", "snr_db=3,20", "epochs=4"], SpecFitConfig, "fit")
    assert f == {"augs": ("eq", "noise"), "snr_db": (3.0, 20.0), "epochs": 4}
    assert parse_kv(["augs=none"], SpecFitConfig, "fit") == {"augs": ()}
    got = parse_kv(["checkpoint_dir=ck", "lr=0.01"], FitConfig, "fit")
    assert got == {"checkpoint_dir": "ck", "lr": 0.01}
    for bad in (["epochs"], ["nope=1"], ["epochs=1.5"], ["progress=maybe"]):
        with pytest.raises(UsageError):
            parse_kv(bad, SpecFitConfig, "fit")


def test_baseline_on_the_fixture(workdir: Path) -> None:
    out = workdir / "base.json"
    r = mer_train("baseline", "--data", "ds/manifest.csv", "--cache", "cache", "--k", "3", "--out", str(out),
                  "--no-progress", cwd=workdir)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| majority baseline |" in r.stdout and "features + LR" in r.stdout
    res = json.loads(out.read_text())
    assert res["k"] == 3 and len(res["folds"]) == 3 and res["n_features"] == len(res["features"]) > 10
    oof = np.array(res["oof"], np.float64)
    assert oof.shape == (12, 2) and np.all((oof >= 0) & (oof <= 1))


def test_pmemo_standin_writes_a_loadable_pmemo_folder(workdir: Path, shared_data: Path) -> None:
    from train.pmemo import load_pmemo

    r = mer_train("pmemo-standin", "pm", "--n", "3", "--seconds", "16", "--format", "wav",
                  "--labels", str(shared_data / "pmemo-labels" / "PMEmo2019"), cwd=workdir, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    root = workdir / "pm" / "PMEmo2019"
    clips = load_pmemo(root)
    assert len(clips) == 3 and all(c.path.is_file() and c.has_continuous for c in clips)
    import soundfile as sf

    assert sf.info(str(clips[0].path)).duration == pytest.approx(16.0, abs=0.01)


def test_device_reaches_both_recipes_fit_configs() -> None:
    """``--device`` picks where either recipe trains (the spec recipe too: crops on the CPU, the
    model on the device); an explicit ``--fit device=`` wins."""
    from train.cli import build_parser, fit_config

    p = build_parser()
    for recipe in ("spec", "wave"):
        args = p.parse_args(["fit", "--recipe", recipe, "--out", "m.onnx", "--device", "cpu"])
        assert fit_config(args, progress=False).device == "cpu"
        args = p.parse_args(["fit", "--recipe", recipe, "--out", "m.onnx", "--fit", "device=cuda"])
        assert fit_config(args, progress=False).device == "cuda"
