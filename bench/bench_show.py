"""A whole show through the live path: songs of several kinds, hard cuts and crossfades, talk,
applause and silence between them, scored against a per-second truth timeline.

    python -m bench.bench_show [--seed 0] [--paced] [--no-teacher] [--extra MODULE:FUNC] [--no-record]

Why: every other number here is scored on isolated 30-s clips, while a show is a stream. This one
asks what a lighting operator sees: is the music flag right for every kind of sound, do the
values land in the right quadrant, how fast do they follow a song change, are beats where the
drummer is, and does anything fire between songs.

The show (``--seed``; rebuilt the same every run) is assembled from:

* ``4q``: 4Q clips (../shared/data/4q). NOT held out for the emotion model: the shipped default
  was trained on all 716; their quadrant accuracy here is an upper bound, their settle times
  still measure dynamics;
* ``emopia``: EMOPIA piano MIDI clips rendered with FluidSynth (train/midi.py): the emotion model
  never trained on EMOPIA, so their quadrant accuracy is held out;
* ``groove``: drum grooves with bass (tests/grooves.py) at drawn tempi: their beats are known;
* between songs: ``talk`` (espeak-ng announcements, train/negatives.py, seeds the presence model
  never drew), ``applause`` and ``silence``;
* ``--extra MODULE:FUNC``: more kinds (e.g. the music-kinds corpus of train/showmusic.py once it
  lands): ``FUNC(sr, seed)`` returns ``Song`` objects or dicts with the same fields.

Songs come in sets of three joined by hard cuts (or a crossfade), alternating opposite quadrants
where the labels allow; sets are joined by a crossfade or an interlude (talk, applause, silence).

The live path: the real ``Pipeline`` with a ``FileSource`` and the defaults (the music gate, the
fused model with its teacher, the beat tracker, the section detector). Unpaced (the default) it
evaluates every hop boundary, the same windows a live run evaluates; the teacher then runs each
patch at once on the pipeline's thread (live, its thread answers within ~0.1 s on this machine),
so every run gives the same numbers. ``--paced`` plays the show in real time with the real teacher
thread (20+ minutes).

Definitions (hops of 0.1 s; the smoothed outputs, what goes out on the wire):

* quadrant: Q1 arousal >= 0.5 and valence >= 0.5, Q2 a >= 0.5 > v, Q3 both < 0.5, Q4 a < 0.5 <= v;
* a song's steady quadrant: the most frequent output quadrant from 15 to 22 s into the song (by
  then the model's 6-s window holds only this song): scored against its label per song;
* the reference of a song: the same live path (fresh: new pipeline, gate and teacher) on that song
  alone; its output quadrant at each song time (before its first reading, ~6 s in when the
  model's window is full: that first reading) is what the show's output should be once the last
  song no longer counts. Songs change inside (an intro, a break), so a fixed target would
  charge the song's own changes to the settle time;
* settle time after a change at t0 (a hard cut, a crossfade's midpoint, music after an
  interlude): the first time from which the show's output quadrant equals the reference's at the
  same song time for ``SETTLE_HOLD_S`` (3 s) without a break, minus t0 ("never": not within 22 s).
  Counted where the output quadrant of the 2 s before t0 (its most frequent) differs from the
  reference's first 3 s (the values have somewhere else to go); "opposite" when that is the
  opposite quadrant (Q1 <-> Q3, Q2 <-> Q4);
* gate accuracy per kind: share of hops whose music flag equals the truth, from 2 s after a
  segment starts (the gate's hysteresis is allowed its 2 s);
* quadrant accuracy: share of song hops from 8 s after its start to its end whose output quadrant
  equals the label (and, per song, the steady quadrant against the label);
* quadrant changes inside songs: how often the output quadrant changes from 8 s into a song to its
  end, per minute (what faster settling may cost in steadiness);
* beat F-measure: mir_eval's F-measure at +-70 ms, per groove, of the ``/mer/beat`` events inside
  it against its grid (whole song, and from 5 s in as bench_beat trims: after the lock);
* between songs (talk, applause, silence, from 2 s after they start): beat and section events that
  reached the sinks, and the seconds of emotion estimates (music=True), per minute.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.common import ROOT, SHARED_DATA, md_table, record, run_cli

SR = 22050
HOP_S = 0.1
SETTLE_HOLD_S = 3.0
STEADY = (15.0, 22.0)
STEADY_SHARE = 0.7
GATE_GRACE_S = 2.0
QUAD_AFTER_S = 8.0
SONG_RMS_DB = -20.0
CROSSFADE_S = 4.0
PNG = ROOT / "docs" / "show-benchmark.png"
#: PipelineConfig settings other than the defaults (``--attack``, ``--release``: the trade-off)
OVERRIDES: dict[str, float] = {}
MUSIC_KINDS_NOTE = "4q (trained on), emopia (held out), groove (no label)"


@dataclass
class Song:
    """One song of the show: mono audio at ``sr``, its kind, id, label quadrant (1..4 or None) and
    beat times in seconds from its start (None: not known)."""

    audio: np.ndarray
    sr: int
    kind: str
    song_id: str
    quadrant: int | None = None
    beats: np.ndarray | None = None


@dataclass
class Segment:
    """A stretch of the show's truth timeline."""

    kind: str  #: a song's kind, or talk / applause / silence
    start: float
    end: float
    music: bool
    song_id: str = ""
    quadrant: int | None = None
    beats: np.ndarray | None = None  #: absolute times (s)
    change: str = ""  #: how this song began: cut, crossfade, after <interlude>, first
    change_t: float = 0.0  #: the instant of the change (a crossfade's midpoint)
    audio_t: float = 0.0  #: where the song's own audio begins (a crossfade's start)


