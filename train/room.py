"""A microphone in a room in front of a PA: simulated, seeded, for evaluation and training.

Issue #19: without a desk feed, mer-live hears the music as a laptop or room microphone does:

    music -> PA (band limits 60-120 Hz .. 6.5-7.2 kHz at 16 kHz, a random spectral tilt, a
             compressor, sometimes a limiter's clipping; one or two speakers)
          -> room (image-source shoebox from pyroomacoustics: 8-32 m long, RT60 0.3-1.5 s,
             microphone 1-15 m from the PA, air absorption)
          + noise bed (crowd babble with claps, or venue noise: HVAC rumble, fan band, mains
             hum; or both), itself reverberated from a crowd position, at 5, 10 or 20 dB SNR
          -> microphone (a laptop's band limits or a room mic's high-pass) -> input gain

``room_degrade(x, sr, seed, cfg)`` runs that chain on one whole clip. Everything random comes
from ``seed`` (one numpy Generator), so a (clip, seed) pair always gives the same audio.

Rooms come from a finite, seeded BANK (``cfg.bank``, ``cfg.n_rooms``): room ``i`` of bank ``b`` is
always the same geometry, RT60, speaker and microphone positions, and its impulse responses are
computed once (pyroomacoustics needs 0.1-10 s per room) and cached in memory and, with
``cache_dir``, on disk. Test rooms (``TEST_BANK``) and training rooms (``TRAIN_BANK``) are
different banks, so a model trained on simulated rooms is scored in rooms it never heard.

Absorption: the wall energy absorption starts from Sabine's inversion of the target RT60
(``pyroomacoustics.inverse_sabine``). A shoebox image-source model decays more slowly than Sabine
predicts (T30 1.1-1.5x the target here), so the absorption is corrected from the RIR's own
measured decay (``schroeder_rt60``) until T30 is within ``rt60_tol`` of the target.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import signal

log = logging.getLogger(__name__)

C_SOUND = 343.0
#: the room bank the room test draws from; training rooms come from another one
TEST_BANK = 1000
TRAIN_BANK = 0
NOISE_KINDS = ("crowd", "venue", "both")


@dataclass(frozen=True)
class RoomConfig:
    """Ranges of the simulated chain. ``validate()`` at the edge (CLI, training config)."""

    bank: int = TEST_BANK  #: which seeded bank of rooms (test and training banks must differ)
    n_rooms: int = 48  #: rooms in the bank
    mics_per_room: int = 3  #: microphone positions per room (distances spread over ``distance``)
    rt60: tuple[float, float] = (0.3, 1.5)  #: target reverberation time, seconds
    distance: tuple[float, float] = (1.0, 15.0)  #: microphone to the (nearest) PA speaker, metres
    p_two_speakers: float = 0.5  #: a stereo PA: two speakers playing the same (mono) signal
    snr_db: tuple[float, ...] = (5.0, 10.0, 20.0)  #: noise bed level below the music, one per clip
    noise_p: tuple[float, float, float] = (0.4, 0.3, 0.3)  #: P(crowd), P(venue), P(both)
    pa_highpass: tuple[float, float] = (60.0, 120.0)  #: PA low cut, Hz
    pa_lowpass: tuple[float, float] = (12000.0, 16000.0)  #: PA high cut, Hz (capped at 0.45 sr)
    pa_tilt_db_oct: tuple[float, float] = (-2.0, 2.0)  #: PA spectral tilt around 1 kHz, dB per octave
    compress_ratio: tuple[float, float] = (2.0, 8.0)
    p_limiter: float = 0.2  #: the PA's limiter driven into clipping
    p_laptop_mic: float = 0.5  #: laptop microphone band (else a room mic with a low cut)
    gain_db: float = 12.0  #: input gain drawn in +-gain_db
    rt60_tol: float = 0.1  #: relative T30 tolerance of the absorption correction

    def validate(self) -> RoomConfig:
        """Raise ValueError (one line) for the first bad setting; return self."""
        def rng(name: str, lo: float, hi: float) -> None:
            a, b = getattr(self, name)
            if not lo <= a <= b <= hi:
                raise ValueError(f"room: {name} must be an increasing pair within [{lo}, {hi}], got {(a, b)}")

        if self.n_rooms < 1 or self.mics_per_room < 1:
            raise ValueError("room: n_rooms and mics_per_room must be >= 1")
        rng("rt60", 0.1, 3.0)
        rng("distance", 0.5, 30.0)
        rng("pa_highpass", 10.0, 500.0)
        rng("pa_lowpass", 2000.0, 24000.0)
        rng("pa_tilt_db_oct", -6.0, 6.0)
        rng("compress_ratio", 1.0, 20.0)
        if not self.snr_db or not all(-10 <= s <= 60 for s in self.snr_db):
            raise ValueError(f"room: snr_db must list levels in [-10, 60] dB, got {self.snr_db}")
        if len(self.noise_p) != 3 or min(self.noise_p) < 0 or not math.isclose(sum(self.noise_p), 1.0):
            raise ValueError(f"room: noise_p must be 3 probabilities summing to 1, got {self.noise_p}")
        for name in ("p_two_speakers", "p_limiter", "p_laptop_mic"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"room: {name} must be a probability")
        if not 0 <= self.gain_db <= 40 or not 0.01 <= self.rt60_tol <= 0.5:
            raise ValueError("room: gain_db must be in [0, 40] and rt60_tol in [0.01, 0.5]")
        return self

    def key(self) -> str:
        """A short stable name of these settings (cache folders)."""
        return hashlib.sha1(repr(sorted(asdict(self).items())).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class RoomSpec:
    """One room of a bank: geometry, absorption and where the speakers, crowd and mics are."""

    dims: tuple[float, float, float]
    rt60: float  #: the target
    absorption: float  #: wall energy absorption after the correction
    max_order: int
    speakers: tuple[tuple[float, float, float], ...]  #: PA left, PA right
    crowd: tuple[float, float, float]
    mics: tuple[tuple[float, float, float], ...]
    distances: tuple[float, ...] = field(default=())  #: mic to the nearest speaker, per mic


def schroeder_rt60(h: np.ndarray, sr: int, decay_db: float = 30.0, start_db: float = -5.0) -> float:
    """Reverberation time from an impulse response by Schroeder backward integration: a line
    fitted to the energy decay curve from ``start_db`` down ``decay_db`` (T30 by default, T20 with
    20), extrapolated to 60 dB. ValueError when the response never decays that far."""
    e = np.asarray(h, np.float64) ** 2
    if e.sum() <= 0:
        raise ValueError("impulse response is silent")
    edc = np.cumsum(e[::-1])[::-1]
    edc_db = 10 * np.log10(np.maximum(edc / edc[0], 1e-300))
    lo, hi = start_db, start_db - decay_db
    i0 = int(np.argmax(edc_db <= lo))
    i1 = int(np.argmax(edc_db <= hi))
    if edc_db[-1] > hi or i1 <= i0 + 1:
        raise ValueError(f"impulse response decays less than {-hi:.0f} dB")
    t = np.arange(i0, i1) / sr
    slope = np.polyfit(t, edc_db[i0:i1], 1)[0]
    return float(-60.0 / slope)


def _surface_volume(dims: tuple[float, float, float]) -> tuple[float, float]:
    s = 2 * sum(a * b for a, b in itertools.combinations(dims, 2))
    return s, float(np.prod(dims))


def _max_order(dims: tuple[float, float, float], rt60: float) -> int:
    r = min(a * b / math.hypot(a, b) for a, b in itertools.combinations(dims, 2))
    return int(math.ceil(C_SOUND * rt60 / r - 1))


def draw_room(bank: int, index: int, cfg: RoomConfig) -> RoomSpec:
    """Room ``index`` of ``bank``: a venue-like shoebox big enough for the farthest microphone,
    the PA at one end (one or two speakers at 1.5-2.5 m height), the crowd between PA and mics,
    ``cfg.mics_per_room`` microphones at distances spread over ``cfg.distance``. Absorption here
    is Sabine's; ``room_rirs`` corrects it."""
    rng = np.random.default_rng([int(bank), int(index), 19])
    rt60 = float(rng.uniform(*cfg.rt60))
    # distances spread over the range (stratified), so each room has near and far mics
    k = cfg.mics_per_room
    d_lo, d_hi = cfg.distance
    edges = np.exp(np.linspace(math.log(d_lo), math.log(d_hi), k + 1))
    dists = np.array([rng.uniform(edges[i], edges[i + 1]) for i in range(k)])
    length = max(float(rng.uniform(8.0, 32.0)), float(dists.max()) + 3.0)
    width = length * float(rng.uniform(0.5, 0.9))
    height = float(np.clip(rng.uniform(3.0, 4.0 + 0.2 * length), 3.0, 12.0))
    dims = (round(length, 2), round(width, 2), round(height, 2))
    s, v = _surface_volume(dims)
    a = 24 * math.log(10) * v / (C_SOUND * s * rt60)  # Sabine
    if a > 0.5:  # a big hall that dry is rare (and beyond the image-source fit): liven it up
        rt60 = 24 * math.log(10) * v / (C_SOUND * s * 0.5)
        a = 0.5
    two = bool(rng.random() < cfg.p_two_speakers)
    x0 = 1.0
    pa_h = float(rng.uniform(1.5, 2.5))
    if two:
        gap = min(width - 2.0, float(rng.uniform(4.0, 10.0)))
        speakers = ((x0, width / 2 - gap / 2, pa_h), (x0, width / 2 + gap / 2, pa_h))
    else:
        speakers = ((x0, width / 2 + float(rng.uniform(-1, 1)), pa_h),)
    mics, got = [], []
    for d in dists:
        # on the far side of the nearest speaker, off-axis by up to 40 degrees, at 0.8-1.6 m
        ang = math.radians(float(rng.uniform(-40, 40)))
        sp = speakers[int(rng.integers(len(speakers)))]
        mx = float(np.clip(sp[0] + d * math.cos(ang), 0.5, length - 0.5))
        my = float(np.clip(sp[1] + d * math.sin(ang), 0.5, width - 0.5))
        m = (mx, my, float(rng.uniform(0.8, 1.6)))
        mics.append(m)
        got.append(min(math.dist(m, q) for q in speakers))
    mid = min(mics, key=lambda m: m[0])
    crowd = (float(np.clip(mid[0] * float(rng.uniform(0.4, 0.9)), 1.5, length - 0.5)),
             float(rng.uniform(0.2, 0.8)) * width, 1.6)
    return RoomSpec(dims=dims, rt60=rt60, absorption=a, max_order=_max_order(dims, rt60),
                    speakers=speakers, crowd=crowd, mics=tuple(mics), distances=tuple(got))


