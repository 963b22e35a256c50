"""BeatNet's online particle filter (``particle_filtering_cascade``) in numpy, vectorised.

Why here: BeatNet's inference imports madmom (its BarStateSpace and transition model) and loops
over particles in Python; the live runtime has neither madmom nor time for that loop. This is the
same filter, frame by frame at 50 frames/s (Heydari et al. 2021, ``BeatNet/particle_filtering_cascade.py``):

- beat particles (1500) on madmom's bar-pointer state space for one beat, beat intervals 14..55
  frames (55-215 BPM, one state per frame of the beat); each frame a particle moves one state on,
  and from the last state of its interval jumps to the first state of an interval drawn from
  madmom's exponential tempo transition (lambda 60);
- the observation: the beat activation (max of beat and downbeat, set to 0.03 under 0.4) on the
  first state of each interval, 0.03 elsewhere; particles are resampled (one uniform draw per
  stratum) only when the activation is >= 0.4, and above 0.8 a few particles are first injected at
  the first states of every sixth interval (a fast re-lock after a tempo change);
- a beat is declared when the median particle lies in the first 4 states of its interval and more
  than 0.4 of its interval has passed since the last beat; then the downbeat particles (250, on
  the beat-in-bar state space for 2..4 beats a bar) step a beat and are resampled on the downbeat
  activation. The beat goes out as a downbeat when their mode is a first state and the downbeat
  activation > 0.4, else as a beat when the activation > 0.4.

``faithful=True`` mirrors BeatNet's own random draws one for one (``np.random``'s legacy stream,
seeded the same way: the parity test gets BeatNet's exact beat list) including its particle count
growing by up to 7 per strong frame (its ``np.delete`` result is dropped); ``faithful=False``
(the runtime) resamples back to 1500 and 250 particles, so that its cost stays flat.
"""

from __future__ import annotations

import numpy as np

FPS = 50
MIN_BPM, MAX_BPM = 55.0, 215.0
N_PARTICLES, N_DOWN = 1500, 250
LAMBDA_B, LAMBDA_D = 60.0, 0.1
IG_THRESHOLD = 0.4


def beat_intervals(min_interval: float, max_interval: float, num_intervals: int | None) -> np.ndarray:
    """madmom's BeatStateSpace intervals (linear when ``num_intervals`` does not limit them)."""
    iv = np.arange(np.round(min_interval), np.round(max_interval) + 1)
    if num_intervals is not None and num_intervals < len(iv):
        n, iv = num_intervals, np.zeros(0)
        while len(iv) < num_intervals:
            iv = np.unique(np.round(np.logspace(np.log2(min_interval), np.log2(max_interval), n, base=2)))
            n += 1
    return iv.astype(np.int64)


class StateSpace:
    """madmom's ``BarStateSpace(1, ...)``: each interval's states 0..iv-1 laid end to end."""

    def __init__(self, intervals: np.ndarray) -> None:
        self.intervals = intervals
        self.first = np.cumsum(np.r_[0, intervals[:-1]]).astype(np.int64)
        self.last = (np.cumsum(intervals) - 1).astype(np.int64)
        self.num_states = int(np.sum(intervals))
        self.interval_of = np.repeat(np.arange(len(intervals)), intervals)  #: state -> interval index
        self.state_intervals = intervals[self.interval_of]
        self.is_last = np.zeros(self.num_states, bool)
        self.is_last[self.last] = True
        self.is_first = np.zeros(self.num_states, bool)
        self.is_first[self.first] = True


def tempo_cdf(intervals: np.ndarray, lam: float) -> np.ndarray:
    """Row-wise cumulative tempo transition (madmom's ``exponential_transition``), as
    ``np.random.choice(p=...)`` builds it (cumsum, then divided by its last value)."""
    ratio = intervals.astype(np.float64) / intervals.astype(np.float64)[:, None]
    prob = np.exp(-lam * np.abs(ratio - 1.0))
    prob[prob <= np.spacing(1)] = 0
    prob /= np.sum(prob, axis=1)[:, None]
    cdf = np.cumsum(prob, axis=1)
    return cdf / cdf[:, -1:]