@dataclass
class Show:
    audio: np.ndarray
    sr: int
    segments: list[Segment] = field(default_factory=list)
    alone: dict[str, np.ndarray] = field(default_factory=dict)  #: each song's own audio, by id

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sr


# ----------------------------------------------------------------------------- material


def _trim(x: np.ndarray, sr: int, below_db: float = 30.0) -> np.ndarray:
    """Without leading and trailing quiet (50-ms frames ``below_db`` under the whole's RMS: a MIDI
    file's lead-in, a fade): a DJ cuts on the music."""
    n = max(1, int(0.05 * sr))
    frames = len(x) // n
    if frames == 0:
        return x
    rms = np.sqrt(np.mean(x[: frames * n].astype(np.float64).reshape(frames, n) ** 2, axis=1) + 1e-20)
    whole = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12)
    loud = np.where(20 * np.log10(rms / whole) > -below_db)[0]
    return x[loud[0] * n : (loud[-1] + 1) * n] if len(loud) else x


def _at_rms(x: np.ndarray, db: float) -> np.ndarray:
    r = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12)
    y = x * (10 ** (db / 20) / r)
    peak = float(np.max(np.abs(y))) + 1e-12
    return (y / peak * 0.98 if peak > 0.98 else y).astype(np.float32)


def _resample(x: np.ndarray, sr_in: int, sr: int) -> np.ndarray:
    if sr_in == sr:
        return x.astype(np.float32)
    import soxr

    return soxr.resample(x, sr_in, sr).astype(np.float32)


def fourq_songs(sr: int, seed: int, per_q: int = 7) -> list[Song]:
    """``per_q`` 4Q clips per quadrant (seeded draw, one clip per artist)."""
    import csv

    root = SHARED_DATA / "4q"
    rows = list(csv.DictReader(open(root / "labels.csv", newline="", encoding="utf-8")))
    rng = np.random.default_rng(seed)
    out, artists = [], set()
    for q in (1, 2, 3, 4):
        cand = [r for r in rows if r["quadrant"] == f"Q{q}"]
        n = 0
        for i in rng.permutation(len(cand)):
            r = cand[i]
            if r["artist"] in artists:
                continue
            x, fsr = sf.read(str(root / "audio" / f"{r['song']}.mp3"), dtype="float32", always_2d=True)
            x = _resample(x.mean(axis=1), fsr, sr)
            if len(x) < 28 * sr:
                continue
            artists.add(r["artist"])
            out.append(Song(_at_rms(_trim(x, sr), SONG_RMS_DB), sr, "4q", r["song"], q))
            n += 1
            if n == per_q:
                break
    return out


