"""Presence training: the negatives' generators, a tiny real training run -> ONNX parity, and
the shipped model on synthesized speech and applause (tests/inference/test_presence.py has the runtime)."""

from __future__ import annotations

import numpy as np
import pytest

from mer_live.inference.presence import PresenceModel, music_flags
from mer_live.sources.demo import demo_audio
from tests.conftest import need_tool
from train import negatives as neg

SR = 16000


def db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-20)


def band_share(x: np.ndarray, lo: float, hi: float) -> float:
    """Share of the power between lo and hi Hz."""
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float(p[(f >= lo) & (f < hi)].sum() / p.sum())


def envelope(x: np.ndarray, block: float = 0.05) -> np.ndarray:
    n = int(block * SR)
    m = len(x) // n
    return np.sqrt(np.mean(x[: m * n].reshape(m, n) ** 2, axis=1))


# ---------------------------------------------------------------- generators

@pytest.mark.parametrize("fn", [neg.silence, neg.room_tone, neg.mains_hum, neg.applause])
def test_generators_are_deterministic_by_seed(fn) -> None:
    a, b, c = fn(3.0, SR, 4), fn(3.0, SR, 4), fn(3.0, SR, 5)
    assert a.dtype == np.float32 and a.shape == (3 * SR,)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(np.isfinite(a))


def test_silence_kinds() -> None:
    assert not neg.silence(2.0, SR, 0).any()  # digital zero
    d = neg.silence(2.0, SR, 1)  # 16-bit TPDF dither: within +-1 LSB
    assert 0 < np.abs(d).max() <= 1 / 32768 + 1e-12
    assert -110 < db(neg.silence(2.0, SR, 2)) < -70  # a converter's floor


def test_hum_sits_on_the_mains_frequency() -> None:
    for seed, f0 in ((0, 50.0), (1, 60.0)):
        x = neg.mains_hum(4.0, SR, seed)
        p = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(len(x), 1 / SR)
        peaks = f[np.argsort(p)[-5:]]
        # the strongest components are harmonics of f0
        assert np.all(np.abs(peaks / f0 - np.round(peaks / f0)) < 0.02), peaks
        assert -72 < db(x) < -28


def test_applause_density_sets_how_busy_it_is() -> None:
    sparse = neg.applause(6.0, SR, 3, density=4.0)
    dense = neg.applause(6.0, SR, 3, density=300.0)
    # sparse claps: a peaky envelope (claps and gaps); dense: a steady roar
    def peakiness(x: np.ndarray) -> float:
        e = envelope(x[int(2.0 * SR) : int(4.0 * SR)], 0.01)
        return float(e.max() / np.median(e))
    assert peakiness(sparse) > 2 * peakiness(dense)
    assert band_share(dense, 500, 5000) > 0.6  # claps are mid/high-frequency noise


def test_room_tone_is_steady_noise() -> None:
    x = neg.room_tone(4.0, SR, 2)
    e = envelope(x, 0.1)
    assert e.max() / e.min() < 3  # no events
    assert -78 < db(x) < -28


def test_midi_writer_and_tuning_render() -> None:
    need_tool("fluidsynth")
    a = neg.tuning(8.0, SR, 0)
    assert np.array_equal(a, neg.tuning(8.0, SR, 0)) and a.shape == (8 * SR,)
    # one note repeated with pauses: the level falls back between notes
    e = envelope(a, 0.1)
    assert e.max() / np.percentile(e, 10) > 10
    # a drum line check renders too (GM channel 10)
    x = neg.render(neg._note(0.1, 0.3, 38, 120, ch=9), 1.0, SR)
    assert db(x) > -50


def test_speech_from_each_engine() -> None:
    for eng, voice, tool in (("espeak-ng", "en-us+f3", "espeak-ng"), ("flite", "slt", "flite"),
                             ("festival", "kal_diphone", "festival")):
        need_tool(tool)
        u = neg.synthesize("check one two", SR, eng, voice)
        assert u.dtype == np.float32 and 0.3 * SR < len(u) < 4 * SR
        assert band_share(u, 100, 4000) > 0.8  # speech band
        t = neg.talk(6.0, SR, eng, voice, seed=1)
        assert np.array_equal(t, neg.talk(6.0, SR, eng, voice, seed=1))
        assert t.shape == (6 * SR,)


