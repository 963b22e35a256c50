"""The records the pipeline publishes to its sinks (OSC sender, dashboard, terminal, recorder).

Data flows one way: the pipeline creates an ``Estimate`` once per hop and an ``Event`` the moment
an analyser detects something (a beat, an onset, a section change), and hands them to each sink;
sinks never call back into the pipeline. Both are immutable, so sharing them across threads is
safe.
"""

from __future__ import annotations

import math
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
    #: music is playing and the model's values are live: False before the first music, while the
    #: input is silent or lost, and during talk, applause or noise (values held or drifting to
    #: neutral, quadrant 0)
    music: bool = True
    music_prob: float = 1.0  #: the music-presence model's probability for the newest window (0..1)
    bpm: float = 0.0  #: the beat tracker's smoothed tempo in beats per minute (0: not known)
    beats: int = 0  #: beats detected since the source started
    #: the music gate hears music, also in a song's first seconds before the emotion model's window
    #: is full (``music`` waits for that window): beats, tempo and onsets go out on it (issue #31)
    music_heard: bool = False

    @property
    def hears_music(self) -> bool:
        """Music plays, by the music gate's own word: from the gate's first window on, while the
        emotion values (``music``) wait for the model's 6-s window. What ``/mer/music``, the
        record's music column, MIDI's music CC and the window's music lamp show (issue #25)."""
        return self.music or self.music_heard

    @property
    def quadrant(self) -> int:
        """Russell quadrant 1..4 of the smoothed values while music plays, else 0 (no emotion)."""
        return quadrant_of(self.arousal, self.valence) if self.music else 0


def mood_label(e: Estimate) -> str:
    """``Q1 happy / excited`` while music plays; ``neutral`` before any music (the values are
    exactly 0.5); ``no music`` while the last music's values hold or drift between songs."""
    if e.music:
        return f"Q{e.quadrant} {QUADRANT_NAMES[e.quadrant]}"
    if e.arousal_raw == 0.5 and e.valence_raw == 0.5 and e.arousal == 0.5 and e.valence == 0.5:
        return "neutral"
    return "no music"


def beats_go_out(music: bool, rhythm: bool, silent: bool) -> bool:
    """Whether beat-like events (beats, onsets, bars, the tempo) go out: in music, or on a steady
    rhythm alone above the silence floor (a drum intro, a TR-808 groove, a crowd clapping in
    time), never in silence (a tracker's flywheel keeps counting for a few beats after a song).
    One rule for the pipeline and every analyser that counts published beats (``mer_live.analysers.bars``)."""
    return music or (rhythm and not silent)


def __getattr__(name: str) -> tuple[str, ...]:
    """``EVENT_KINDS``: every kind of event an analyser may publish (OSC ``/mer/<kind> i`` with the
    running count; for ``beat_in_bar`` the count is the beat's place in its bar 1..N, for ``bar``
    the bar's number in the song), declared by the analysers themselves (``mer_live.registry``)."""
    if name == "EVENT_KINDS":
        from mer_live.registry import event_kinds

        return event_kinds()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Event:
    """Something an analyser detected at one instant, published at once (not on the hop clock)."""

    kind: str  #: one of EVENT_KINDS
    count: int  #: running count of this kind since the source started (1 for the first)
    t: float  #: stream time of the event in seconds since the source started
    wall: float  #: time.monotonic() when it was detected
    bpm: float = 0.0  #: beats: the tempo estimate at this beat (0: not known yet)
    strength: float = math.nan  #: detector-specific salience (novelty, onset strength), if any