def emopia_songs(sr: int, seed: int, per_q: int = 3, cache: Path | None = None) -> list[Song]:
    """``per_q`` EMOPIA clips per quadrant of at least 28 s (one per source video), rendered with
    FluidSynth and the J800 piano (train/midi.py) into ``cache`` once."""
    import mido

    from train.midi import emopia_song, render_midi

    root = SHARED_DATA / "emopia"
    cache = cache or _cache() / "emopia-render"
    cache.mkdir(parents=True, exist_ok=True)
    sf2 = SHARED_DATA / "soundfonts" / "J800_Piano.sf2"
    rng = np.random.default_rng(seed + 1)
    out = []
    with zipfile.ZipFile(root / "midis.zip") as z:
        members = sorted(m for m in z.namelist() if m.endswith(".mid"))
        used: set[str] = set()
        for q in (1, 2, 3, 4):
            cand = [m for m in members if Path(m).stem.startswith(f"Q{q}_")]
            n = 0
            for i in rng.permutation(len(cand)):
                stem = Path(cand[i]).stem
                if emopia_song(stem) in used:
                    continue
                mid = cache / f"{stem}.mid"
                if not mid.is_file():
                    mid.write_bytes(z.read(cand[i]))
                if mido.MidiFile(str(mid)).length < 28.0:
                    continue
                wav = render_midi(mid, sf2, cache / f"{stem}.wav", sr=sr)
                x, fsr = sf.read(str(wav), dtype="float32")
                x = _resample(x, fsr, sr)
                used.add(emopia_song(stem))
                out.append(Song(_at_rms(_trim(x, sr)[: 40 * sr], SONG_RMS_DB), sr, "emopia", stem, q))
                n += 1
                if n == per_q:
                    break
    return out


def groove_songs(sr: int, seed: int, n: int = 6) -> list[Song]:
    """Drum grooves with a bass line (tests/grooves.py) at drawn tempi, 32-40 s: beats known."""
    from tests.grooves import groove

    rng = np.random.default_rng(seed + 2)
    out = []
    for k in range(n):
        bpm = float(rng.choice([90, 100, 110, 120, 128, 140, 150, 160]))
        x, beats = groove(bpm, float(rng.uniform(32, 40)), sr, swing=float(rng.choice([0.0, 0.2])),
                          fills=bool(k % 2), four_on_floor=bool(k % 3 == 0), seed=1000 + seed * 10 + k)
        out.append(Song(_at_rms(x, SONG_RMS_DB), sr, "groove", f"groove-{bpm:g}bpm-{k}", None, beats))
    return out


def _cache() -> Path:
    """Training's cache folder (``train/paths.py``: ``$MER_CACHE``, else the repository's cache/)."""
    from train.paths import cache_dir

    return cache_dir()


def interlude(kind: str, sr: int, seed: int) -> np.ndarray:
    """Talk, applause or silence between songs (train/negatives.py; seeds from 70000 on, which the
    presence model's bank never drew)."""
    from train import negatives as neg

    rng = np.random.default_rng(seed)
    s = 70000 + seed
    if kind == "talk":
        return neg.talk(float(rng.uniform(8, 14)), sr, "espeak-ng", f"en+{rng.choice(['m3', 'f2', 'm1'])}", s)
    if kind == "applause":
        return neg.applause(float(rng.uniform(6, 10)), sr, s, density=float(rng.uniform(50, 300)))
    if kind == "silence":
        return neg.silence(float(rng.uniform(3, 6)), sr, s)
    raise ValueError(f"unknown interlude {kind!r}")


def extra_songs(spec: str, sr: int, seed: int) -> list[Song]:
    """Songs from a plug-in ``MODULE:FUNC`` (``FUNC(sr, seed)`` -> Songs or dicts of Song's fields)."""
    mod, _, fn = spec.partition(":")
    if not fn:
        raise SystemExit(f"--extra wants MODULE:FUNC, got {spec!r}")
    got = getattr(importlib.import_module(mod), fn)(sr, seed)
    out = []
    for s in got:
        s = s if isinstance(s, Song) else Song(**s)
        x = _resample(np.asarray(s.audio, np.float32).reshape(-1), s.sr, sr)
        out.append(Song(_at_rms(x, SONG_RMS_DB), sr, s.kind, s.song_id, s.quadrant,
                        None if s.beats is None else np.asarray(s.beats, float)))
    return out


# ----------------------------------------------------------------------------- assembly

OPPOSITE = {1: 3, 3: 1, 2: 4, 4: 2}