def _simulate(spec: RoomSpec, absorption: float, sr: int, sources: list, mics: list
              ) -> list[list[np.ndarray]]:
    """``rir[mic][source]`` of a pyroomacoustics image-source shoebox (no air absorption: done
    afterwards by ``air_absorb``, 8x cheaper than pyroomacoustics' own per-band RIRs)."""
    import pyroomacoustics as pra

    room = pra.ShoeBox(list(spec.dims), fs=sr, materials=pra.Material(float(absorption)),
                       max_order=spec.max_order, air_absorption=False)
    for p in sources:
        room.add_source(list(p))
    room.add_microphone_array(np.array(mics, np.float64).T)
    room.compute_rir()
    return [[np.asarray(h, np.float32) for h in row] for row in room.rir]


#: air absorption (energy, per metre) at 20 C, 30-50 % humidity: pyroomacoustics' table (ISO 9613-1)
AIR_ABS = ((125, 0.1e-3), (250, 0.3e-3), (500, 0.6e-3), (1000, 1.0e-3), (2000, 1.9e-3), (4000, 5.8e-3),
           (8000, 20.3e-3))


def air_absorb(h: np.ndarray, sr: int) -> np.ndarray:
    """The air's high-frequency loss on an impulse response: octave bands (complementary
    raised-cosine masks in log frequency) each decaying by exp(-coeff * c * t / 2) in amplitude, as
    pyroomacoustics' ``air_absorption`` does per image source; late sound comes out darker."""
    n = len(h)
    m = 1 << int(math.ceil(math.log2(max(2, n))))
    spec = np.fft.rfft(h, m)
    f = np.maximum(np.fft.rfftfreq(m, 1 / sr), 1.0)
    lf = np.log2(f)
    centers = np.log2([c for c, _ in AIR_ABS])
    t = np.arange(n) / sr
    out = np.zeros(n, np.float64)
    for i, (_, coeff) in enumerate(AIR_ABS):
        # weight 1 at this centre, falling to 0 at the neighbours (sums to 1 across bands)
        w = np.clip(1 - np.abs(lf - centers[i]), 0, 1)
        if i == 0:
            w[lf < centers[0]] = 1
        if i == len(AIR_ABS) - 1:
            w[lf > centers[-1]] = 1
        band = np.fft.irfft(spec * w, m)[:n]
        out += band * np.exp(-0.5 * coeff * C_SOUND * t)
    return out.astype(np.float32)


