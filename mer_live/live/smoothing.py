"""Attack/release smoothing of arousal and valence, with a policy for silence and lost input.

Raw model output jumps from hop to hop; lights driven by it flicker. ``Smoother`` is a one-pole
low-pass per dimension with separate time constants for rising (attack) and falling (release)
values, so a build-up can register quickly while a dip decays gently. It is dt-aware: the
smoothing depends on elapsed seconds, not on how many hops arrived, so changing the hop or
skipping hops does not change how fast values move.

When the input is silent or lost, the model's output means nothing: ``on_silence="hold"`` keeps
the last value (the lights freeze), ``"neutral"`` drifts towards 0.5 with time constant
``neutral_s`` (the lights relax).
"""

from __future__ import annotations

import math
import threading

import numpy as np

NEUTRAL = 0.5
ON_SILENCE = ("hold", "neutral")


def _alpha(dt: float, tau: float) -> float:
    """Fraction of the way to the target covered in ``dt`` seconds with time constant ``tau``."""
    if tau <= 0.0:
        return 1.0
    return 1.0 - math.exp(-dt / tau)


def _check_time(name: str, v: float) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {v!r}")
    return float(v)


class Smoother:
    """Per-dimension one-pole smoother with attack/release times in seconds (0 = no smoothing)."""

    def __init__(
        self,
        attack_s: float = 0.3,
        release_s: float = 1.0,
        on_silence: str = "hold",
        neutral_s: float = 4.0,
        dims: int = 2,
    ) -> None:
        if on_silence not in ON_SILENCE:
            raise ValueError(f"on_silence must be one of {ON_SILENCE}, got {on_silence!r}")
        self.on_silence = on_silence
        self.neutral_s = _check_time("neutral_s", neutral_s)
        self.dims = dims
        self._lock = threading.Lock()  # set_times comes from the GUI thread
        self.set_times(attack_s, release_s)
        self._y: np.ndarray | None = None

    def set_times(self, attack_s: float, release_s: float) -> None:
        """Change attack/release (seconds) while running; takes effect at the next update."""
        a = _check_time("attack_s", attack_s)
        r = _check_time("release_s", release_s)
        with self._lock:
            self.attack_s, self.release_s = a, r

    @property
    def value(self) -> np.ndarray:
        """The current smoothed output (0.5 before the first trusted input)."""
        return np.full(self.dims, NEUTRAL) if self._y is None else self._y.copy()

    def reset(self) -> None:
        """Forget the state: the next trusted target is taken as is (a new source starts)."""
        self._y = None

    def update(self, target: np.ndarray, dt: float, silent: bool = False) -> np.ndarray:
        """Advance by ``dt`` seconds towards ``target`` and return the new values in [0, 1].

        ``silent`` (or a non-finite target) means the target is not trusted: hold or drift to
        neutral per ``on_silence``. The first trusted target is adopted at once (no slow ramp
        up from 0.5 when the show starts). Non-finite or negative ``dt`` counts as 0.
        """
        dt = float(dt) if math.isfinite(dt) and dt > 0 else 0.0
        t = np.asarray(target, dtype=np.float64).reshape(-1)
        if t.shape[0] != self.dims:
            raise ValueError(f"expected {self.dims} values, got {t.shape[0]}")
        trusted = not silent and bool(np.all(np.isfinite(t)))
        with self._lock:
            attack, release = self.attack_s, self.release_s
        if not trusted:
            if self._y is None:  # nothing trusted yet: neutral, and the first music is adopted at once
                return np.full(self.dims, NEUTRAL)
            if self.on_silence == "neutral":
                self._y = self._y + _alpha(dt, self.neutral_s) * (NEUTRAL - self._y)
            return self._out()
        t = np.clip(t, 0.0, 1.0)
        if self._y is None:
            self._y = t.copy()
            return self._out()
        rising = t > self._y
        a = np.where(rising, _alpha(dt, attack), _alpha(dt, release))
        self._y = self._y + a * (t - self._y)
        return self._out()

    def _out(self) -> np.ndarray:
        assert self._y is not None
        # Belt and braces: whatever happened upstream, the wire gets finite values in [0, 1].
        self._y = np.clip(np.nan_to_num(self._y, nan=NEUTRAL), 0.0, 1.0)
        return self._y.copy()
