"""The fused default at runtime runs what the cross-validation scored: mer-analyze's file record
equals the CV's clip score computed independently (train/fusion_head.py's placement of
teacher patches, its head and its fuse), and the live estimator fuses the CNN with the teacher's
recent patches on its own thread."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from mer_live.analyze import analyze_array
from mer_live.assemble import load_model
from mer_live.inference.fusion import Fusion, FusionSpec, TeacherThread
from mer_live.inference.model import ModelError
from mer_live.live.pipeline import Pipeline, PipelineConfig
from mer_live.sources.demo import demo_audio
from mer_live.sources.filesource import FileSource
from tests.conftest import need_module

RATE = 16000


@pytest.fixture(scope="module")
def model():
    return load_model(None, "cpu", 1)


@pytest.fixture(scope="module")
def fusion(model):
    f = Fusion.of(model)
    assert f is not None, "the shipped default is a fused model (its card has 'fusion')"
    return f


def test_mer_analyze_equals_the_cv_clip_score(model, fusion) -> None:
    fx = need_module("train.fusion_head", "train")
    x = demo_audio(RATE)[: 31 * RATE]  # a 31-s clip, like 4Q's
    rec = analyze_array(x, RATE, model, fusion=fusion)  # no music gate: every window, as the CV
    # the CV: CNN clip score = mean of windows 1 s apart; teacher = head on the mean features of the
    # patches that start every analyze_every_s on the 1-s grid (cadence_features, phase 0)
    cnn = np.array([[a, v] for _t, a, v, _m in analyze_array(x, RATE, model)["timeline"]]).mean(axis=0)
    starts = np.arange(0, (len(x) - 47872) // RATE + 1)
    feats = fusion.teacher.features(fusion.patches(x, starts * RATE))[None]  # [1, P, 200]
    every = f"{fusion.spec.analyze_every_s:g}s"
    mean_feats = fx.cadence_features(feats, starts.astype(float), every)
    head = json.loads(fusion.spec.head.read_text())
    z = fx.Head(np.array(head["weight"]), np.array(head["bias"])).logits(mean_feats)[0]
    want = fx.fuse(cnn, z, fx.W_FIXED)
    assert [rec["arousal"], rec["valence"]] == pytest.approx(list(want), abs=2e-4)
    assert fusion.w == fx.W_FIXED
    # and it is not the CNN alone
    assert abs(rec["valence"] - cnn[1]) > 0.01


def test_live_estimator_fuses_with_the_teachers_recent_patches(model, fusion) -> None:
    x = demo_audio(RATE)[25 * RATE : 40 * RATE]  # the energetic part
    out_fused, out_cnn = [], []
    teacher = TeacherThread(fusion)
    for sink, kw in ((out_fused, {"teacher": teacher}), (out_cnn, {})):
        pl = Pipeline(FileSource(x, RATE, realtime=False), model, PipelineConfig(attack_s=0, release_s=0),
                      [sink.append], **kw)
        pl.start()
        try:
            assert pl.join(60)
        finally:
            pl.stop()
        time.sleep(0.01)
    assert teacher.runs >= 1 and not teacher._thread  # ran, and stopped with the pipeline
    raw_f = np.array([[e.arousal_raw, e.valence_raw] for e in out_fused if e.music])
    raw_c = np.array([[e.arousal_raw, e.valence_raw] for e in out_cnn if e.music])
    assert raw_f.shape == raw_c.shape and len(raw_f) > 50
    diff = np.abs(raw_f - raw_c).max(axis=1)
    assert diff[:2].max() < 1e-9 or diff.max() > 0.01  # CNN alone until the first patch is back
    assert diff.max() > 0.01, "the teacher never changed the output"


def test_a_broken_fusion_entry_is_one_line(model, tmp_path) -> None:
    class M:
        path = tmp_path / "m.onnx"

        class card:  # noqa: N801
            extra = {"fusion": {"teacher": "musicnn-msd.onnx", "head": "h.json", "live_every_s": "often"}}

    with pytest.raises(ModelError, match="live_every_s must be a number") as e:
        FusionSpec.from_card(M)
    assert "\n" not in str(e.value)
    M.card.extra = {"fusion": {"head": "h.json"}}
    with pytest.raises(ModelError, match="fusion needs 'teacher'"):
        FusionSpec.from_card(M)
