"""A phrase cue for the music gate: did the sound of the last seconds move between held pitches?

On a 2-s window a long note of a solo phrase and a long note of a tuning sound alike (issue #25):
the presence model cannot tell them apart. Over 6-8 s they differ: a phrase visits many pitches,
a tuning one or two (a held note drifting into tune, a string and the next one a fourth up), and
speech glides instead of holding a pitch. The cue measures that from model-rate audio with one
FFT per hop:

* ``frame_chroma``: the pitch-class profile (12 bins, 60 Hz..2 kHz) of the last ``FRAME``
  samples at a hop end. A frame is *tonal* when its strongest pitch class holds >= ``TONAL`` of
  it; a tonal frame is *steady* when it is the ``STEADY``-th in a row with the same strongest
  pitch class and a chroma within ``COS`` (cosine) of the frame before (a held note, not a vowel);
* ``PhraseTrack`` (live, one ``push`` per hop) and ``stream_features`` (a whole stream, the same
  numbers) over the last ``context_s``: ``NAMES`` = how many pitch classes were held
  (``n_pc``/12), how often the held pitch changed (``n_chg``/12, capped), the spread (entropy) of
  the tonal frames' pooled chroma, the tonal share of the context and of the last 0.5 s, the
  steady share of the context.

``PhraseHead`` (a logistic regression over the cue and the model's probability, weights in the
presence model's card, "phrase") raises the presence model's probability when the last seconds
held a phrase: where the card has one, the music gate runs on ``max(p, head)`` live
(``mer_live.live.estimator``) and in mer-analyze (``music_flags`` given the file's cue), as measured
in docs/presence.md ("Third try"; today's shipped card has none: "Fourth step"). numpy only.
"""

from __future__ import annotations

import numpy as np

SR = 16000
HOP = 1600  #: samples a hop (0.1 s at the model rate)
#: samples per chroma frame (0.256 s at 16 kHz: 3.9 Hz a bin, enough for a bass's harmonics)
FRAME = 4096
FMIN, FMAX = 60.0, 2000.0
#: a frame is tonal when its strongest pitch class holds at least this share of the chroma
TONAL = 0.3
#: a tonal frame continues a held note when its chroma is at least this close (cosine) to the last
COS = 0.97
#: ... and it is steady from this many such frames in a row on (0.3 s: longer than most syllables)
STEADY = 3
#: frames below this level (dBFS, mean power) are silent: never tonal
FLOOR_DB = -60.0
#: hops of "now" (0.5 s)
NOW = 5
#: the feature names, in ``features`` order
NAMES = ("n_pc", "n_chg", "spread", "tonal_ctx", "tonal_now", "steady_ctx")

_win = np.hanning(FRAME).astype(np.float32)
_freqs = np.fft.rfftfreq(FRAME, 1.0 / SR)
_band = np.flatnonzero((_freqs >= FMIN) & (_freqs <= FMAX))
_fold = np.zeros((len(_band), 12), np.float32)
_fold[np.arange(len(_band)), np.round(12 * np.log2(_freqs[_band] / 440.0)).astype(int) % 12] = 1.0


def frame_chroma(frames: np.ndarray) -> np.ndarray:
    """``frames`` float32 ``[n, FRAME]`` -> chroma ``[n, 12]`` summing to 1 (zeros when silent)."""
    x = np.asarray(frames, np.float32)
    lev = 10 * np.log10(np.mean(x.astype(np.float64) ** 2, axis=1) + 1e-20)
    # magnitudes, not powers: one loud harmonic should not stand for the whole note
    c = np.abs(np.fft.rfft(x * _win, axis=1)[:, _band]).astype(np.float32) @ _fold
    s = c.sum(axis=1, keepdims=True)
    c = np.where(s > 0, c / np.maximum(s, 1e-20), 0.0)
    c[lev < FLOOR_DB] = 0.0
    return c.astype(np.float32)