def sets_of(songs: list[Song], rng: np.random.Generator) -> list[list[Song]]:
    """Sets of (up to) three songs of one kind, alternating opposite quadrants where labelled."""
    by_kind: dict[str, list[Song]] = {}
    for s in songs:
        by_kind.setdefault(s.kind, []).append(s)
    sets = []
    for ss in by_kind.values():
        pool = [ss[i] for i in rng.permutation(len(ss))]
        while pool:
            first = pool.pop(0)
            cur = [first]
            while len(cur) < 3 and pool:
                want = OPPOSITE.get(cur[-1].quadrant or 0)
                j = next((i for i, s in enumerate(pool) if want is not None and s.quadrant == want), 0)
                cur.append(pool.pop(j))
            sets.append(cur)
    return [sets[i] for i in rng.permutation(len(sets))]


def assemble(songs: list[Song], sr: int, seed: int) -> Show:
    """The show: sets of songs joined by hard cuts (one in four a crossfade); between sets an
    interlude (talk, applause, talk + applause, silence) or a crossfade."""
    rng = np.random.default_rng(seed + 3)
    sets = sets_of(songs, rng)
    parts: list[np.ndarray] = []
    segs: list[Segment] = []
    alone: dict[str, np.ndarray] = {}
    t = 0.0
    between = ["talk", "applause", "crossfade", "silence", "talk+applause", "crossfade"]
    pending = "first"
    for k, st in enumerate(sets):
        for i, s in enumerate(st):
            how = pending if i == 0 else ("crossfade" if rng.random() < 0.25 else "cut")
            x = s.audio
            if how == "crossfade" and parts:
                n = int(CROSSFADE_S * sr)
                ramp = np.linspace(0, 1, n, dtype=np.float32)
                prev = parts[-1]
                tail = prev[-n:] * (1 - ramp) + x[:n] * ramp
                parts[-1] = prev[:-n]
                parts.append(tail.astype(np.float32))
                parts.append(x[n:])
                start = t - CROSSFADE_S
                segs[-1].end = start + CROSSFADE_S / 2
                change_t = start + CROSSFADE_S / 2
                seg_start = change_t
                t = start + len(x) / sr
            else:
                parts.append(x)
                start = seg_start = change_t = t
                t += len(x) / sr
            beats = None if s.beats is None else s.beats + start
            segs.append(Segment(s.kind, seg_start, t, True, s.song_id, s.quadrant, beats, how, change_t,
                                start))
            alone[s.song_id] = s.audio
        if k == len(sets) - 1:
            break
        pick = between[k % len(between)]
        if pick == "crossfade":
            pending = "crossfade"
            continue
        for j, kind in enumerate(pick.split("+")):
            y = interlude(kind, sr, seed * 100 + k * 3 + j)
            parts.append(y.astype(np.float32))
            segs.append(Segment(kind, t, t + len(y) / sr, False))
            t += len(y) / sr
        pending = f"after {pick}"
    audio = np.concatenate(parts).astype(np.float32)
    return Show(audio, sr, segs, alone)


def truth_per_second(show: Show) -> list[dict]:
    """The truth timeline, one row per second (at the second's middle)."""
    rows = []
    for s in range(int(show.seconds)):
        tm = s + 0.5
        seg = next((g for g in show.segments if g.start <= tm < g.end), show.segments[-1])
        beats = [] if seg.beats is None else [round(float(b), 3) for b in seg.beats if s <= b < s + 1]
        rows.append({"t": s, "kind": seg.kind, "song": seg.song_id, "quadrant": seg.quadrant,
                     "music": seg.music, "beats": beats if seg.beats is not None else None})
    return rows


# ----------------------------------------------------------------------------- live path


