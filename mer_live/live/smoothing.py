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
        self._y: list[float] | None = None

    def set_times(self, attack_s: float, release_s: float) -> None:
        """Change attack/release (seconds) while running; takes effect at the next update."""
        a = _check_time("attack_s", attack_s)
        r = _check_time("release_s", release_s)
        with self._lock:
            self.attack_s, self.release_s = a, r

    @property
    def value(self) -> np.ndarray:
        """The current smoothed output (0.5 before the first trusted input)."""
        return np.full(self.dims, NEUTRAL) if self._y is None else np.array(self._y)

    def reset(self) -> None:
        """Forget the state: the next trusted target is taken as is (a new source starts)."""
        self._y = None

    def update(self, target: np.ndarray, dt: float, silent: bool = False) -> np.ndarray:
        """Advance by ``dt`` seconds towards ``target`` and return the new values in [0, 1].

        ``silent`` (or a non-finite target) means the target is not trusted: hold or drift to
        neutral per ``on_silence``. The first trusted target is adopted at once (no slow ramp
        up from 0.5 when the show starts). Non-finite or negative ``dt`` counts as 0.
        """
        # Python floats, not numpy: two values ten times a second, where each numpy call costs more
        # than its arithmetic (issue #28); the same float64 operations in the same order, so the
        # same bits as the array version (tests/live/test_smoothing.py)
        dt = float(dt) if math.isfinite(dt) and dt > 0 else 0.0
        t = np.asarray(target, dtype=np.float64).reshape(-1).tolist()
        if len(t) != self.dims:
            raise ValueError(f"expected {self.dims} values, got {len(t)}")
        trusted = not silent and all(math.isfinite(v) for v in t)
        with self._lock:
            attack, release = self.attack_s, self.release_s
        y = self._y
        if not trusted:
            if y is None:  # nothing trusted yet: neutral, and the first music is adopted at once
                return np.full(self.dims, NEUTRAL)
            if self.on_silence == "neutral":
                a = _alpha(dt, self.neutral_s)
                y = [v + a * (NEUTRAL - v) for v in y]
            return self._out(y)
        t = [min(max(v, 0.0), 1.0) for v in t]
        if y is None:
            return self._out(t)
        up, down = _alpha(dt, attack), _alpha(dt, release)
        return self._out([v + (up if tv > v else down) * (tv - v) for v, tv in zip(y, t, strict=True)])

    def _out(self, y: list[float]) -> np.ndarray:
        # Belt and braces: whatever happened upstream, the wire gets finite values in [0, 1].
        self._y = [NEUTRAL if math.isnan(v) else min(max(v, 0.0), 1.0) for v in y]
        return np.array(self._y)
