"""Room normalisation: undo a room's, a PA's and a microphone's colouring before the model.

An EXPERIMENT of issue #19, kept for the room test's ``eq-*`` paths (``train.roomtest``): it moved
the room test by at most +0.02 macro-F1 and nothing on valence (docs/room.md), so the shipped
``--room`` path does not use it and it lives here, not in the runtime. Written so it could run live.

A room microphone hears the music through a chain that tilts and band-limits its spectrum (a
PA's low and high cuts, a laptop microphone's band, a dark reverberant tail). Over minutes, the
long-term average spectrum (LTAS) of what it hears is the show's music times that colouring; the
music of a show averages out to something close to the average of the training music, so the
ratio of the two is mostly the colouring. ``RoomNormalizer`` measures the input's LTAS in
third-octave bands with a time constant of minutes and filters the input with a linear-phase
FIR equaliser that moves it towards the training music's LTAS (``SpectrumReference``, stored
with the model), boosts and cuts limited to a few dB so that a band the chain removed is not
dug out of the noise.

Two forms that agree:

* ``RoomNormalizer.process(chunk)``: streaming, as ``mer-live`` would run it. The analysis runs on fixed
  blocks and the filter is refreshed at fixed stream positions, so the output does not depend on
  how the stream is chunked: one call over a whole array gives the same samples as any chunking.
* ``normalize_offline(x, sr, ref)``: for files (as ``mer-analyze`` would). Two passes: the LTAS of the
  whole file, then one fixed equaliser over it. For a steady input the streaming equaliser
  converges to the same filter (tested); a file is one room, so the file's own LTAS is the best
  estimate of its colouring.

numpy only (the runtime never imports torch or scipy); ~0.05 ms per 0.1-s hop at 16 kHz.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: frames quieter than this (dBFS, mean power of the block) do not update the spectrum estimate
QUIET_DB = -65.0


@dataclass(frozen=True)
class RoomNormConfig:
    """Settings of the equaliser; ``validate()`` at the edge."""

    block: int = 1024  #: analysis block, samples (64 ms at 16 kHz), Hann-windowed, no overlap
    fmin: float = 60.0  #: lowest band centre, Hz
    fmax: float = 7000.0  #: highest band centre, Hz (below the model rate's Nyquist)
    bands_per_octave: int = 3
    max_boost_db: float = 10.0
    max_cut_db: float = 10.0
    tau_s: float = 120.0  #: time constant of the long-term spectrum, seconds
    taps: int = 511  #: FIR length (odd: linear phase, (taps - 1) / 2 samples of delay)
    update_blocks: int = 8  #: the filter is recomputed every this many blocks (0.5 s)
    smooth_bands: int = 1  #: gains averaged over +-this many neighbouring bands
    #: the range (Hz) whose mean level is matched: any PA and microphone pass it
    anchor: tuple[float, float] = (250.0, 4000.0)

    def validate(self) -> RoomNormConfig:
        if self.block < 64 or self.block & (self.block - 1):
            raise ValueError(f"roomnorm: block must be a power of two >= 64, got {self.block}")
        if not 0 < self.fmin < self.fmax:
            raise ValueError("roomnorm: need 0 < fmin < fmax")
        if not 1 <= self.bands_per_octave <= 12:
            raise ValueError("roomnorm: bands_per_octave must be in 1..12")
        if not 0 <= self.max_boost_db <= 30 or not 0 <= self.max_cut_db <= 30:
            raise ValueError("roomnorm: max_boost_db and max_cut_db must be in [0, 30]")
        if not 1 <= self.tau_s <= 3600:
            raise ValueError("roomnorm: tau_s must be in [1, 3600] seconds")
        if self.taps < 31 or self.taps % 2 == 0:
            raise ValueError("roomnorm: taps must be odd and >= 31")
        if self.update_blocks < 1 or not 0 <= self.smooth_bands <= 4:
            raise ValueError("roomnorm: update_blocks >= 1 and smooth_bands in 0..4")
        lo, hi = self.anchor
        if not self.fmin <= lo < hi <= self.fmax or (hi / lo) < 2 ** (1 / self.bands_per_octave):
            raise ValueError("roomnorm: anchor must be a range within [fmin, fmax] holding a band")
        return self


def band_centres(cfg: RoomNormConfig) -> np.ndarray:
    n = int(math.floor(math.log2(cfg.fmax / cfg.fmin) * cfg.bands_per_octave)) + 1
    return cfg.fmin * 2.0 ** (np.arange(n) / cfg.bands_per_octave)


def band_matrix(cfg: RoomNormConfig, sr: int) -> np.ndarray:
    """``[bands, bins]`` triangular weights in log frequency (neighbouring bands overlap, each
    bin's weights sum to at most 1), over the rfft bins of one analysis block."""
    f = np.fft.rfftfreq(cfg.block, 1 / sr)
    lf = np.log2(np.maximum(f, 1e-3))
    lc = np.log2(band_centres(cfg))
    w = np.clip(1 - np.abs(lf[None, :] - lc[:, None]) * cfg.bands_per_octave, 0, None)
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-12)  # each band: a mean over its bins
    return w


