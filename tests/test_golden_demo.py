"""The shipped model on real audio: the demo piece's energetic half must score higher arousal than
its calm half, offline (mer-analyze's functions) and through the live pipeline (unpaced).

Why: every other runtime test uses a synthetic test model, so a broken shipped model (a wrong
export, a card with the wrong rate, a front end that flattens real music) would pass them all.
The demo piece (``mer_live.sources.demo``) is calm for its first 45 % (0-18 s), builds up to 60 % and is
energetic from 24 s (drums at 150 BPM, bass, a distorted lead); README shows the shipped model's
arousal under 0.1 in the calm part and 0.8-0.9 in the energetic one.
"""

from __future__ import annotations

import numpy as np
import pytest

from mer_live.analyze import analyze_array
from mer_live.inference.model import Model, default_model_path
from mer_live.live.pipeline import Pipeline, PipelineConfig
from mer_live.sources.demo import demo_audio
from mer_live.sources.filesource import FileSource

SR = 22050
CALM = (6.0, 18.0)  #: window ends whose 6-s window lies in the calm part
BUILD_UP = (23.0, 25.0)  #: windows ending in the build-up, before the drums take over
ENERGETIC = (30.0, 40.0)  #: ... in the energetic part


@pytest.fixture(scope="module")
def shipped() -> Model:
    assert default_model_path().is_file(), "the shipped model models/mer-default.onnx is missing"
    return Model.load(provider="cpu", threads=1)


@pytest.fixture(scope="module")
def demo() -> np.ndarray:
    return demo_audio(SR)


def _part(times: np.ndarray, values: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    sel = (times >= span[0] - 1e-6) & (times <= span[1] + 1e-6)
    assert sel.sum() >= 3, (span, times)
    return values[sel]


def test_offline_energetic_half_is_more_aroused(shipped: Model, demo: np.ndarray) -> None:
    rec = analyze_array(demo, SR, shipped, hop=1.0)
    tl = np.array([row[:3] for row in rec["timeline"]], np.float64)
    calm = _part(tl[:, 0], tl[:, 1], CALM)
    energetic = _part(tl[:, 0], tl[:, 1], ENERGETIC)
    print(f"offline arousal: calm {calm.mean():.3f}, energetic {energetic.mean():.3f}")
    assert calm.mean() < 0.3 and energetic.mean() > 0.6
    assert energetic.min() > calm.max(), "every energetic window above every calm one"


def test_offline_path_is_sad_then_calm_then_happy(shipped: Model, demo: np.ndarray) -> None:
    """README's demo run: the sparse, dark opening is heard as sad (Q3), the build-up as calm and
    positive (Q4: valence up, arousal not yet), the drums as happy/excited (Q1). The build-up is
    where arousal and valence part ways, so this also fails if the two outputs are swapped."""
    rec = analyze_array(demo, SR, shipped, hop=1.0)
    tl = np.array([row[:3] for row in rec["timeline"]], np.float64)
    a = {name: _part(tl[:, 0], tl[:, 1], span).mean() for name, span in
         (("calm", CALM), ("build", BUILD_UP), ("energetic", ENERGETIC))}
    v = {name: _part(tl[:, 0], tl[:, 2], span).mean() for name, span in
         (("calm", CALM), ("build", BUILD_UP), ("energetic", ENERGETIC))}
    print("arousal", {k: round(x, 3) for k, x in a.items()})
    print("valence", {k: round(x, 3) for k, x in v.items()})
    assert a["calm"] < 0.3 and v["calm"] < 0.3  # Q3 sad
    assert a["build"] < 0.35 and v["build"] > 0.8  # Q4 calm / relaxed
    assert a["energetic"] > 0.6 and v["energetic"] > 0.6  # Q1 happy / excited


def test_live_pipeline_agrees_on_the_demo(shipped: Model, demo: np.ndarray) -> None:
    out = []
    src = FileSource(demo, SR, realtime=False, blocksize=1024, name="demo")
    pl = Pipeline(src, shipped, PipelineConfig(hop_s=0.5), [out.append])
    pl.start()
    assert pl.join(120.0), "the pipeline did not finish the demo"
    est = [e for e in out if e.music]
    assert len(est) > 50
    t = np.array([e.t for e in est])
    raw = np.array([e.arousal_raw for e in est])
    calm, energetic = _part(t, raw, CALM), _part(t, raw, ENERGETIC)
    print(f"live arousal: calm {calm.mean():.3f}, energetic {energetic.mean():.3f}")
    assert calm.mean() < 0.3 and energetic.mean() > 0.6
    assert energetic.min() > calm.max()
    # the same windows offline give the same values (the live chain is the offline chain)
    rec = analyze_array(demo, SR, shipped, hop=0.5)
    offline = {round(row[0], 3): row[1] for row in rec["timeline"]}
    both = [(a, offline[round(x, 3)]) for x, a in zip(t, raw, strict=True) if round(x, 3) in offline]
    assert len(both) > 50
    np.testing.assert_allclose([a for a, _ in both], [b for _, b in both], atol=2e-3)
    # the smoothed output follows: energetic at the end, far above the calm part's
    smooth = np.array([e.arousal for e in est])
    assert smooth[-1] > 0.6 and _part(t, smooth, CALM).mean() < 0.3