def _pad_sum(parts: list[np.ndarray]) -> np.ndarray:
    n = max(len(p) for p in parts)
    out = np.zeros(n, np.float32)
    for p in parts:
        out[: len(p)] += p
    return out


@dataclass(frozen=True)
class RoomIRs:
    """A room's impulse responses: per mic, the PA (its speakers summed) and the crowd."""

    spec: RoomSpec
    pa: tuple[np.ndarray, ...]
    crowd: tuple[np.ndarray, ...]
    t30: tuple[float, ...]  #: measured T30 of each mic's PA response


def room_irs(spec: RoomSpec, sr: int, tol: float = 0.1, tries: int = 4) -> RoomIRs:
    """Simulate ``spec``. The absorption is first corrected on one speaker-microphone pair (the
    mic at the median distance) until its T30, air absorption included, is within ``tol`` of the
    target (the decay rate scales with -ln(1 - absorption)), at most ``tries`` cheap simulations;
    then every speaker, the crowd and every mic are simulated once with it."""
    a = spec.absorption
    probe = [spec.mics[int(np.argsort(spec.distances)[len(spec.distances) // 2])]]
    for i in range(tries):
        h = air_absorb(_simulate(spec, a, sr, [spec.speakers[0]], probe)[0][0], sr)
        ratio = schroeder_rt60(h, sr, 30.0) / spec.rt60
        if abs(ratio - 1) <= tol / 2 or i == tries - 1 or (a >= 0.99 and ratio > 1):
            break
        a = float(min(0.99, 1 - math.exp(math.log(1 - a) * ratio)))
    rir = _simulate(spec, a, sr, [*spec.speakers, spec.crowd], list(spec.mics))
    pa = [air_absorb(_pad_sum(row[: len(spec.speakers)]), sr) for row in rir]
    crowd = [air_absorb(row[-1], sr) for row in rir]
    t30 = [schroeder_rt60(h, sr, 30.0) for h in pa]
    return RoomIRs(spec=replace(spec, absorption=a), pa=tuple(pa), crowd=tuple(crowd), t30=tuple(t30))


def _spec_key(spec: RoomSpec, sr: int, tol: float) -> str:
    import pyroomacoustics as pra

    raw = repr((asdict(spec), sr, tol, pra.__version__))
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


@lru_cache(maxsize=256)
def _bank_room(bank: int, index: int, sr: int, cfg: RoomConfig, cache_dir: str | None) -> RoomIRs:
    spec = draw_room(bank, index, cfg)
    key = _spec_key(spec, sr, cfg.rt60_tol)
    f = Path(cache_dir) / f"room-{bank}-{index}-{key}.npz" if cache_dir else None
    if f is not None and f.is_file():
        try:
            z = np.load(f)
            m = len(spec.mics)
            spec2 = replace(spec, absorption=float(z["absorption"]))
            return RoomIRs(spec=spec2, pa=tuple(z[f"pa{i}"] for i in range(m)),
                           crowd=tuple(z[f"crowd{i}"] for i in range(m)), t30=tuple(z["t30"].tolist()))
        except (OSError, KeyError, ValueError):
            log.warning("room cache %s unreadable; simulating again", f.name)
    irs = room_irs(spec, sr, cfg.rt60_tol)
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f".{f.stem}.tmp.npz")
        np.savez(tmp, absorption=irs.spec.absorption, t30=np.array(irs.t30),
                 **{f"pa{i}": h for i, h in enumerate(irs.pa)},
                 **{f"crowd{i}": h for i, h in enumerate(irs.crowd)})
        tmp.replace(f)
    return irs


def bank_room(index: int, sr: int, cfg: RoomConfig, cache_dir: Path | str | None = None) -> RoomIRs:
    """Room ``index`` of ``cfg.bank``, simulated once per process (and once per ``cache_dir``)."""
    return _bank_room(int(cfg.bank), int(index) % cfg.n_rooms, int(sr), cfg,
                      str(cache_dir) if cache_dir is not None else None)


# --------------------------------------------------------------------------- signal helpers
def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def _zero_phase_gain(x: np.ndarray, sr: int, gain_of_f) -> np.ndarray:
    """Apply a magnitude response (a function of frequency in Hz) to the whole clip, zero phase."""
    n = len(x)
    m = 1 << int(math.ceil(math.log2(max(2, n))))
    spec = np.fft.rfft(x, m)
    f = np.fft.rfftfreq(m, 1 / sr)
    return np.fft.irfft(spec * gain_of_f(f), m)[:n].astype(np.float32)


def compress(x: np.ndarray, sr: int, threshold_db: float, ratio: float,
             attack_s: float = 0.005, release_s: float = 0.1) -> np.ndarray:
    """A feed-forward compressor on a 5-ms RMS envelope with attack/release smoothing of the
    gain (in 5-ms blocks, linearly interpolated), make-up gain back to the input RMS."""
    blk = max(1, int(0.005 * sr))
    nb = len(x) // blk
    if nb < 2:
        return x.astype(np.float32)
    env = np.sqrt(np.mean(x[: nb * blk].reshape(nb, blk).astype(np.float64) ** 2, axis=1) + 1e-12)
    env_db = 20 * np.log10(env)
    target = -np.maximum(env_db - threshold_db, 0) * (1 - 1 / ratio)
    ca, cr = math.exp(-blk / (attack_s * sr)), math.exp(-blk / (release_s * sr))
    g = np.empty(nb)
    cur = 0.0
    for i, t in enumerate(target):  # nb ~ 6,000 for 30 s: a plain loop is fine
        c = ca if t < cur else cr
        cur = c * cur + (1 - c) * t
        g[i] = cur
    centers = (np.arange(nb) + 0.5) * blk
    gain = 10 ** (np.interp(np.arange(len(x)), centers, g) / 20)
    y = x * gain
    return (y * (_rms(x) / _rms(y))).astype(np.float32)


def pa_chain(x: np.ndarray, sr: int, rng: np.random.Generator, cfg: RoomConfig) -> np.ndarray:
    """The PA: band limits (4th-order Butterworth-like magnitudes), a tilt in dB per octave
    around 1 kHz, a compressor, sometimes a limiter driven into soft clipping."""
    hp = float(rng.uniform(*cfg.pa_highpass))
    lp = min(float(rng.uniform(*cfg.pa_lowpass)), 0.45 * sr)
    tilt = float(rng.uniform(*cfg.pa_tilt_db_oct))

    def resp(f: np.ndarray) -> np.ndarray:
        f = np.maximum(f, 1.0)
        band = 1 / np.sqrt(1 + (hp / f) ** 8) / np.sqrt(1 + (f / lp) ** 8)
        return band * 10 ** (tilt * np.log2(f / 1000.0) / 20)

    y = _zero_phase_gain(x, sr, resp)
    peak_env = 20 * math.log10(max(1e-9, float(np.max(np.abs(y)))))
    y = compress(y, sr, peak_env - float(rng.uniform(6, 20)), float(rng.uniform(*cfg.compress_ratio)))
    if rng.random() < cfg.p_limiter:
        drive = 10 ** (float(rng.uniform(3, 9)) / 20)
        peak = float(np.max(np.abs(y))) + 1e-9
        y = (np.tanh(y / peak * drive) * peak / math.tanh(drive)).astype(np.float32)
    return y.astype(np.float32)


def mic_chain(x: np.ndarray, sr: int, rng: np.random.Generator, cfg: RoomConfig, laptop: bool) -> np.ndarray:
    """The microphone: a laptop's band (low cut 150-400 Hz, high cut 4-7.5 kHz, a presence bump)
    or a room mic's low cut (30-80 Hz); then the input gain."""
    if laptop:
        hp, lp = float(rng.uniform(150, 400)), min(float(rng.uniform(4000, 7500)), 0.45 * sr)
        bump_f, bump_db = float(rng.uniform(2000, 4000)), float(rng.uniform(0, 6))
    else:
        hp, lp = float(rng.uniform(30, 80)), 0.49 * sr
        bump_f, bump_db = 3000.0, 0.0

    def resp(f: np.ndarray) -> np.ndarray:
        f = np.maximum(f, 1.0)
        band = 1 / np.sqrt(1 + (hp / f) ** 4) / np.sqrt(1 + (f / lp) ** 8)
        return band * 10 ** (bump_db * np.exp(-(np.log2(f / bump_f) ** 2) / 0.5) / 20)

    y = _zero_phase_gain(x, sr, resp)
    return (y * 10 ** (float(rng.uniform(-cfg.gain_db, cfg.gain_db)) / 20)).astype(np.float32)


# --------------------------------------------------------------------------- noise beds
VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480],
                   [660, 1720, 2410], [490, 1350, 1690], [570, 840, 2410], [440, 1020, 2240]], np.float64)