@dataclass(frozen=True)
class SpectrumReference:
    """The training music's long-term spectrum in the normaliser's bands: dB relative to its mean.
    ``freqs`` must match the config's band centres (checked when a normaliser is built)."""

    sample_rate: int
    freqs: tuple[float, ...]
    db: tuple[float, ...]
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "freqs": [round(f, 3) for f in self.freqs],
                "db": [round(d, 3) for d in self.db], "config": self.config}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpectrumReference:
        try:
            ref = cls(sample_rate=int(d["sample_rate"]), freqs=tuple(float(f) for f in d["freqs"]),
                      db=tuple(float(v) for v in d["db"]), config=dict(d.get("config", {})))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"room reference: needs sample_rate, freqs and db ({e})") from None
        if len(ref.freqs) != len(ref.db) or len(ref.db) < 3 or not np.all(np.isfinite(ref.db)):
            raise ValueError("room reference: freqs and db must be equal-length finite lists (>= 3)")
        return ref

    def norm_config(self) -> RoomNormConfig:
        """The normaliser config the reference was measured with (its band layout)."""
        c = dict(self.config)
        if "anchor" in c:
            c["anchor"] = tuple(c["anchor"])
        return RoomNormConfig(**c).validate()

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> SpectrumReference:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"room reference {path}: {e}") from None


def anchor_mask(cfg: RoomNormConfig) -> np.ndarray:
    """The bands whose mean level is the 0-dB line of every spectrum (the anchor range)."""
    f = band_centres(cfg)
    return (f >= cfg.anchor[0]) & (f <= cfg.anchor[1])


def centred_db(power: np.ndarray, cfg: RoomNormConfig) -> np.ndarray:
    """Band powers in dB relative to their mean over the anchor bands: a microphone that cuts the
    lows or the highs then does not shift the mid bands' gains (a mean over all bands would)."""
    db = 10 * np.log10(np.maximum(power, 1e-20))
    return db - db[anchor_mask(cfg)].mean()


