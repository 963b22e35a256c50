"""Tunings close to solo phrases: the presence model's harder "not music" (issue #25).

The music-kinds corpus taught the presence model that one instrument alone playing notes with
pauses is music, and ``negatives.tuning`` (45 items, 25 GM programs) says that one instrument
alone playing notes with pauses is not. On 2-s windows the two pull against each other, and an
instrument heard in training only as a tuning (a held-out trombone solo) reads as "no music".
These items play EVERY solo instrument of ``showmusic.SOLO`` the way a player checks it before a
song, with the same expression (vibrato, swells on bowed, blown and sung lines) as the solo
phrases, so timbre alone cannot tell them apart; what does is the structure: one pitch (or a
string and its neighbour) again and again, drifting into tune, with long pauses, never a phrase.

Modes (``seed % 4``):

* 0 ``held``: one note held 2..6 s, its pitch drifting into tune (a slow bend), again and again.
* 1 ``plucks``: single notes with a long decay, the same pitch (sometimes its octave), 1..3-s pauses.
* 2 ``strings``: a note repeated 2..5 times, a pause, the next string a fourth or fifth up, ...
* 3 ``octaves``: the reference note, its octave (or fifth), back, bent into tune, long pauses.

Group ``tuning-close:INSTRUMENT``: cross-validation holds an instrument out as music and as a
tuning together (``train.presence.data.tie_tuning_folds``). Over room tone, sometimes in a room,
at -40..-12 dBFS, as ``negatives.tuning``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .negatives import TUNING_PROGRAMS, _bend, _note, _rng, at_db, render, room, room_tone

MODES = ("held", "plucks", "strings", "octaves")


def instruments() -> dict[str, tuple[int, int, int, str]]:
    """The solo instruments (``showmusic.SOLO``: name -> program, lowest, highest key, style)."""
    from .showmusic import SOLO

    return dict(SOLO)


def tuning_program(seed: int) -> int:
    """The GM program ``negatives.tuning(seed=seed)`` plays (its first draw), so its items can be
    held out with the solo instrument of that program."""
    return int(_rng(seed).choice(TUNING_PROGRAMS))


def close_tuning(instrument: str, seconds: float, sr: int, seed: int) -> np.ndarray:
    """``instrument`` (a ``showmusic.SOLO`` name) tuned or checked for ``seconds``: mode
    ``seed % 4`` (MODES); float32 mono at ``sr``, staged like ``negatives.tuning``."""
    prog, lo, hi, style = instruments()[instrument]
    rng = _rng([seed, 7])
    mode = MODES[seed % 4]
    ev: list[tuple[float, bytes]] = [(0.0, bytes([0xC0, prog])), (0.0, bytes([0xB0, 7, 110]))]
    ev.append(_bend(0.0, 0.0))
    bowed = style in ("legato", "drone")
    if bowed:
        ev.append((0.0, bytes([0xB0, 1, int(rng.integers(20, 70))])))  # the solo phrases' vibrato
    key = int(rng.integers(lo + 3, max(lo + 4, min(hi - 12, lo + 24))))
    off = float(rng.uniform(-60, 60))
    t = float(rng.uniform(0, 1.5))

    def swell(s: float, d: float) -> None:
        if bowed:
            for j in range(4):
                ev.append((s + d * j / 4, bytes([0xB0, 11, int(80 + 40 * np.sin(np.pi * j / 4))])))

    def closer(o: float) -> float:
        return o * float(rng.uniform(0.3, 0.9)) if abs(o) > 3 else float(rng.uniform(-8, 8))

    i = 0
    while t < seconds:
        vel = int(rng.integers(55, 115))
        if mode == "held":
            d = float(rng.uniform(2.0, 6.0))
            ev += _note(t, d, key + (12 if rng.random() < 0.15 else 0), vel)
            for j in range(12):  # drifting towards pitch over the held note
                ev.append(_bend(t + d * j / 12, off * (1 - j / 12) + rng.uniform(-4, 4)))
            swell(t, d)
            t += d + float(rng.uniform(0.5, 2.5))
        elif mode == "plucks":
            d = float(rng.uniform(1.5, 4.0))
            ev.append(_bend(t, off))
            ev += _note(t, d, key + (12 if rng.random() < 0.2 else 0), vel)
            swell(t, d)
            t += d + float(rng.uniform(1.0, 3.0))
        elif mode == "strings":
            k = key + (5, 5, 5, 4, 5, 7)[i % 6] * (i % 4)  # the open strings, a fourth (or fifth) apart
            for _ in range(int(rng.integers(2, 6))):
                d = float(rng.uniform(0.3, 1.5))
                ev.append(_bend(t, off))
                ev += _note(t, d, min(k, hi), int(rng.integers(55, 115)))
                swell(t, d)
                t += d + float(rng.uniform(0.2, 1.2))
            t += float(rng.uniform(1.0, 3.0))
        else:  # octaves: the reference, its octave or fifth, back
            up = 12 if rng.random() < 0.7 else 7
            for k in (key, min(key + up, hi), key):
                d = float(rng.uniform(0.8, 2.5))
                ev.append(_bend(t, off))
                ev += _note(t, d, k, vel)
                swell(t, d)
                t += d + float(rng.uniform(0.3, 1.2))
            t += float(rng.uniform(1.0, 3.0))
        off = closer(off)
        i += 1
    x = at_db(render(ev, seconds, sr), 0.0)
    if rng.random() < 0.6:
        x = room(x, sr, seed + 1, (0.3, 1.2))
    x = at_db(x, 0.0) + at_db(room_tone(seconds, sr, seed + 2), -rng.uniform(20, 45))
    return at_db(x, rng.uniform(-40, -12)).astype(np.float32)


def items(per_instrument: int, sr: int = 16000, seed: int = 0, seconds: float = 30.0
          ) -> Iterator[tuple[str, str, np.ndarray]]:
    """``per_instrument`` items of every solo instrument, the modes in turn:
    ``(group, name, audio)``, group ``tuning-close:INSTRUMENT``."""
    for j, name in enumerate(instruments()):
        for i in range(per_instrument):
            s = seed * 100_000 + 50_000 + j * 100 + i
            yield f"tuning-close:{name}", f"tuning-close-{s}-{name}", close_tuning(name, seconds, sr, s)