class ParticleFilter:
    """One stream's beat/downbeat filter: ``step(beat_act, down_act) -> 0 | 1 (downbeat) | 2 (beat)``."""

    def __init__(self, seed: int | None = 0, faithful: bool = False, rng: np.random.RandomState | None = None,
                 fps: int = FPS) -> None:
        self.rs = rng if rng is not None else np.random.RandomState(seed)
        self.faithful = faithful
        self.T = 1.0 / fps
        self.st = StateSpace(beat_intervals(60.0 * fps / MAX_BPM, 60.0 * fps / MIN_BPM, 300))
        self.st2 = StateSpace(beat_intervals(2, 4, 3))  # beats per bar 2..4
        self.cdf = tempo_cdf(self.st.intervals, LAMBDA_B)
        n2 = len(self.st2.first)
        tm2 = np.full((n2, n2), LAMBDA_D / (n2 - 1))
        np.fill_diagonal(tm2, 1.0 - LAMBDA_D)
        c2 = np.cumsum(tm2, axis=1)
        self.cdf2 = c2 / c2[:, -1:]
        self.last2_index = np.full(self.st2.num_states, -1)
        self.last2_index[self.st2.last] = np.arange(n2)
        self.near = int(0.07 / self.T) + 1  #: a beat while the median particle is this close to a first state
        self.particles = np.sort(self.rs.randint(0, self.st.num_states - 1, N_PARTICLES))
        self.down = np.sort(self.rs.randint(0, self.st2.num_states - 1, N_DOWN))
        self.counter = -1
        self.last_beat_t = 0.0
        self.last_label = 0
        self.obs = np.full(self.st.num_states, 0.03)

    def interval(self) -> int:
        """The beat interval (frames) of the median particle: the filter's tempo now."""
        return int(self.st.state_intervals[int(np.median(self.particles))])

    def bpm(self) -> float:
        return 60.0 / (self.interval() * self.T)

    def _resample(self, particles: np.ndarray, weights: np.ndarray, n_out: int) -> np.ndarray:
        """BeatNet's ``universal_resample``: one uniform draw in each of ``n_out`` strata."""
        w = weights / np.cumsum(weights)[-1]  # the builtin sum's order, as BeatNet
        cw = np.cumsum(w)
        u = self.rs.uniform(0, 1 / n_out, n_out) + np.arange(n_out) * (1 / n_out)
        return particles[np.minimum(np.searchsorted(cw, u), len(particles) - 1)]

    def step(self, beat_act: float, down_act: float) -> int:
        """One frame's activations; returns 1 for a downbeat, 2 for a beat, 0 for none."""
        st, st2, rs = self.st, self.st2, self.rs
        act = max(beat_act, down_act)
        if act < IG_THRESHOLD:
            act = 0.03
        self.counter += 1
        t = self.counter * self.T
        out = 0
        g = int(np.median(self.particles))
        iv = st.state_intervals[g]
        if g - st.first[st.interval_of[g]] < self.near and t - self.last_beat_t > 0.4 * self.T * iv:
            d = self.down
            at_last = st2.is_last[d]
            lasts = d[at_last]
            new = self._jump(self.cdf2, self.last2_index[lasts], st2.first)
            d = np.concatenate([d[~at_last] + 1, new])
            strong = down_act > 0.7
            if strong:
                d = np.concatenate([d, st2.first])
            obs2 = np.where(st2.is_first, down_act, beat_act)
            n_out = len(d) if self.faithful else N_DOWN
            d = self._resample(d, obs2[d], n_out)
            if strong and self.faithful:  # BeatNet drops one of the three it added
                d = np.delete(d, rs.permutation(N_DOWN)[:1])
            self.down = d
            mode = int(np.argmax(np.bincount(d)))
            if st2.is_first[mode] and self.last_label != 1 and down_act > 0.4:
                out = 1
            elif act > 0.4:
                out = 2
            if out:
                self.last_beat_t, self.last_label = t, out
        p = self.particles
        at_last = st.is_last[p]
        new = self._jump(self.cdf, st.interval_of[p[at_last]], st.first)
        p = np.concatenate([p[~at_last] + 1, new])
        if act > 0.1:
            if act > 0.8:
                p = np.concatenate([p, st.first[np.arange(rs.randint(4), len(st.first), 6)]])
            self.obs[st.first] = act
            p = self._resample(p, self.obs[p], len(p) if self.faithful else N_PARTICLES)
            if act > 0.8 and self.faithful:
                rs.permutation(N_PARTICLES)  # BeatNet draws the particles to drop, then keeps them all
        self.particles = p
        return out

    def _jump(self, cdf: np.ndarray, rows: np.ndarray, firsts: np.ndarray) -> np.ndarray:
        """From the last state of interval ``rows[k]`` to the first state of a drawn interval: one
        uniform draw each, in order (``np.random.choice(p=...)`` one particle at a time)."""
        if len(rows) == 0:
            return np.zeros(0, np.int64)
        u = self.rs.random_sample(len(rows))
        c = cdf[rows]
        j = (c <= u[:, None]).sum(axis=1)  # searchsorted(side="right") per row
        return firsts[np.minimum(j, c.shape[1] - 1)]
