"""The record the pipeline publishes once per hop to its sinks (OSC sender, dashboard, terminal).

Data flows one way: the pipeline creates an ``Estimate`` and hands it to each sink; sinks never
call back into the pipeline. An ``Estimate`` is immutable, so sharing it across threads is safe.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Russell quadrants, as numbered by the 4Q set and used on OSC ``/mer/quadrant i``.
QUADRANT_NAMES = {
    1: "happy / excited",  # high arousal, high valence
    2: "tense / angry",  # high arousal, low valence
    3: "sad / depressed",  # low arousal, low valence
    4: "calm / relaxed",  # low arousal, high valence
}


def quadrant_of(arousal: float, valence: float) -> int:
    """Russell quadrant 1..4 of a point on the [0, 1] plane (0.5 is neutral; ties go high)."""
    if arousal >= 0.5:
        return 1 if valence >= 0.5 else 2
    return 4 if valence >= 0.5 else 3


@dataclass(frozen=True)
class Estimate:
    """One hop's output. Values are on the [0, 1] scale, 0.5 neutral; never NaN."""

    t: float  #: stream time of the window's last sample, in seconds since the source started
    wall: float  #: time.monotonic() when the estimate was produced
    arousal_raw: float  #: model output for this window
    valence_raw: float
    arousal: float  #: smoothed (attack/release; held or drifting to neutral on silence)
    valence: float
    level_rms_db: float  #: input level of the newest hop, dBFS (-120 for digital silence)
    level_peak_db: float
    silent: bool  #: input below the silence threshold (model output is not trusted)
    clipping: bool  #: samples at or near full scale in the newest hop
    input_ok: bool  #: False while the input device is lost (values hold or drift to neutral)
    bad_samples: int  #: NaN/inf samples replaced by 0 in the newest hop
    model_ms: float  #: time spent in the onnxruntime session for this window
    latency_ms: float  #: from the window's last sample reaching the ring to this estimate
    overflows: int  #: input overflows reported by PortAudio plus frames lost in the ring, total
    hops_skipped: int  #: hops dropped because the pipeline fell behind, total

    @property
    def quadrant(self) -> int:
        return quadrant_of(self.arousal, self.valence)