class Collector:
    """A sink: every estimate and every event that reached the sinks."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, float, float, bool, float]] = []
        self.events: list = []

    def __call__(self, e) -> None:
        self.rows.append((e.t, e.arousal, e.valence, e.music, e.music_prob))

    def event(self, ev) -> None:
        self.events.append(ev)


def sync_teacher(fusion):
    """A TeacherThread that runs each patch at once on the caller's thread (unpaced: the teacher
    keeps pace with stream time whatever the machine does, so runs repeat exactly)."""
    from mer_live.inference.fusion import TeacherThread

    class SyncTeacher(TeacherThread):
        def start(self) -> None:  # no thread
            pass

        def stop(self) -> None:
            pass

        def submit(self, patch: np.ndarray, t_end: float, **kw) -> None:
            z = self.fusion.logits(np.asarray(patch, np.float32)[None, :])[0]
            land = getattr(self, "_land", None)  # the same hand-over as the thread's (older code: append)
            if land is not None:
                land(t_end, z, **kw)
            elif np.all(np.isfinite(z)):
                with self._cv:
                    self._done.append((t_end, z))

    return SyncTeacher(fusion)


def run_live(show: Show, paced: bool, teacher: bool) -> tuple[Collector, float]:
    """The show through the real Pipeline at the defaults; (what reached the sinks, wall seconds)."""
    from mer_live.analysers.beat import BeatConfig, make_tracker
    from mer_live.analysers.sections import SectionConfig, SectionDetector
    from mer_live.inference.fusion import Fusion, TeacherThread
    from mer_live.inference.model import Model, default_model_path
    from mer_live.inference.presence import MusicGate, PresenceModel
    from mer_live.live.pipeline import Pipeline, PipelineConfig
    from mer_live.sources.filesource import FileSource

    model = Model(default_model_path(), provider="cpu", threads=1)
    th = None
    if teacher:
        fusion = Fusion.of(model)
        th = (TeacherThread(fusion) if paced else sync_teacher(fusion)) if fusion is not None else None
    sections = SectionDetector(SectionConfig())
    col = Collector()
    src = FileSource(show.audio, show.sr, realtime=paced, name="show")
    pipe = Pipeline(src, model, PipelineConfig(**OVERRIDES), [col, sections.observe],
                    presence=PresenceModel(None, provider="cpu", threads=1), gate=MusicGate(),
                    analysers=[make_tracker(BeatConfig()), sections], teacher=th)
    t0 = time.monotonic()
    pipe.start()
    while not pipe.join(1.0):
        pass
    pipe.stop()
    return col, time.monotonic() - t0


def run_alone(show: Show, teacher: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each song alone through a fresh live path (the same models and settings): song time and
    output quadrant of every music estimate, the reference a settled show output must match."""
    from mer_live.inference.fusion import Fusion
    from mer_live.inference.model import Model, default_model_path
    from mer_live.inference.presence import MusicGate, PresenceModel
    from mer_live.live.pipeline import Pipeline, PipelineConfig
    from mer_live.sources.filesource import FileSource

    model = Model(default_model_path(), provider="cpu", threads=1)
    presence = PresenceModel(None, provider="cpu", threads=1)
    fusion = Fusion.of(model) if teacher else None
    out = {}
    for sid, x in show.alone.items():
        col = Collector()
        src = FileSource(x, show.sr, realtime=False, name=sid)
        pipe = Pipeline(src, model, PipelineConfig(**OVERRIDES), [col], presence=presence, gate=MusicGate(),
                        teacher=sync_teacher(fusion) if fusion is not None else None)
        pipe.start()
        while not pipe.join(1.0):
            pass
        pipe.stop()
        r = np.array([row for row in col.rows if row[3]], dtype=np.float64).reshape(-1, 5)
        out[sid] = (r[:, 0], quadrant(r[:, 1], r[:, 2]))
    return out


# ----------------------------------------------------------------------------- scoring