def test_bank_groups_and_kinds() -> None:
    need_tool("espeak-ng")
    need_tool("fluidsynth")
    counts = {"silence": 2, "speech": 4, "tuning": 1, "crowd": 1, "line_check": 3}
    b = neg.bank(SR, 4.0, seed=3, counts=counts, progress=False)
    assert [x.kind for x in b].count("speech") == 4 and len(b) == 11
    assert all(x.audio.shape == (4 * SR,) and x.audio.dtype == np.float32 for x in b)
    speech = [x for x in b if x.kind == "speech"]
    assert all(x.group.startswith("speech:") and x.group.split(":")[2] for x in speech)
    assert len({x.name for x in b}) == len(b)
    b2 = neg.bank(SR, 4.0, seed=3, counts={"silence": 2}, progress=False)
    assert all(np.array_equal(x.audio, y.audio) for x, y in zip(b2, b[:2], strict=True))
    with pytest.raises(ValueError, match="unknown negative kind"):
        neg.bank(SR, 1.0, counts={"jazz": 1})


# ---------------------------------------------------------------- training -> export -> runtime

def test_tiny_training_run_exports_a_model_the_runtime_agrees_with(tmp_path) -> None:
    import torch

    from train import presence as P

    cfg = P.presence_config(window_seconds=1.0)
    model = P.build_model(cfg, seed=0)
    music = [demo_audio(SR)[i * 8 * SR : (i + 1) * 8 * SR] for i in range(4)]
    noise = [neg.room_tone(8.0, SR, s) for s in range(2)] + [neg.applause(8.0, SR, s) for s in range(2)]
    feats = P.features(model, music + noise)
    kinds = ["4q"] * 4 + ["room_tone"] * 2 + ["applause"] * 2
    before = [p.detach().clone() for p in model.parameters()]
    hist = P.fit_presence(model, feats, kinds, [1] * 4 + [0] * 4,
                          P.PresenceFitConfig(epochs=2, steps=6, batch_size=16, progress=False))
    assert len(hist["loss"]) == 2 and np.isfinite(hist["loss"]).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    path = P.export(model, tmp_path / "tiny-presence.onnx", {"training_data": "test"})
    pm = PresenceModel(path)
    assert pm.window_samples == SR
    x = np.stack([m[i * 4000 : i * 4000 + SR] for m in music + noise for i in range(3)]).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()[:, 0]
    got = pm.predict(x)
    assert got.shape == (len(x),)
    assert np.abs(got - ref).max() < 1e-4
    # the same windows through stream_probs (the runtime's framing) give the same numbers
    p, t = P.stream_probs(pm, music[0][: 3 * SR], hop_s=0.5)
    assert np.allclose(t, [1.0, 1.5, 2.0, 2.5, 3.0])
    with torch.no_grad():
        ref0 = model(torch.from_numpy(music[0][2 * SR : 3 * SR][None])).numpy()[0, 0]
    assert abs(p[-1] - ref0) < 1e-4


def test_group_folds_keep_groups_whole() -> None:
    from train.presence import group_folds

    groups = [f"g{i % 13}" for i in range(100)]
    f = group_folds(groups, k=5, seed=0)
    assert set(f) == set(range(5))
    for g in set(groups):
        assert len({int(f[i]) for i in range(100) if groups[i] == g}) == 1
    assert np.array_equal(f, group_folds(groups, k=5, seed=0))


# ---------------------------------------------------------------- the shipped model on synthesized negatives

@pytest.fixture(scope="module")
def shipped() -> PresenceModel:
    return PresenceModel()


def _rate(pm: PresenceModel, x: np.ndarray) -> tuple[float, float]:
    from train.presence import stream_probs

    p, _ = stream_probs(pm, x, hop_s=0.1)
    return float(np.mean(p >= 0.5)), float(music_flags(p, 0.1).mean())


def test_shipped_model_hears_espeak_speech_as_not_music(shipped: PresenceModel) -> None:
    need_tool("espeak-ng")
    # a voice and seed the bank never drew for training is not guaranteed: this checks behaviour
    x = neg.talk(20.0, SR, "espeak-ng", "en-gb-x-rp+m2", seed=12345)
    per_window, gated = _rate(shipped, x)
    assert per_window <= 0.2 and gated <= 0.1, (per_window, gated)


def test_shipped_model_hears_applause_as_not_music(shipped: PresenceModel) -> None:
    x = neg.applause(20.0, SR, seed=12345, density=80.0)
    per_window, gated = _rate(shipped, x)
    assert per_window <= 0.2 and gated <= 0.1, (per_window, gated)