class _Ltas:
    """Block-wise power spectrum of a stream (per rfft bin of a block): a running mean for the
    first ``tau`` seconds, then an exponential average with that time constant (``fixed``: a
    plain mean over everything). Quiet blocks are skipped."""

    def __init__(self, cfg: RoomNormConfig, sr: int, fixed: bool = False) -> None:
        self.cfg, self.sr, self.fixed = cfg, sr, fixed
        self.win = np.hanning(cfg.block + 1)[:-1].astype(np.float64)
        self.win_power = float(np.sum(self.win**2))
        self.bins = np.zeros(cfg.block // 2 + 1)
        self.n = 0  #: blocks averaged so far (loud enough ones)
        self.max_n = max(1, int(round(cfg.tau_s * sr / cfg.block)))
        self.quiet = 10 ** (QUIET_DB / 10)

    def add(self, block: np.ndarray) -> None:
        x = block.astype(np.float64)
        if float(np.mean(x * x)) < self.quiet:
            return
        p = np.abs(np.fft.rfft(x * self.win)) ** 2 / self.win_power
        self.n += 1
        a = 1.0 / self.n if (self.fixed or self.n <= self.max_n) else 1.0 / self.max_n
        self.bins += a * (p - self.bins)


def band_power(bins: np.ndarray, cfg: RoomNormConfig, sr: int) -> np.ndarray:
    """Mean power per band of a power spectrum over one block's rfft bins."""
    return band_matrix(cfg, sr) @ np.asarray(bins, np.float64)


def design_eq(ltas_bins: np.ndarray, ref: SpectrumReference, cfg: RoomNormConfig, sr: int) -> np.ndarray:
    """Linear-phase FIR (``cfg.taps``) whose response moves a signal with long-term power
    spectrum ``ltas_bins`` (per rfft bin of a block) towards ``ref``: per band, ref - measured in
    dB (both centred), limited, smoothed over neighbouring bands, interpolated in log frequency
    and held beyond the end bands, then scaled so the signal's power is unchanged (levels and
    the silence gate downstream keep their meaning)."""
    bins = np.asarray(ltas_bins, np.float64)
    gain_db = np.asarray(ref.db) - centred_db(band_power(bins, cfg, sr), cfg)
    gain_db = np.clip(gain_db, -cfg.max_cut_db, cfg.max_boost_db)
    k = cfg.smooth_bands
    if k:
        pad = np.pad(gain_db, k, mode="edge")
        gain_db = np.convolve(pad, np.ones(2 * k + 1) / (2 * k + 1), mode="valid")
    lc = np.log2(np.asarray(ref.freqs))

    def gain_at(f: np.ndarray) -> np.ndarray:
        return 10 ** (np.interp(np.log2(np.maximum(f, 1e-3)), lc, gain_db) / 20)

    fb = np.fft.rfftfreq(cfg.block, 1 / sr)
    scale = math.sqrt(max(float(np.sum(bins * gain_at(fb) ** 2)), 1e-30) / max(float(np.sum(bins)), 1e-30))
    n = cfg.taps - 1
    g = gain_at(np.fft.rfftfreq(n, 1 / sr)) / scale
    h = np.fft.irfft(g, n)
    h = np.roll(h, n // 2)
    h = np.append(h, h[0]) * np.hanning(cfg.taps)  # odd length, symmetric: linear phase
    return h.astype(np.float64)


def identity_fir(cfg: RoomNormConfig) -> np.ndarray:
    h = np.zeros(cfg.taps)
    h[cfg.taps // 2] = 1.0
    return h


def _fir(hist: np.ndarray, x: np.ndarray, h: np.ndarray, spectra: dict[int, np.ndarray] | None = None
         ) -> np.ndarray:
    """``x`` filtered by ``h`` given the ``taps - 1`` input samples before it (FFT convolution);
    ``spectra`` caches ``h``'s transforms by FFT size (the caller clears it when ``h`` changes)."""
    seg = np.concatenate([hist, x])
    n = 1 << int(math.ceil(math.log2(len(seg) + len(h))))
    if spectra is None:
        hf = np.fft.rfft(h, n)
    else:
        hf = spectra.get(n)
        if hf is None:
            hf = spectra[n] = np.fft.rfft(h, n)
    y = np.fft.irfft(np.fft.rfft(seg, n) * hf, n)
    return y[len(hist) : len(hist) + len(x)]


class RoomNormalizer:
    """Streaming equaliser (see the module docstring). ``process`` takes model-rate mono float32
    chunks of any size and returns as many samples, delayed by ``delay`` samples (the FIR's
    half-length: 16 ms at 16 kHz with 511 taps). The filter starts flat and follows the input's
    LTAS from the first loud block; ``warm(ltas_power)`` starts it from a known state instead."""

    def __init__(self, ref: SpectrumReference, sr: int, cfg: RoomNormConfig | None = None) -> None:
        self.cfg = (cfg or ref.norm_config()).validate()
        if int(sr) != ref.sample_rate:
            raise ValueError(f"roomnorm: the reference is for {ref.sample_rate} Hz, the model runs at "
                             f"{sr} Hz")
        bc = band_centres(self.cfg)
        if len(bc) != len(ref.freqs) or not np.allclose(bc, ref.freqs, rtol=1e-4):
            raise ValueError("roomnorm: the reference's bands do not match the normaliser's config")
        self.ref, self.sr = ref, int(sr)
        self.ltas = _Ltas(self.cfg, self.sr)
        self._spectra: dict[int, np.ndarray] = {}
        self.set_filter(identity_fir(self.cfg))
        self._hist = np.zeros(self.cfg.taps - 1)
        self._pending = np.zeros(0)  # samples of the current analysis block so far
        self._blocks = 0
        self.updates = 0

    def set_filter(self, h: np.ndarray) -> None:
        """Use FIR ``h`` from the next sample on."""
        self.h = np.asarray(h, np.float64)
        self._spectra = {}

    @property
    def delay(self) -> int:
        return self.cfg.taps // 2

    def warm(self, ltas: np.ndarray, blocks: int | None = None) -> None:
        """Start from a measured long-term spectrum (``ltas_power(...)`` of earlier audio of the
        same room) as if ``blocks`` loud blocks (default: a full time constant) had been averaged."""
        p = np.asarray(ltas, np.float64)
        if p.shape != self.ltas.bins.shape:
            raise ValueError(f"roomnorm: warm state must have {self.ltas.bins.shape[0]} bins")
        self.ltas.bins = p.copy()
        self.ltas.n = self.ltas.max_n if blocks is None else int(blocks)
        self.set_filter(design_eq(self.ltas.bins, self.ref, self.cfg, self.sr))

    def gains_db(self) -> np.ndarray:
        """The current equaliser's gain per band centre, dB (for displays and tests)."""
        f = np.asarray(self.ref.freqs)
        n = 1 << 14
        resp = np.abs(np.fft.rfft(self.h, n))
        return 20 * np.log10(np.maximum(np.interp(f, np.fft.rfftfreq(n, 1 / self.sr), resp), 1e-12))

    def process(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64).reshape(-1)
        out = []
        pos = 0
        blk = self.cfg.block
        while pos < len(x):
            take = min(blk - len(self._pending), len(x) - pos)
            piece = x[pos : pos + take]
            out.append(_fir(self._hist, piece, self.h, self._spectra))
            self._hist = np.concatenate([self._hist, piece])[-(self.cfg.taps - 1) :]
            self._pending = np.concatenate([self._pending, piece])
            pos += take
            if len(self._pending) == blk:  # a block boundary: analyse; maybe refresh the filter
                self.ltas.add(self._pending)
                self._pending = np.zeros(0)
                self._blocks += 1
                if self._blocks % self.cfg.update_blocks == 0 and self.ltas.n:
                    self.set_filter(design_eq(self.ltas.bins, self.ref, self.cfg, self.sr))
                    self.updates += 1
        y = np.concatenate(out) if out else np.zeros(0)
        return y.astype(np.float32)


def ltas_power(x: np.ndarray, sr: int, cfg: RoomNormConfig) -> np.ndarray:
    """The plain long-term power spectrum of ``x`` per rfft bin of a block (the mean over its
    loud blocks; zeros if none): what ``design_eq`` and ``RoomNormalizer.warm`` take."""
    est = _Ltas(cfg.validate(), int(sr), fixed=True)
    x = np.asarray(x, np.float64).reshape(-1)
    for i in range(len(x) // cfg.block):
        est.add(x[i * cfg.block : (i + 1) * cfg.block])
    return est.bins


def normalize_offline(x: np.ndarray, sr: int, ref: SpectrumReference, cfg: RoomNormConfig | None = None,
                      ltas: np.ndarray | None = None) -> np.ndarray:
    """A whole file through one fixed equaliser designed from its own LTAS (or ``ltas``, e.g.
    measured over more audio of the same room); the same delay and filter form as the streaming
    ``RoomNormalizer``, so on a steady input the two agree once the stream has converged. Audio
    with no loud block passes unfiltered (delayed)."""
    cfg = (cfg or ref.norm_config()).validate()
    norm = RoomNormalizer(ref, sr, cfg)
    p = ltas_power(x, sr, cfg) if ltas is None else np.asarray(ltas, np.float64)
    if np.any(p > 0):
        norm.set_filter(design_eq(p, ref, cfg, int(sr)))
    xx = np.asarray(x, np.float64).reshape(-1)
    return _fir(np.zeros(cfg.taps - 1), xx, norm.h).astype(np.float32)


def compensate_delay(y: np.ndarray, delay: int) -> np.ndarray:
    """Shift a normalised array back by the FIR delay (offline use: windows stay aligned with
    the file's time axis), zero-padding the end."""
    y = np.asarray(y)
    if delay <= 0:
        return y
    return np.concatenate([y[delay:], np.zeros(delay, y.dtype)])


def reference_from(audio: list[np.ndarray], sr: int, cfg: RoomNormConfig | None = None) -> SpectrumReference:
    """The training music's reference: the mean over clips of each clip's LTAS, each clip's
    normalised to unit total band power first (every clip counts alike, whatever its level)."""
    cfg = (cfg or RoomNormConfig()).validate()
    acc = np.zeros(len(band_centres(cfg)))
    n = 0
    for x in audio:
        p = band_power(ltas_power(x, sr, cfg), cfg, sr)
        if p.sum() > 0:
            acc += p / p.sum()
            n += 1
    if n == 0:
        raise ValueError("room reference: no audio loud enough")
    return SpectrumReference(sample_rate=int(sr), freqs=tuple(band_centres(cfg).tolist()),
                             db=tuple(centred_db(acc / n, cfg).tolist()), config=asdict(cfg))
