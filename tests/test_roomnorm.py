"""The room normaliser (train/roomnorm.py): streaming equals offline, it removes a static EQ,
and it leaves music that already matches the reference alone."""

from __future__ import annotations

import numpy as np
import pytest

from train.roomnorm import (
    RoomNormalizer,
    RoomNormConfig,
    SpectrumReference,
    band_centres,
    band_power,
    centred_db,
    compensate_delay,
    ltas_power,
    normalize_offline,
    reference_from,
)

SR = 16000


def _shaped_noise(seconds: float, seed: int, tilt_db_oct: float = -3.0, hp: float = 0.0) -> np.ndarray:
    """Noise with a tilt in dB per octave around 1 kHz and an optional 4th-order high-pass."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    m = 1 << int(np.ceil(np.log2(n)))
    f = np.maximum(np.fft.rfftfreq(m, 1 / SR), 1.0)
    g = 10 ** (tilt_db_oct * np.log2(f / 1000) / 20)
    if hp:
        g = g / np.sqrt(1 + (hp / f) ** 8)
    y = np.fft.irfft(np.fft.rfft(rng.standard_normal(m)) * g, m)[:n]
    return (0.1 * y / y.std()).astype(np.float32)


def _music(seconds: float, seed: int) -> np.ndarray:
    """Plucked harmonic notes over a soft noise floor: music-like and not stationary."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    y = 0.003 * rng.standard_normal(n)
    tt = np.arange(SR) / SR  # each note rings for 1 s
    for start in np.arange(0, seconds, 0.25):
        f0 = 110 * 2 ** (rng.integers(0, 36) / 12)
        note = np.exp(-tt * 6) * sum(np.sin(2 * np.pi * f0 * h * tt) / h**1.5 for h in range(1, 12)
                                     if f0 * h < 7500)
        i = int(start * SR)
        y[i : i + SR] += note[: n - i]
    return (0.1 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def ref() -> SpectrumReference:
    return reference_from([_shaped_noise(20, s) for s in range(3)], SR)


def _dev_db(x: np.ndarray, ref: SpectrumReference) -> np.ndarray:
    cfg = ref.norm_config()
    return centred_db(band_power(ltas_power(x, SR, cfg), cfg, SR), cfg) - np.asarray(ref.db)


def test_streaming_does_not_depend_on_chunking(ref):
    x = _music(40, 1) * np.float32(0.5) + _shaped_noise(40, 2, tilt_db_oct=-6)
    whole = RoomNormalizer(ref, SR).process(x)
    rng = np.random.default_rng(0)
    norm = RoomNormalizer(ref, SR)
    parts, pos = [], 0
    while pos < len(x):
        k = int(rng.integers(1, 5000))
        parts.append(norm.process(x[pos : pos + k]))
        pos += k
    chunked = np.concatenate(parts)
    assert chunked.shape == x.shape
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    assert norm.updates > 50  # the filter really was refreshed along the way


def test_streaming_converges_to_the_offline_filter(ref):
    x = _shaped_noise(120, 3, tilt_db_oct=2.0, hp=250.0)
    norm = RoomNormalizer(ref, SR, RoomNormConfig(tau_s=30.0))
    ys = norm.process(x)
    yo = normalize_offline(x, SR, ref)
    tail = slice(-30 * SR, None)
    err = np.sqrt(np.mean((ys[tail] - yo[tail]) ** 2)) / np.std(yo[tail])
    assert err < 0.02
    # early on it has not converged yet: the first second is still nearly unfiltered
    head = slice(norm.delay, SR)
    early = np.sqrt(np.mean((ys[head] - yo[head]) ** 2)) / np.std(yo[head])
    assert early > 5 * err


def test_removes_a_static_eq(ref):
    coloured = _shaped_noise(60, 4, tilt_db_oct=-1.0, hp=200.0)  # the reference is -3 dB/oct
    before = _dev_db(coloured, ref)
    y = normalize_offline(coloured, SR, ref)
    after = _dev_db(y[RoomNormConfig().taps :], ref)
    bc = band_centres(RoomNormConfig())
    mid = (bc > 300) & (bc < 6000)
    assert np.abs(before[mid]).max() > 3.0
    assert np.abs(after[mid]).max() < 1.0
    # below the high-pass the boost is limited: never much more than max_boost_db
    gains = after - before
    assert gains.max() <= RoomNormConfig().max_boost_db + 3.0  # + the level-keeping rescale


def test_music_matching_the_reference_passes_nearly_unchanged():
    music = [_music(30, s) for s in range(4)]
    ref = reference_from(music, SR)
    x = _music(30, 9)  # another piece of the same kind
    y = compensate_delay(normalize_offline(x, SR, ref), ref.norm_config().taps // 2)
    n = len(x) - ref.norm_config().taps
    corr = np.corrcoef(x[:n], y[:n])[0, 1]
    assert corr > 0.98
    assert 20 * np.log10(np.std(y[:n]) / np.std(x[:n])) == pytest.approx(0.0, abs=1.0)


def test_keeps_the_level_and_passes_silence(ref):
    x = _shaped_noise(60, 5, tilt_db_oct=0.0, hp=300.0)
    y = RoomNormalizer(ref, SR).process(x)
    assert 20 * np.log10(y[-20 * SR :].std() / x[-20 * SR :].std()) == pytest.approx(0.0, abs=1.5)
    z = RoomNormalizer(ref, SR)
    out = z.process(np.zeros(SR * 5, np.float32))
    assert np.all(out == 0) and z.ltas.n == 0
    assert np.all(np.isfinite(normalize_offline(np.zeros(SR, np.float32), SR, ref)))


def test_warm_start_applies_a_known_state(ref):
    x = _shaped_noise(60, 6, tilt_db_oct=1.0)
    p = ltas_power(x, SR, ref.norm_config())
    norm = RoomNormalizer(ref, SR)
    norm.warm(p)
    y = norm.process(x[: 5 * SR])
    yo = normalize_offline(x[: 5 * SR], SR, ref, ltas=p)
    np.testing.assert_allclose(y[: SR // 2], yo[: SR // 2], atol=1e-5)  # before the first refresh


def test_reference_round_trip_and_validation(ref, tmp_path):
    f = tmp_path / "ref.json"
    ref.save(f)
    back = SpectrumReference.load(f)
    assert back.freqs == pytest.approx(ref.freqs, rel=1e-5) and back.db == pytest.approx(ref.db, abs=1e-3)
    with pytest.raises(ValueError, match="reference is for"):
        RoomNormalizer(ref, 22050)
    with pytest.raises(ValueError, match="bands"):
        RoomNormalizer(ref, SR, RoomNormConfig(bands_per_octave=2))
    with pytest.raises(ValueError, match="freqs and db"):
        SpectrumReference.from_dict({"sample_rate": SR, "freqs": [1, 2, 3], "db": [0, 1]})
    with pytest.raises(ValueError, match="taps"):
        RoomNormConfig(taps=512).validate()