def crowd_babble(n: int, sr: int, rng: np.random.Generator, talkers: tuple[int, int] = (8, 24)) -> np.ndarray:
    """A talking crowd, unit RMS: ``talkers`` voices, each a glottal pulse train (f0 90-250 Hz,
    drifting) shaped by vowel formants that change every syllable (3-6 per second), in phrases
    with pauses; plus sparse claps and whistles of cheering. Made in the STFT domain (512 points,
    hop 128) from the voices' excitation, then summed."""
    nfft, hop = 512, 128
    nt = n // hop + 2
    f = np.fft.rfftfreq(nfft, 1 / sr)
    t = np.arange(nt) * hop / sr
    total = np.zeros(n, np.float64)
    k = int(rng.integers(talkers[0], talkers[1] + 1))
    for _ in range(k):
        f0 = rng.uniform(90, 250) * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t
                                                          + rng.uniform(0, 2 * np.pi)))
        f0s = np.interp(np.arange(n), np.arange(nt) * hop, f0)
        phase = np.cumsum(f0s / sr)
        exc = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float64)  # one pulse a period
        exc += 0.05 * rng.standard_normal(n)  # breath / unvoiced
        _, _, z = signal.stft(exc, sr, nperseg=nfft, noverlap=nfft - hop)
        m = z.shape[1]
        syl_rate = rng.uniform(3, 6)
        syl = np.floor(np.arange(m) * hop / sr * syl_rate + rng.uniform(0, 1)).astype(int)
        vow = VOWELS[rng.integers(len(VOWELS), size=syl.max() + 1)] * rng.uniform(0.9, 1.25)
        fm = vow[syl]  # [m, 3] formant frequencies per frame
        env = np.zeros((len(f), m))
        for j, bw in enumerate((90.0, 120.0, 180.0)):
            env += (1.0, 0.6, 0.3)[j] * np.exp(-0.5 * ((f[:, None] - fm[None, :, j]) / bw) ** 2)
        env = env * (f[:, None] < 5000)
        # syllable amplitude and phrases (1-4 s) with pauses (0.3-1.5 s)
        tt = np.arange(m) * hop / sr
        amp = 0.5 + 0.5 * np.cos(2 * np.pi * (tt * syl_rate % 1.0) - np.pi) ** 2
        on = np.zeros(m, bool)
        pos = rng.uniform(-1, 0.5)
        while pos < tt[-1] + 1 if m else False:
            ln = rng.uniform(1, 4)
            on |= (tt >= pos) & (tt < pos + ln)
            pos += ln + rng.uniform(0.3, 1.5)
        _, y = signal.istft(z * env * (amp * on)[None, :], sr, nperseg=nfft, noverlap=nfft - hop)
        y = y[:n]
        total[: len(y)] += y / (_rms(y) + 1e-9) * rng.uniform(0.5, 1.5)
    # claps: short decaying noise bursts, in a few rounds of applause
    for _ in range(int(rng.integers(0, 3))):
        start = rng.uniform(0, n / sr)
        dur = rng.uniform(1, 4)
        times = start + np.cumsum(rng.exponential(1 / rng.uniform(20, 60), 400))
        times = times[times < min(start + dur, n / sr - 0.05)]
        burst = int(0.012 * sr)
        shape = np.exp(-np.arange(burst) / (0.003 * sr))
        level = 3.0 * _rms(total)
        for tc in times:
            i = int(tc * sr)
            total[i : i + burst] += level * shape[: n - i] * rng.standard_normal(min(burst, n - i))
    return (total / (_rms(total) + 1e-12)).astype(np.float32)