def stream_chroma(x: np.ndarray, last_end: int | None = None) -> np.ndarray:
    """``frame_chroma`` at every hop end of a stream from its start (sample ``HOP``) up to
    ``last_end`` (default: the stream's end); samples before the stream are zeros, as live."""
    x = np.asarray(x, np.float32)
    last = len(x) if last_end is None else int(last_end)
    xp = np.concatenate([np.zeros(FRAME, np.float32), x])
    ends = np.arange(HOP, last + 1, HOP)
    idx = ends[:, None] + np.arange(FRAME)[None, :]  # xp is x shifted by FRAME
    out = [frame_chroma(xp[idx[i : i + 256]]) for i in range(0, len(idx), 256)]
    return np.concatenate(out) if out else np.zeros((0, 12), np.float32)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    return (a * b).sum(-1) / (na * nb + 1e-9)


def stream_features(chroma: np.ndarray, context_s: float = 6.0) -> np.ndarray:
    """The cue after every hop of a stream (``stream_chroma``'s frames, from the stream's start):
    float32 ``[n, len(NAMES)]``, the numbers ``PhraseTrack`` gives live."""
    ch = np.asarray(chroma, np.float32)
    n, w = len(ch), max(2, int(round(context_s * SR / HOP)))
    if n == 0:
        return np.zeros((0, len(NAMES)), np.float32)
    peak, dom = ch.max(1), ch.argmax(1)
    tonal = peak >= TONAL
    cont = np.r_[False, tonal[1:] & tonal[:-1] & (dom[1:] == dom[:-1]) & (_cos(ch[1:], ch[:-1]) >= COS)]
    run = np.zeros(n, int)
    for i in range(n):
        run[i] = ((run[i - 1] + 1) if cont[i] else 1) if tonal[i] else 0
    steady = run >= STEADY
    sidx = np.flatnonzero(steady)
    ev = np.zeros(n)
    if len(sidx) > 1:
        ev[sidx[1:][dom[sidx[1:]] != dom[sidx[:-1]]]] = 1
    oh = np.zeros((n, 12))
    oh[sidx, dom[sidx]] = 1

    def roll(v: np.ndarray, k: int) -> np.ndarray:  # sum over the last k frames (inclusive)
        cs = np.concatenate([np.zeros((1, *v.shape[1:])), np.cumsum(v, 0)])
        i = np.arange(n)
        return cs[i + 1] - cs[np.maximum(0, i - k + 1)]

    n_pc = (roll(oh, w) > 0).sum(1)
    n_chg = np.minimum(roll(ev, w), 12)
    pool = roll(np.where(tonal[:, None], ch, 0.0), w)
    pn = pool / np.maximum(pool.sum(1, keepdims=True), 1e-12)
    spread = -(pn * np.log(np.maximum(pn, 1e-12))).sum(1) / np.log(12)
    return np.stack([n_pc / 12, n_chg / 12, spread, roll(tonal.astype(float), w) / w,
                     roll(tonal.astype(float), NOW) / NOW, roll(steady.astype(float), w) / w],
                    1).astype(np.float32)