def quadrant(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    hi_a, hi_v = a >= 0.5, v >= 0.5
    return np.where(hi_a, np.where(hi_v, 1, 2), np.where(hi_v, 4, 3))


@dataclass
class Scores:
    table: str
    settle: list[dict]
    summary: dict


def score(show: Show, col: Collector, ref: dict[str, tuple[np.ndarray, np.ndarray]]) -> Scores:
    import mir_eval

    r = np.array(col.rows, dtype=np.float64)
    t, a, v, music = r[:, 0], r[:, 1], r[:, 2], r[:, 3] > 0.5
    q = quadrant(a, v)
    songs = [g for g in show.segments if g.music]

    def span(lo: float, hi: float) -> np.ndarray:
        return (t >= lo) & (t < hi)

    # gate per kind
    gate: dict[str, list[int]] = {}
    for g in show.segments:
        m = span(g.start + GATE_GRACE_S, g.end)
        ok = int(np.sum(music[m] == g.music))
        c = gate.setdefault(g.kind, [0, 0])
        c[0] += ok
        c[1] += int(m.sum())

    # steady quadrants and settle times
    steady: list[int | None] = []
    for g in songs:
        m = span(g.change_t + STEADY[0], g.change_t + STEADY[1])
        top = Counter(q[m].tolist()).most_common(1)
        steady.append(top[0][0] if top and top[0][1] >= STEADY_SHARE * m.sum() else None)
    settle = []
    hold = int(round(SETTLE_HOLD_S / HOP_S))
    for g in songs:
        if g.change == "first" or g.song_id not in ref:
            continue
        rt, rq = ref[g.song_id]
        if len(rt) == 0:
            continue
        before = Counter(q[span(g.change_t - 2.0, g.change_t)].tolist()).most_common(1)
        start_q = Counter(rq[rt < rt[0] + SETTLE_HOLD_S].tolist()).most_common(1)[0][0]
        prev_q = before[0][0] if before else None
        if prev_q is None or prev_q == start_q:
            continue
        m = span(g.change_t, g.change_t + STEADY[1])
        tt = t[m]
        # the reference at the same song time (before its first reading: its first reading)
        idx = np.clip(np.searchsorted(rt, np.maximum(tt - g.audio_t, rt[0]) - 1e-6), 0, len(rt) - 1)
        ok = q[m] == rq[idx]
        st = next((float(tt[i] - g.change_t) for i in range(len(ok) - hold + 1) if ok[i:i + hold].all()),
                  None)
        kind = "cut" if g.change == "cut" else ("crossfade" if g.change == "crossfade" else "after break")
        settle.append({"song": g.song_id, "kind": g.kind, "how": kind, "from": prev_q, "to": start_q,
                       "opposite": OPPOSITE[prev_q] == start_q, "settle_s": st, "t": g.change_t})

    def settle_stats(how: str) -> tuple[int, str, str]:
        """Count, median, worst; a change never settled within 22 s counts as longer than any."""
        xs = [s["settle_s"] if s["settle_s"] is not None else np.inf for s in settle if s["how"] == how]
        if not xs:
            return 0, "n/a", "n/a"
        never = sum(np.isinf(xs))
        med = float(np.median(xs))
        worst = f"{max(x for x in xs if np.isfinite(x)):.1f}" if never < len(xs) else "-"
        worst += f" (+{never} never)" if never else ""
        return len(xs), ("> 22" if np.isinf(med) else f"{med:.1f}"), worst

    # quadrant flips inside songs (from 8 s in): what fast settling may cost in steadiness
    flips, song_min = 0, 0.0
    for g in songs:
        m = span(g.change_t + QUAD_AFTER_S, g.end) & music
        flips += int(np.sum(np.diff(q[m]) != 0))
        song_min += float(m.sum()) * HOP_S / 60.0

    # quadrant accuracy
    quad: dict[str, list[int]] = {}
    song_acc: dict[str, list[int]] = {}
    for g, qs in zip(songs, steady, strict=True):
        if g.quadrant is None:
            continue
        m = span(g.change_t + QUAD_AFTER_S, g.end)
        c = quad.setdefault(g.kind, [0, 0])
        c[0] += int(np.sum(q[m] == g.quadrant))
        c[1] += int(m.sum())
        s = song_acc.setdefault(g.kind, [0, 0])
        s[0] += int(qs == g.quadrant)
        s[1] += 1

    # beats within grooves; events between songs
    beats = np.array([e.t for e in col.events if e.kind == "beat"])
    sections = np.array([e.t for e in col.events if e.kind == "section"])
    fms, fms5 = [], []
    for g in songs:
        if g.beats is None:
            continue
        for lo, out in ((g.start, fms), (g.start + 5.0, fms5)):
            est = beats[(beats >= lo) & (beats < g.end)]
            ref = g.beats[(g.beats >= lo) & (g.beats < g.end)]
            out.append(mir_eval.beat.f_measure(ref, est, f_measure_threshold=0.07))
    between = [g for g in show.segments if not g.music]
    mins = sum(max(0.0, g.end - g.start - GATE_GRACE_S) for g in between) / 60.0

    def count_between(x: np.ndarray) -> int:
        return int(sum(np.sum((x >= g.start + GATE_GRACE_S) & (x < g.end)) for g in between))

    emo_s = sum(float(np.sum(music[span(g.start + GATE_GRACE_S, g.end)])) * HOP_S for g in between)

    rows = []
    for kind, (ok, n) in gate.items():
        rows.append(["gate accuracy", kind, f"{100 * ok / max(n, 1):.1f} %", f"{n * HOP_S / 60:.1f} min"])
    for kind, (ok, n) in quad.items():
        sa = song_acc[kind]
        held = "held out" if kind != "4q" else "trained on"
        rows.append(["quadrant accuracy (from 8 s)", f"{kind} ({held})",
                     f"{100 * ok / max(n, 1):.1f} % of hops; steady quadrant {sa[0]}/{sa[1]} songs",
                     f"{sa[1]} songs"])
    for how in ("cut", "crossfade", "after break"):
        n, med, worst = settle_stats(how)
        opp = [s["settle_s"] if s["settle_s"] is not None else np.inf for s in settle
               if s["how"] == how and s["opposite"]]
        extra = (f"; opposite quadrants ({len(opp)}): median {np.median(opp):.1f} s, worst "
                 + ("never" if np.isinf(max(opp)) else f"{max(opp):.1f} s") if opp else "")
        rows.append(["settle time (s)", how, f"median {med}, worst {worst}{extra}",
                     f"{n} quadrant changes"])
    rows.append(["quadrant changes inside songs (from 8 s)", "all songs",
                 f"{flips / max(song_min, 1e-9):.1f} / min", f"{song_min:.1f} min"])
    rows.append(["beat F-measure (+-70 ms)", "groove",
                 f"mean {np.mean(fms):.3f}, min {np.min(fms):.3f}; from 5 s in: mean {np.mean(fms5):.3f}, "
                 f"min {np.min(fms5):.3f}" if fms else "n/a", f"{len(fms)} songs"])
    rows.append(["between songs, per minute", "talk/applause/silence",
                 f"beats {count_between(beats) / max(mins, 1e-9):.1f}, sections "
                 f"{count_between(sections) / max(mins, 1e-9):.2f}, emotion estimates "
                 f"{emo_s / max(mins, 1e-9):.1f} s", f"{mins:.1f} min"])
    table = md_table(["measure", "kind", "value", "over"], rows)
    cuts = [s["settle_s"] if s["settle_s"] is not None else np.inf for s in settle if s["how"] == "cut"]
    summary = {"cut_median": float(np.median(cuts)) if cuts else None,
               "cut_worst": float(max(cuts)) if cuts else None}
    return Scores(table, settle, summary)


def picture(show: Show, col: Collector, path: Path, title: str) -> None:
    """Truth vs output over the whole show, in three rows of time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = np.array(col.rows)
    t, a, v, music = r[:, 0], r[:, 1], r[:, 2], r[:, 3] > 0.5
    q = quadrant(a, v)
    colors = {"4q": "#4c72b0", "emopia": "#8172b2", "groove": "#55a868", "talk": "#c44e52",
              "applause": "#dd8452", "silence": "#cccccc"}
    qcol = {1: "#f1c40f", 2: "#e74c3c", 3: "#2c3e50", 4: "#27ae60"}
    beats = np.array([e.t for e in col.events if e.kind == "beat"])
    secs = np.array([e.t for e in col.events if e.kind == "section"])
    rows = 3
    per = show.seconds / rows
    fig, axes = plt.subplots(rows, 1, figsize=(18, 3.3 * rows))
    for k, ax in enumerate(axes):
        lo, hi = k * per, (k + 1) * per
        for g in show.segments:
            if g.end < lo or g.start > hi:
                continue
            c = colors.get(g.kind, "#999999")
            ax.axvspan(g.start, g.end, ymin=0.0, ymax=0.08, color=c, lw=0)
            if g.quadrant:
                ax.axvspan(g.start, g.end, ymin=0.09, ymax=0.15, color=qcol[g.quadrant], lw=0)
            if g.music and g.start >= lo:
                ax.axvline(g.change_t, color="k", lw=0.6, ls=":" if g.change != "cut" else "-")
                label = g.kind if g.change == "first" else g.change.replace("after ", "")
                ax.text(g.change_t + 0.3, 1.02, label, fontsize=6, va="bottom")
        m = (t >= lo) & (t < hi)
        for qq, c in qcol.items():
            sel = m & (q == qq) & music
            ax.scatter(t[sel], np.full(sel.sum(), 0.2), s=2, color=c, marker="|")
        ax.plot(t[m], a[m], lw=0.8, color="#d62728", label="arousal")
        ax.plot(t[m], v[m], lw=0.8, color="#1f77b4", label="valence")
        ax.fill_between(t[m], 0.96, 0.99, where=music[m], color="#2ca02c", lw=0, label="music flag")
        bm = beats[(beats >= lo) & (beats < hi)]
        ax.vlines(bm, 0.9, 0.94, color="#555555", lw=0.4)
        sm = secs[(secs >= lo) & (secs < hi)]
        ax.vlines(sm, 0.25, 0.9, color="#9467bd", lw=1.2, ls="--")
        ax.set_xlim(lo, hi)
        ax.set_ylim(0, 1.08)
        ax.axhline(0.5, color="#999999", lw=0.5)
        ax.set_ylabel("value")
    axes[-1].set_xlabel("show time (s)")
    axes[0].legend(loc="upper right", fontsize=7, ncol=3)
    axes[0].set_title(title + "\nbottom bands: truth kind (blue 4Q, purple EMOPIA, green groove, red talk, "
                      "orange applause, grey silence) and label quadrant (yellow Q1, red Q2, navy Q3, "
                      "green Q4); ticks at 0.2: output quadrant while music; grey ticks top: beats; "
                      "purple dashes: sections", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ----------------------------------------------------------------------------- main


def build_show(seed: int, extras: list[str]) -> Show:
    songs = fourq_songs(SR, seed) + emopia_songs(SR, seed) + groove_songs(SR, seed)
    for spec in extras:
        songs += extra_songs(spec, SR, seed)
    return assemble(songs, SR, seed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0, help="which show (material draw and order)")
    ap.add_argument("--paced", action="store_true", help="play in real time with the real teacher thread")
    ap.add_argument("--no-teacher", action="store_true", help="the CNN alone (as mer-live --no-teacher)")
    ap.add_argument("--extra", action="append", default=[], metavar="MODULE:FUNC",
                    help="more songs: FUNC(sr, seed) -> Songs (repeatable)")
    ap.add_argument("--attack", type=float, default=None, help="smoothing attack (s)")
    ap.add_argument("--release", type=float, default=None, help="smoothing release (s)")
    ap.add_argument("--label", default="", help="a label for this run in the record")
    ap.add_argument("--png", type=Path, default=PNG, help=f"the picture (default {PNG.relative_to(ROOT)})")
    ap.add_argument("--no-record", action="store_true",
                    help="print only; do not append to docs/benchmarks.md")
    ap.add_argument("--dump", type=Path, default=None, help="write the truth timeline and settle rows (JSON)")
    args = ap.parse_args(argv)
    if not (SHARED_DATA / "4q" / "labels.csv").is_file():
        print("error: ../shared/data/4q not found", file=sys.stderr)
        return 2
    for key, v in (("attack_s", args.attack), ("release_s", args.release)):
        if v is not None:
            OVERRIDES[key] = v
    show = build_show(args.seed, args.extra)
    kinds = Counter(g.kind for g in show.segments)
    changes = Counter(g.change.split(" ")[0] for g in show.segments if g.music)
    print(f"show: {show.seconds / 60:.1f} min, {dict(kinds)}, song starts {dict(changes)}", file=sys.stderr)
    col, wall = run_live(show, args.paced, not args.no_teacher)
    sc = score(show, col, run_alone(show, not args.no_teacher))
    mode = ("paced" if args.paced else "unpaced") + (", --no-teacher" if args.no_teacher else ", teacher")
    mode += "".join(f", {k} {v:g}" for k, v in OVERRIDES.items())
    if args.no_record:
        print(sc.table)
    for s in sc.settle:
        print(f"  {s['t']:7.1f} s {s['how']:11s} {s['kind']:7s} Q{s['from']} -> Q{s['to']}"
              f"{' (opposite)' if s['opposite'] else ''}: "
              + (f"{s['settle_s']:.1f} s" if s["settle_s"] is not None else "never"), file=sys.stderr)
    title = f"bench_show seed {args.seed} ({mode}{', ' + args.label if args.label else ''})"
    picture(show, col, args.png, title)
    if args.dump:
        import json

        args.dump.write_text(json.dumps({"truth": truth_per_second(show), "settle": sc.settle,
                                         "summary": sc.summary}, indent=0))
    if not args.no_record:
        notes = [f"show: {show.seconds / 60:.1f} min, seed {args.seed}: segments {dict(kinds)}; "
                 f"song starts {dict(changes)}; songs at {SONG_RMS_DB:g} dBFS RMS, "
                 f"crossfades {CROSSFADE_S:g} s",
                 f"live path: {mode}; {wall:.0f} s wall for the show; picture {args.png.relative_to(ROOT)}",
                 "the host was shared with other jobs (timing-free measures: none of these numbers "
                 "depends on the host's speed when unpaced)"]
        record(f"bench_show: a {show.seconds / 60:.0f}-minute show through the live path ({mode}"
               f"{', ' + args.label if args.label else ''})", sc.table, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