N_BEDS = 6  #: crowd recordings per bank (a clip takes a random stretch of one)
BED_SECONDS = 60.0


@lru_cache(maxsize=16)
def _crowd_bed(bank: int, k: int, sr: int, cache_dir: str | None) -> np.ndarray:
    f = Path(cache_dir) / f"crowd-{bank}-{k}-{sr}-{int(BED_SECONDS)}.npy" if cache_dir else None
    if f is not None and f.is_file():
        try:
            return np.load(f)
        except (OSError, ValueError):
            pass
    bed = crowd_babble(int(BED_SECONDS * sr), sr, np.random.default_rng([int(bank), int(k), 1917]))
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f".{f.stem}.tmp.npy")
        np.save(tmp, bed)
        tmp.replace(f)
    return bed


def crowd_bed(n: int, sr: int, rng: np.random.Generator, bank: int,
              cache_dir: str | None = None) -> np.ndarray:
    """``n`` samples of one of the bank's ``N_BEDS`` crowd recordings (``crowd_babble``, made once:
    a voice costs ~0.3 s per 30 s), from a random start, wrapping around."""
    bed = _crowd_bed(int(bank), int(rng.integers(N_BEDS)), int(sr), cache_dir)
    idx = (int(rng.integers(len(bed))) + np.arange(n)) % len(bed)
    return bed[idx]