class PhraseTrack:
    """The cue live: ``push`` the hop's newest ``FRAME`` samples once per hop, read the features.

    Keeps the last ``context_s`` of frames' chroma, tonal, steady and change flags in rings; the
    numbers equal ``stream_features`` over the same stream (tests/inference/test_phrase.py)."""

    def __init__(self, context_s: float = 6.0) -> None:
        self.n = max(2, int(round(context_s * SR / HOP)))
        self.reset()

    def reset(self) -> None:
        """Forget the stream (a new source)."""
        self._ch = np.zeros((self.n, 12), np.float32)  # tonal frames' chroma (zeros otherwise)
        self._tonal = np.zeros(self.n, bool)
        self._steady = np.full(self.n, -1, np.int64)  # the held pitch class, -1: not steady
        self._ev = np.zeros(self.n, bool)
        self._pos = 0
        self._prev = np.zeros(12, np.float32)
        self._prev_tonal, self._prev_dom, self._run, self._last_steady = False, -1, 0, -1

    def push(self, tail: np.ndarray) -> np.ndarray:
        """Add the frame ending at this hop (the last ``FRAME`` samples, model rate); return the
        features."""
        t = np.asarray(tail, np.float32)[-FRAME:]
        if len(t) < FRAME:
            t = np.pad(t, (FRAME - len(t), 0))
        return self.push_chroma(frame_chroma(t[None])[0])

    def push_chroma(self, c: np.ndarray) -> np.ndarray:
        """Add one frame's chroma (``frame_chroma``'s row); return the features."""
        c = np.asarray(c, np.float32)
        dom = int(c.argmax())
        tonal = bool(c[dom] >= TONAL)
        cont = tonal and self._prev_tonal and dom == self._prev_dom and float(_cos(c, self._prev)) >= COS
        self._run = (self._run + 1 if cont else 1) if tonal else 0
        steady = self._run >= STEADY
        ev = steady and self._last_steady >= 0 and dom != self._last_steady
        if steady:
            self._last_steady = dom
        i = self._pos
        self._ch[i] = c if tonal else 0.0
        self._tonal[i], self._steady[i], self._ev[i] = tonal, dom if steady else -1, ev
        self._pos = (i + 1) % self.n
        self._prev, self._prev_tonal, self._prev_dom = c, tonal, dom
        return self.features()

    def features(self) -> np.ndarray:
        """float32 ``[len(NAMES)]`` over the last ``context_s`` (see ``NAMES``)."""
        st = self._steady[self._steady >= 0]
        n_pc = int(np.count_nonzero(np.bincount(st, minlength=12))) if len(st) else 0
        pool = self._ch.sum(0, dtype=np.float64)
        pn = pool / max(float(pool.sum()), 1e-12)
        spread = float(-(pn * np.log(np.maximum(pn, 1e-12))).sum() / np.log(12))
        now = [(self._pos - 1 - k) % self.n for k in range(NOW)]
        return np.array([n_pc / 12, min(int(self._ev.sum()), 12) / 12, spread, self._tonal.mean(),
                         self._tonal[now].mean(), (self._steady >= 0).mean()], np.float32)


def head_inputs(cue: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The context head's inputs ``[n, 10]``: the cue, three products with "tonal now", the
    model's logit / 5 (train.presence.context fits the head on exactly these)."""
    q = np.clip(np.asarray(p, np.float64).reshape(-1), 1e-4, 1 - 1e-4)
    c = np.asarray(cue, np.float64).reshape(len(q), len(NAMES))
    return np.c_[c, c[:, 0] * c[:, 4], c[:, 1] * c[:, 4], c[:, 5] * c[:, 4], np.log(q / (1 - q)) / 5]


class PhraseHead:
    """The presence model's context head: ``raise_(p, cue)`` = max(p, sigmoid(w . inputs + b)).

    Why only upwards: the head was fit to rescue solo phrases the 2-s model misses; it never
    lowers what the model hears (grooves, EDM), so the gate's other kinds keep their numbers."""

    def __init__(self, coef: list[float] | np.ndarray, intercept: float, context_s: float) -> None:
        self.coef = np.asarray(coef, np.float64).reshape(-1)
        if self.coef.shape != (len(NAMES) + 4,) or not np.all(np.isfinite(self.coef)):
            raise ValueError(f"phrase head: {len(NAMES) + 4} finite weights expected, got {self.coef.shape}")
        self.intercept = float(intercept)
        if not (np.isfinite(self.intercept) and np.isfinite(context_s) and context_s > 0):
            raise ValueError("phrase head: intercept and context_s must be finite (context_s > 0)")
        self.context_s = float(context_s)

    @classmethod
    def from_card(cls, d: dict | None) -> PhraseHead | None:
        """The card's "phrase" section (``coef``, ``intercept``, ``context_s``) or None without one."""
        if not d:
            return None
        try:
            return cls(d["coef"], d["intercept"], d["context_s"])
        except (KeyError, TypeError) as e:
            raise ValueError(f"phrase head: bad card section ({e})") from None

    def prob(self, p: np.ndarray, cue: np.ndarray) -> np.ndarray:
        """The head's own probability for each (p, cue) row."""
        z = head_inputs(cue, p) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def raise_(self, p: np.ndarray, cue: np.ndarray) -> np.ndarray:
        """What the gate sees: max(p, head) (p as float32, as the CV computed it)."""
        pp = np.asarray(p, np.float32).reshape(-1)
        return np.maximum(pp.astype(np.float64), self.prob(pp, cue))
