"""train/experiments/reexport.py: a shipped spectrogram model's weights, read back out of its
ONNX file, go through the current export code and come out computing the same thing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import need_module  # noqa: E402

torch = need_module("torch", "train")
need_module("nnAudio", "train")
onnx = need_module("onnx", "train")

from train.ensemble import SharedMelEnsemble  # noqa: E402
from train.experiments import reexport  # noqa: E402
from train.export import export_onnx, run_ort  # noqa: E402
from train.models import ModelConfig, build_model  # noqa: E402

SR = 16000


def shipped_like(tmp_path):
    """A small one-member multires model with non-trivial BatchNorm statistics, exported and
    carded the way ``ship`` does it (the card's recipe names its config)."""
    cfg = ModelConfig(frontend="multires", sample_rate=SR, window_seconds=2.0, hop=640, n_mels=48,
                      channels=(8, 16), embed_dim=16, trainable_mel=False, band_scale="semitone")
    torch.manual_seed(3)
    m = build_model(cfg)
    with torch.no_grad():  # BatchNorms that do something, so folding them into the Convs matters
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.3, 0.3)
    path = export_onnx(SharedMelEnsemble([m.eval()]).eval(), tmp_path / "orig" / "m.onnx", sample_rate=SR,
                       window_samples=cfg.window_samples, name="m",
                       card_extra={"recipe": {"model": cfg.to_dict(), "seeds": 1},
                                   "metrics": {"note": "kept"}})
    return path, cfg


def test_reexport_keeps_the_function_and_the_card(tmp_path) -> None:
    path, cfg = shipped_like(tmp_path)
    out = tmp_path / "new" / "m.onnx"
    assert reexport.main(["--model", str(path), "--out", str(out)]) == 0
    x = np.random.default_rng(5).standard_normal((4, cfg.window_samples)).astype(np.float32) * 0.2
    old, new = run_ort(path, x), run_ort(out, x)
    assert float(np.abs(old).max()) > 0 and float(np.std(old)) > 1e-4  # the probe tells models apart
    assert float(np.abs(old - new).max()) < 1e-5
    card = json.loads(out.with_suffix(".json").read_text())
    old_card = json.loads(path.with_suffix(".json").read_text())
    assert card["metrics"] == {"note": "kept"} and card["recipe"] == old_card["recipe"]
    assert card["export"]["reexported_from"]["sha256"] == old_card["sha256"]


def test_reexport_refuses_a_file_whose_front_end_is_not_the_recipe(tmp_path) -> None:
    path, _ = shipped_like(tmp_path)
    proto = onnx.load(str(path))
    from onnx import numpy_helper

    users = {i for n in proto.graph.node if n.op_type == "MatMul" for i in n.input}
    init = next(i for i in proto.graph.initializer
                if i.name in users and len(i.dims) == 2 and i.dims[0] > 100)  # a DFT kernel
    arr = numpy_helper.to_array(init).copy()
    arr[0, 0] += 0.5  # one DFT weight off: another front end
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    onnx.save(proto, str(path))
    with pytest.raises(SystemExit, match="not exported from this front end"):
        reexport.main(["--model", str(path), "--out", str(tmp_path / "x" / "m.onnx")])
    assert not (tmp_path / "x" / "m.onnx").exists()


def test_reexport_refuses_an_ensemble(tmp_path) -> None:
    path, _ = shipped_like(tmp_path)
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["recipe"]["seeds"] = 2
    card_path.write_text(json.dumps(card))
    with pytest.raises(SystemExit, match="one-member"):
        reexport.main(["--model", str(path), "--out", str(tmp_path / "y" / "m.onnx")])