def venue_noise(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Venue / HVAC noise, unit RMS: pink-to-brown rumble, a fan's band of noise (200-1500 Hz),
    mains hum (50 or 60 Hz with harmonics) and a little hiss."""
    m = 1 << int(math.ceil(math.log2(max(2, n))))
    f = np.fft.rfftfreq(m, 1 / sr)
    spec = np.fft.rfft(rng.standard_normal(m))
    expo = rng.uniform(1.0, 2.0)
    rumble = spec / np.maximum(f, 20.0) ** (expo / 2)
    fan_f = rng.uniform(200, 1500)
    fan = spec * np.exp(-0.5 * (np.log2(np.maximum(f, 1.0) / fan_f) / 0.4) ** 2)
    parts = [np.fft.irfft(rumble, m)[:n], np.fft.irfft(fan, m)[:n]]
    parts = [p / (_rms(p) + 1e-12) for p in parts]
    t = np.arange(n) / sr
    mains = 50.0 if rng.random() < 0.5 else 60.0
    hum = sum(rng.uniform(0.2, 1) / h * np.sin(2 * np.pi * mains * h * t + rng.uniform(0, 6.3))
              for h in (1, 2, 3, 5))
    hum = hum / (_rms(hum) + 1e-12)
    y = parts[0] + rng.uniform(0.2, 0.8) * parts[1] + rng.uniform(0.0, 0.4) * hum \
        + 0.05 * rng.standard_normal(n)
    return (y / (_rms(y) + 1e-12)).astype(np.float32)


def _convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    return signal.oaconvolve(x, h)[: len(x)].astype(np.float32)


@dataclass(frozen=True)
class Degradation:
    """What ``room_degrade`` drew for one clip (for logs and per-condition breakdowns)."""

    room: int
    mic: int
    rt60: float  #: the room's target
    t30: float  #: measured at this mic
    distance: float
    speakers: int
    noise: str
    snr_db: float
    laptop_mic: bool


def room_degrade(x: np.ndarray, sr: int, seed: int, cfg: RoomConfig | None = None,
                 cache_dir: Path | str | None = None, info: list | None = None,
                 parts: dict | None = None) -> np.ndarray:
    """``x`` (one whole clip, mono float32 at ``sr``) as a microphone in a room in front of a PA
    hears it (see the module docstring); same length, deterministic for ``(seed, cfg)``.
    ``info``: a list that gets this clip's ``Degradation`` appended; ``parts``: a dict that gets
    the music and the noise bed as they reach the microphone capsule (``"music"``, ``"noise"``;
    the SNR is theirs) and the microphone's gain applied to their sum gives the output."""
    cfg = cfg or RoomConfig()
    x = np.nan_to_num(np.asarray(x, np.float32).reshape(-1))
    n = len(x)
    if n == 0:
        return x.copy()
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(cfg.bank), 1919])
    ridx = int(rng.integers(cfg.n_rooms))
    irs = bank_room(ridx, sr, cfg, cache_dir)
    mic = int(rng.integers(len(irs.pa)))
    y = pa_chain(x, sr, rng, cfg)
    wet = _convolve(y, irs.pa[mic])
    kind = NOISE_KINDS[int(rng.choice(3, p=np.asarray(cfg.noise_p) / sum(cfg.noise_p)))]
    snr = float(cfg.snr_db[int(rng.integers(len(cfg.snr_db)))])
    cd = str(cache_dir) if cache_dir is not None else None
    if kind == "crowd":
        bed = crowd_bed(n, sr, rng, cfg.bank, cd)
    elif kind == "venue":
        bed = venue_noise(n, sr, rng)
    else:
        bed = crowd_bed(n, sr, rng, cfg.bank, cd) + rng.uniform(0.3, 1.0) * venue_noise(n, sr, rng)
    bed = _convolve(bed, irs.crowd[mic])
    bed = bed * (_rms(wet) / (_rms(bed) + 1e-12) * 10 ** (-snr / 20))
    if parts is not None:
        parts["music"], parts["noise"] = wet, bed
    out = wet + bed
    laptop = bool(rng.random() < cfg.p_laptop_mic)
    out = mic_chain(out, sr, rng, cfg, laptop)
    if info is not None:
        info.append(Degradation(room=ridx, mic=mic, rt60=irs.spec.rt60, t30=irs.t30[mic],
                                distance=irs.spec.distances[mic], speakers=len(irs.spec.speakers),
                                noise=kind, snr_db=snr, laptop_mic=laptop))
    return np.nan_to_num(out).astype(np.float32)
