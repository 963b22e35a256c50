"""``mer-analyze``: the live model over audio files, one JSON line (or CSV row) per file.

Files are framed exactly as the live pipeline frames a stream (``frame_windows``: windows ending
on hop boundaries), so a file analysed here and the same file pushed through ``mer-live --input``
give the same raw values. Decoding, the music gate and the teacher run on background threads,
overlapping the CNN on the main thread, and the windows of consecutive files are packed into full
``--batch`` model calls (few large calls keep a GPU busy; records still come out in input order).
A file that fails gives an error record and the others go on; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn, TextIO

import numpy as np

from mer_live import __version__
from mer_live.assemble import PRESENCE_MISSING_OFFLINE, load_model, load_presence
from mer_live.common import silence
from mer_live.common.framing import frame_windows, hop_samples, prepare_offline
from mer_live.common.logs import one_line
from mer_live.inference.fusion import Fusion
from mer_live.inference.model import Model, ModelError
from mer_live.live.pipeline import PipelineConfig
from mer_live.live.records import quadrant_of

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
#: windows 1 s apart: a file's mean is then exactly the clip score the model card's CV measured,
#: and each second of audio costs one model window
DEFAULT_HOP_S = 1.0
#: windows per model call. On a CPU small batches are fastest (shipped model, 1 thread, bench_model:
#: 0.54-0.55 ms per window at batch 1-4, 0.61 at 16, 0.64 at 32) and a large one costs memory
#: (batch 64: +150 MB peak RSS); a GPU wants few large calls
DEFAULT_BATCH = 2
GPU_BATCH = 256
PREFETCH = 2  # files decoded ahead per decoding thread (bounds memory)
#: ``--csv``: one row per file (empty cells for null values)
CSV_COLUMNS = ("file", "duration", "arousal", "valence", "quadrant", "music", "note", "error")
#: ``--timeline-csv``: one row per window, named as ``mer-live --record``'s columns (``t``: the
#: window's end; arousal, valence: the model's output, unsmoothed; quadrant 0 and music 0 where
#: the window is not music)
TIMELINE_COLUMNS = ("file", "t", "arousal", "valence", "quadrant", "music")


class AnalyzeError(Exception):
    """A file that cannot be analysed; the message is one line."""


def decode(path: str | Path, sample_rate: int) -> tuple[np.ndarray, float]:
    """Decode with soundfile, downmix to mono, soxr-resample (HQ) to ``sample_rate``.

    Returns ``(mono float32 at sample_rate, duration in seconds of the decoded file)``. The
    duration comes from the decoded samples (``sf.info`` over-estimates MP3 lengths).
    """
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise AnalyzeError("file not found")
    if not p.is_file():
        raise AnalyzeError("not a file")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # LibsndfileError, RuntimeError, TypeError: all mean "cannot decode"
        msg = one_line(e)
        if msg.startswith("Error opening"):  # libsndfile's text here blames the path, misleadingly
            msg = "not a valid or supported audio file (wav, flac, ogg, mp3)"
        raise AnalyzeError(f"cannot decode: {msg}") from None
    if data.shape[0] == 0:
        raise AnalyzeError("no audio in file")
    return to_model_rate(data, int(sr), sample_rate), data.shape[0] / float(sr)


def to_model_rate(audio: np.ndarray, sr: int, sample_rate: int) -> np.ndarray:
    """The live pipeline's clean-up chain (sanitize, downmix, DC blocker, soxr HQ) on a whole array.

    Sharing ``prepare_offline`` with the pipeline keeps ``mer-analyze`` and ``mer-live --input``
    on the same numbers for the same file.
    """
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim not in (1, 2):
        raise AnalyzeError(f"audio must be [samples] or [samples, channels], got shape {x.shape}")
    return np.ascontiguousarray(prepare_offline(x, int(sr), int(sample_rate), PipelineConfig()))


def windows_of(x: np.ndarray, model: Model, hop: float) -> tuple[np.ndarray, np.ndarray]:
    """``(ends, windows)`` of model-rate mono audio, framed like the live pipeline.

    A recording shorter than the first hop boundary with a full window behind it gives one
    window ending on its last sample, zero-padded on the left. ``windows`` may be a view.
    """
    window = model.window_samples
    hop_n = hop_samples(hop, model.sample_rate)
    first_end = -(-window // hop_n) * hop_n
    if len(x) < first_end:
        windows = np.zeros((1, window), np.float32)
        tail = x[-window:]
        windows[0, window - len(tail) :] = tail
        return np.array([len(x)], np.int64), windows
    return frame_windows(x, window, hop_n)


def silent_flags(x: np.ndarray, ends: np.ndarray, rate: int,
                 config: PipelineConfig | None = None) -> np.ndarray:
    """Which windows the live pipeline would call silent (``PipelineConfig``'s thresholds)."""
    cfg = config or PipelineConfig()
    return silence.silent_flags(x, ends, rate, cfg.silence_db, cfg.silence_s, hop_s=0.1)


def music_of(x: np.ndarray, ends: np.ndarray, windows: np.ndarray, rate: int, hop: float,
             presence: Any | None = None, batch: int = 64, gate: Any | None = None) -> np.ndarray:
    """Which windows are music, by the live rules: not silent, and (with a presence model) the
    ``MusicGate`` (``gate``: a ``GateConfig``, default the shipped one) over the presence
    probabilities of the last ``presence.window_samples`` of each window. Without a presence model
    every audible window counts as music."""
    silent = silent_flags(x, ends, rate)
    if presence is None:
        return ~silent
    from mer_live.inference.presence import music_flags

    n = int(presence.window_samples)
    if windows.shape[1] < n:
        raise AnalyzeError(f"the presence model needs {n} samples, the window has {windows.shape[1]}")
    probs = np.concatenate([presence.predict(np.ascontiguousarray(windows[i : i + batch, -n:]))
                            for i in range(0, len(windows), batch)]) if len(windows) else np.zeros(0)
    head = getattr(presence, "phrase", None)
    cue = file_cue(x, ends, head.context_s) if head is not None else None
    return music_flags(probs, hop, silent, config=gate, head=head, cue=cue)


def file_cue(x: np.ndarray, ends: np.ndarray, context_s: float) -> np.ndarray:
    """The phrase cue at each window end, as live: the chroma of every 0.1-s hop from the file's
    start (the live ring sees every hop, whatever mer-analyze's hop), read at the hop that ends
    at or before each window's end (before the first hop: no cue, zeros)."""
    from mer_live.inference import phrase

    feats = phrase.stream_features(phrase.stream_chroma(x), context_s)
    idx = np.asarray(ends, np.int64) // phrase.HOP - 1
    out = np.zeros((len(idx), len(phrase.NAMES)), np.float32)
    ok = (idx >= 0) & (idx < len(feats))
    out[ok] = feats[idx[ok]]
    return out


def teacher_of(x: np.ndarray, ends: np.ndarray, music: np.ndarray, rate: int,
               fusion: Any) -> tuple[np.ndarray, np.ndarray]:
    """A fused model's teacher over one recording: ``(patch ends in samples, [P, 2] logits)`` for
    the patches ``fusion.patch_starts`` places that end in music (the window ending at or right
    after a patch's end says so); empty when none does."""
    starts = fusion.patch_starts(len(x), rate)
    p_ends = starts + fusion.patch_samples
    idx = np.minimum(np.searchsorted(ends, p_ends), len(ends) - 1) if len(ends) else np.zeros(0, int)
    keep = np.asarray(music, bool)[idx] if len(ends) else np.zeros(len(starts), bool)
    if not keep.any():
        return np.zeros(0, np.int64), np.zeros((0, 2))
    return p_ends[keep], fusion.logits(fusion.patches(x, starts[keep]))


def summarize(av: np.ndarray, ends: np.ndarray, rate: int, duration: float,
              music: np.ndarray | None = None, teacher: tuple[np.ndarray, np.ndarray] | None = None,
              fusion: Any | None = None) -> dict[str, Any]:
    """The record of one recording from its per-window outputs: means over the music windows,
    quadrant, the fraction of windows with music, the timeline ``[t, arousal, valence, music]``.

    For a fused model (``teacher`` = its patch ends and logits, ``fusion`` = the ``Fusion``) the
    recording's values are the CNN's mean over its music windows fused with the mean of the
    teacher's logits (as docs/teacher.md cross-validated); each timeline point is its window
    fused with the newest teacher patch that ended at or before it (the first, before any).
    A recording without music gets ``null`` arousal, valence and quadrant and a ``note``: the
    model's output on silence, talk or applause is not an emotion of music."""
    av = np.clip(av, 0.0, 1.0)
    m = np.ones(len(av), bool) if music is None else np.asarray(music, bool)
    times = np.asarray(ends, dtype=np.float64) / rate
    share = round(float(m.mean()), 4) if len(m) else 0.0
    rec: dict[str, Any] = {"duration": round(duration, 3), "music": share}
    fused = fusion is not None and teacher is not None and len(teacher[0]) > 0
    line = av
    if fused:
        p_ends, z = teacher
        k = np.clip(np.searchsorted(p_ends, ends, side="right") - 1, 0, len(p_ends) - 1)
        line = np.clip(fusion.fuse(av, z[k]), 0.0, 1.0)
    if m.any():
        mean = av[m].mean(axis=0)
        if fused:
            mean = fusion.fuse(mean, teacher[1].mean(axis=0))
        a_mean, v_mean = (float(x) for x in mean)
        rec.update(arousal=round(a_mean, 4), valence=round(v_mean, 4),
                   quadrant=f"Q{quadrant_of(a_mean, v_mean)}")
    else:
        rec.update(arousal=None, valence=None, quadrant=None,
                   note="no music detected (silence, speech, applause or noise): no emotion to report")
    rec["timeline"] = [
        [round(float(t), 3), round(float(a), 4), round(float(v), 4), int(f)]
        for t, (a, v), f in zip(times, line, m, strict=True)
    ]
    return rec


def analyze_array(
    audio: np.ndarray,
    sr: int,
    model: Model,
    hop: float = DEFAULT_HOP_S,
    batch: int = DEFAULT_BATCH,
    _resampled: bool = False,
    presence: Any | None = None,
    fusion: Any | None = None,
) -> dict[str, Any]:
    """Arousal/valence of one recording: means, quadrant and the per-window timeline.

    ``audio`` is ``[samples]`` or ``[samples, channels]`` at ``sr``. A recording shorter than one
    window is zero-padded on the left to one window (its single point is at the last sample).
    """
    if not hop > 0:
        raise AnalyzeError(f"hop must be > 0 seconds, got {hop!r}")
    n_in = int(np.asarray(audio).shape[0])
    if n_in == 0:
        raise AnalyzeError("no audio samples")
    x = audio if _resampled else to_model_rate(audio, int(sr), model.sample_rate)
    ends, windows = windows_of(x, model, hop)
    outs = [model.predict(windows[i : i + batch]) for i in range(0, len(windows), batch)]
    music = music_of(x, ends, windows, model.sample_rate, hop, presence)
    teacher = teacher_of(x, ends, music, model.sample_rate, fusion) if fusion is not None else None
    rec = summarize(np.concatenate(outs, axis=0), ends, model.sample_rate, n_in / float(sr), music,
                    teacher, fusion)
    return _with_short_note(rec, len(x), model)


def _with_short_note(rec: dict[str, Any], n: int, model: Model) -> dict[str, Any]:
    if n < model.window_samples:
        short = (f"shorter than the model's {model.card.window_seconds:g}-s window: scored on one "
                 "zero-padded window")
        rec["note"] = f"{rec['note']}; {short}" if "note" in rec else short
    return rec


def analyze_file(
    path: str | Path, model: Model, hop: float = DEFAULT_HOP_S, batch: int = DEFAULT_BATCH,
    presence: Any | None = None, fusion: Any | None = None,
) -> dict[str, Any]:
    """``{"file": path as given, ...analyze_array...}``; raises ``AnalyzeError`` on a bad file."""
    x, duration = decode(path, model.sample_rate)
    rec = analyze_array(x, model.sample_rate, model, hop=hop, batch=batch, _resampled=True, presence=presence,
                        fusion=fusion)
    rec["duration"] = round(duration, 3)
    return {"file": str(path), **rec}


def collect_paths(args: Iterable[str]) -> list[str]:
    """Files as given, folders expanded recursively (sorted) to their audio files."""
    out: list[str] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            found = sorted(
                str(f) for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file()
            )
            if not found:
                log.warning("no audio files (%s) under %s", ", ".join(AUDIO_EXTENSIONS), a)
            out.extend(found)
        else:
            out.append(a)  # a missing or undecodable file gets its own error record
    return out


def default_batch(model: Model) -> int:
    """``GPU_BATCH`` when the session runs on CUDA, else ``DEFAULT_BATCH``."""
    return GPU_BATCH if model.active_provider == "CUDAExecutionProvider" else DEFAULT_BATCH


def usable_cores() -> int:
    """Cores this process may run on (``taskset``/cgroup affinity where the OS says, else all)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_decoders() -> int:
    """Decoding threads for many files: one per core up to 4 (decoding and resampling release the
    GIL, so on 2 cores two files decode while the model runs)."""
    return min(4, usable_cores())


def default_threads(decoders: int) -> int:
    """onnxruntime threads beside ``decoders`` decoding threads: the cores they leave, counting a
    decoder as half a core (it waits on the file too). On 2 cores (bench_analyze) 1 model thread
    beside 2 decoders tagged 40 MP3s in 1.11 s against 1.22 s with the model on both cores, whose
    spinning pool competes with the decoders."""
    return max(1, usable_cores() - decoders // 2)


def _prepared(paths: list[str], batches: _Batches, workers: int = 1) -> Iterator[tuple[str, Future]]:
    """Yield ``(path, future of the prepared _Job)`` in order, with up to ``PREFETCH * workers``
    files decoded and prepared ahead on ``workers`` threads (``_Batches.prepare``: music gate,
    teacher), so only the CNN's batches are left to the caller's thread."""
    ahead = PREFETCH * max(1, workers)

    def job(p: str) -> _Job:
        x, duration = decode(p, batches.model.sample_rate)
        return batches.prepare(p, x, duration)

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="mer-decode") as pool:
        futures: deque[tuple[str, Future]] = deque()
        it = iter(paths)
        for p in it:
            futures.append((p, pool.submit(job, p)))
            if len(futures) > ahead:
                break
        while futures:
            yield futures.popleft()
            nxt = next(it, None)
            if nxt is not None:
                futures.append((nxt, pool.submit(job, nxt)))


class _Job:
    """One file on its way through ``_Batches``: its windows, their outputs, or its error."""

    def __init__(self, path: str, record: dict[str, Any] | None = None, ends: np.ndarray | None = None,
                 windows: np.ndarray | None = None, duration: float = 0.0) -> None:
        self.path = path
        self.record = record  # set when finished (or failed)
        self.ends = ends
        self.windows = windows
        self.duration = duration
        self.n = 0 if windows is None else int(windows.shape[0])
        self.av = np.zeros((self.n, 2), np.float32)
        self.music: np.ndarray | None = None
        self.teacher: tuple[np.ndarray, np.ndarray] | None = None
        self.samples = 0  # model-rate samples of the file (a short file gets a note)
        self.queued_from = 0  # windows before this index are in a batch already
        self.filled = 0  # windows with outputs


class _Batches:
    """Windows of consecutive files packed into full model batches, records out in input order.

    Why: a GPU is kept busy by few large calls, not one small call per short file (a 30-s clip
    at the default hop is 25 windows). A file's record is ready when all its windows have run and
    every file before it is ready; a model error fails the files of that batch only.
    """

    def __init__(self, model: Model, batch: int, hop: float, presence: Any | None = None,
                 fusion: Any | None = None) -> None:
        self.model, self.batch, self.hop, self.presence, self.fusion = model, batch, hop, presence, fusion
        self.jobs: deque[_Job] = deque()  # input order; the front is written first
        self.todo: deque[_Job] = deque()  # files with windows not yet in a batch
        self.queued = 0
        #: one teacher call at a time: two at once held two patches' activations (+50 MB peak RSS),
        #: and on 2 cores the teacher's calls take about as long as half of all the work anyway
        self._teacher_lock = threading.Lock()

    def add(self, path: str, x: np.ndarray, duration: float) -> list[dict]:
        """Queue one decoded file; returns the records now ready, in order."""
        return self.add_job(self.prepare(path, x, duration))

    def prepare(self, path: str, x: np.ndarray, duration: float) -> _Job:
        """A file's windows, music flags and teacher logits: everything but the CNN batches.
        Thread-safe (onnxruntime sessions are), so ``run`` does it on the decoding threads, beside
        the CNN on the main thread: the teacher's patches are most of mer-analyze's work."""
        ends, windows = windows_of(x, self.model, self.hop)
        job = _Job(path, ends=ends, windows=windows, duration=duration)
        job.music = music_of(x, ends, windows, self.model.sample_rate, self.hop, self.presence)
        if self.fusion is not None:
            with self._teacher_lock:
                job.teacher = teacher_of(x, ends, job.music, self.model.sample_rate, self.fusion)
        job.samples = len(x)
        return job

    def add_job(self, job: _Job) -> list[dict]:
        """Queue one prepared file (``prepare``); returns the records now ready, in order."""
        self.jobs.append(job)
        self.todo.append(job)
        self.queued += job.n
        while self.queued >= self.batch:
            self._run(self.batch)
        return self._ready()

    def fail(self, path: str, error: str) -> list[dict]:
        """Queue the error record of a file that did not decode; returns the records now ready."""
        self.jobs.append(_Job(path, {"file": path, "error": error}))
        return self._ready()

    def finish(self) -> list[dict]:
        """Run what is left (a last, partial batch); returns the remaining records."""
        while self.queued:
            self._run(min(self.batch, self.queued))
        return self._ready()

    def _run(self, size: int) -> None:
        parts: list[tuple[_Job, int, int]] = []
        need = size
        while need:
            job = self.todo[0]
            lo = job.queued_from
            hi = min(job.n, lo + need)
            parts.append((job, lo, hi))
            job.queued_from = hi
            need -= hi - lo
            if hi == job.n:
                self.todo.popleft()
        self.queued -= size
        x = parts[0][0].windows[parts[0][1] : parts[0][2]] if len(parts) == 1 else np.concatenate(
            [job.windows[lo:hi] for job, lo, hi in parts])
        try:
            y = self.model.predict(x)
        except (ModelError, MemoryError) as e:
            for job, _, _ in parts:
                job.record = job.record or {"file": job.path, "error": one_line(e)}
            return
        k = 0
        for job, lo, hi in parts:
            job.av[lo:hi] = y[k : k + hi - lo]
            k += hi - lo
            job.filled += hi - lo

    def _ready(self) -> list[dict]:
        out = []
        while self.jobs:
            job = self.jobs[0]
            if job.record is None and job.filled == job.n:
                rec = summarize(job.av, job.ends, self.model.sample_rate, job.duration, job.music,
                                job.teacher, self.fusion)
                job.record = {"file": job.path, **_with_short_note(rec, job.samples, self.model)}
            # a failed file still waits for its windows to leave the queue (they are skipped)
            if job.record is None or job.queued_from < job.n:
                break
            job.windows = None  # release the audio
            out.append(self.jobs.popleft().record)
        return out


def run(
    paths: list[str],
    model: Model,
    hop: float = DEFAULT_HOP_S,
    batch: int | None = None,
    out: TextIO | None = None,
    csv_out: bool = False,
    timeline_csv: TextIO | None = None,
    progress: bool = False,
    decoders: int | None = None,
    presence: Any | None = None,
    fusion: Any | None = None,
) -> int:
    """Analyse ``paths`` and write one record per file; return the number that failed.

    ``batch`` None: ``default_batch(model)``; ``decoders`` None: ``default_decoders()``;
    ``presence`` a ``PresenceModel`` (the music gate) or None (every audible window is music)."""
    out = out if out is not None else sys.stdout
    writer = None
    if csv_out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
    tl_writer = None
    if timeline_csv is not None:
        tl_writer = csv.writer(timeline_csv, lineterminator="\n")
        tl_writer.writerow(TIMELINE_COLUMNS)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(paths), unit="file", file=sys.stderr, dynamic_ncols=True)
    failed = 0
    batches = _Batches(model, batch or default_batch(model), hop, presence, fusion)

    def emit(rec: dict[str, Any]) -> None:
        nonlocal failed
        p = rec["file"]
        if "error" in rec:
            failed += 1
            print(f"mer-analyze: warning: {p}: {rec['error']}", file=sys.stderr, flush=True)
        if writer is not None:
            writer.writerow([p] + ["" if rec.get(k) is None else rec[k] for k in CSV_COLUMNS[1:]])
        else:
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        if tl_writer is not None and "timeline" in rec:
            for t, a, v, m in rec["timeline"]:
                tl_writer.writerow([p, t, a, v, quadrant_of(a, v) if m else 0, m])
        out.flush()
        if bar is not None:
            bar.update(1)

    try:
        for p, fut in _prepared(paths, batches, decoders or default_decoders()):
            try:
                ready = batches.add_job(fut.result())
            except AnalyzeError as e:
                ready = batches.fail(p, one_line(e))
            except MemoryError:
                ready = batches.fail(p, "out of memory (file too long for this machine)")
            for rec in ready:
                emit(rec)
        for rec in batches.finish():
            emit(rec)
    finally:
        if bar is not None:
            bar.close()
    return failed


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, no usage block: errors must be readable in a log."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="mer-analyze",
        description="Arousal and valence of audio files (wav, flac, ogg, mp3) with the mer-live model. "
        "Prints one JSON object per file on stdout.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders (searched recursively)")
    p.add_argument("--model", type=Path, help="ONNX model (default: the shipped model)")
    p.add_argument("--provider", choices=("auto", "cuda", "cpu"), default="auto")
    p.add_argument("--threads", type=int, default=0,
                   help="onnxruntime threads (default 0: the cores the decoding threads leave)")
    p.add_argument("--hop", type=float, default=DEFAULT_HOP_S, help="seconds between windows (default 1.0)")
    p.add_argument("--batch", type=int, default=None,
                   help=f"windows per model call, across files (default {DEFAULT_BATCH}; CUDA {GPU_BATCH})")
    p.add_argument("--csv", action="store_true", help="write a CSV table (one row per file) instead of JSON")
    p.add_argument("--timeline-csv", type=Path, metavar="FILE", help="also write every window to FILE as CSV")
    p.add_argument("--no-teacher", action="store_true",
                   help="a fused model's CNN alone, without its pretrained teacher (faster, less accurate)")
    p.add_argument("--room", action="store_true",
                   help="recorded with a laptop or room microphone in front of the PA, not from the desk: "
                   "the room model and its re-centring (docs/room.md)")
    p.add_argument("--no-music-gate", action="store_true",
                   help="score every audible window, not only music (default: silence, talk, applause "
                   "and noise are left out of a file's summary)")
    p.add_argument("--progress", action="store_true", help="progress bar even when stderr is no TTY")
    p.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug and tracebacks")
    p.add_argument("--version", action="version", version=f"mer-analyze {__version__}")
    return p


def _open_for_writing(path: Path, flag: str) -> TextIO:
    try:
        return open(path, "w", newline="", encoding="utf-8")
    except OSError as e:
        raise AnalyzeError(f"cannot write {flag} {path}: {e.strerror or e}") from None


class _LevelFormatter(logging.Formatter):
    """``mer-analyze: warning: ...`` (the level named, as mer-live does); info as plain lines."""

    def __init__(self, prog: str) -> None:
        super().__init__()
        self.prog = prog

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"{self.prog}: {level}{record.getMessage()}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prog = "mer-analyze"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelFormatter(prog))
    logging.basicConfig(level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
                        handlers=[handler], force=True)
    try:
        if not args.hop > 0 or not np.isfinite(args.hop):
            raise AnalyzeError(f"--hop must be a number of seconds > 0, got {args.hop}")
        if args.batch is not None and args.batch < 1:
            raise AnalyzeError(f"--batch must be an integer >= 1, got {args.batch}")
        if args.threads < 0:
            raise AnalyzeError(f"--threads must be >= 0, got {args.threads}")
        tl = _open_for_writing(args.timeline_csv, "--timeline-csv") if args.timeline_csv else None
        try:
            threads = args.threads or default_threads(default_decoders())
            kind = "room" if args.room else "line"
            model = load_model(args.model, args.provider, threads, kind)
            log.info("model %s on %s, %d threads, %s input", model.card.name, model.active_provider,
                     threads, kind)
            paths = collect_paths(args.paths)
            if not paths:
                raise AnalyzeError("no audio files to analyse")
            presence = None if args.no_music_gate else load_presence(missing=PRESENCE_MISSING_OFFLINE)
            fusion = None if args.no_teacher else Fusion.of(model, threads=threads)  # model's provider
            progress = args.progress or (len(paths) > 3 and sys.stderr.isatty())
            failed = run(paths, model, hop=args.hop, batch=args.batch, csv_out=args.csv,
                         timeline_csv=tl, progress=progress, presence=presence, fusion=fusion)
        finally:
            if tl is not None:
                tl.close()
    except (AnalyzeError, ModelError, OSError) as e:
        if args.verbose >= 2:
            raise
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `mer-analyze ... | head`
        return 0
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

