"""``mer-analyze``: the live model over audio files, one JSON line (or CSV row) per file.

Files are framed exactly as the live pipeline frames a stream (``frame_windows``: windows ending
on hop boundaries), so a file analysed here and the same file pushed through ``mer-live --input``
give the same raw values. Decoding runs on a background thread, overlapping inference. A file that
fails gives an error record and the others go on; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn, TextIO

import numpy as np

from mer_live import __version__
from mer_live.estimate import quadrant_of
from mer_live.model import Model, ModelError, default_model_path
from mer_live.pipeline import PipelineConfig, frame_windows, prepare_offline

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
#: windows 1 s apart: a file's mean is then exactly the clip score the model card's CV measured,
#: and each second of audio costs one model window
DEFAULT_HOP_S = 1.0
DEFAULT_BATCH = 64
PREFETCH = 2  # files decoded ahead of the one being analysed (bounds memory)


class AnalyzeError(Exception):
    """A file that cannot be analysed; the message is one line."""


def _one_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


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
        msg = _one_line(e)
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


def analyze_array(
    audio: np.ndarray,
    sr: int,
    model: Model,
    hop: float = DEFAULT_HOP_S,
    batch: int = DEFAULT_BATCH,
    _resampled: bool = False,
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
    duration = n_in / float(sr)
    rate = model.sample_rate
    window = model.window_samples
    hop_n = max(1, int(round(hop * rate)))
    first_end = -(-window // hop_n) * hop_n  # the first hop boundary with a full window behind it
    if len(x) < first_end:
        # Shorter than that: one window ending on the last sample, zero-padded on the left.
        windows = np.zeros((1, window), np.float32)
        tail = x[-window:]
        windows[0, window - len(tail) :] = tail
        ends = np.array([len(x)], np.int64)
    else:
        ends, windows = frame_windows(x, window, hop_n)
    outs = [model.predict(windows[i : i + batch]) for i in range(0, len(windows), batch)]
    av = np.clip(np.concatenate(outs, axis=0), 0.0, 1.0)
    a_mean, v_mean = (float(m) for m in av.mean(axis=0))
    times = np.asarray(ends, dtype=np.float64) / rate
    return {
        "duration": round(duration, 3),
        "arousal": round(a_mean, 4),
        "valence": round(v_mean, 4),
        "quadrant": f"Q{quadrant_of(a_mean, v_mean)}",
        "timeline": [
            [round(float(t), 3), round(float(a), 4), round(float(v), 4)]
            for t, (a, v) in zip(times, av, strict=True)
        ],
    }


def analyze_file(
    path: str | Path, model: Model, hop: float = DEFAULT_HOP_S, batch: int = DEFAULT_BATCH
) -> dict[str, Any]:
    """``{"file": path as given, ...analyze_array...}``; raises ``AnalyzeError`` on a bad file."""
    x, duration = decode(path, model.sample_rate)
    rec = analyze_array(x, model.sample_rate, model, hop=hop, batch=batch, _resampled=True)
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


def _decoded(paths: list[str], sample_rate: int) -> Iterator[tuple[str, Future]]:
    """Yield ``(path, future of decode())`` with up to PREFETCH files decoding ahead."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mer-decode") as pool:
        futures: list[tuple[str, Future]] = []
        it = iter(paths)
        for p in it:
            futures.append((p, pool.submit(decode, p, sample_rate)))
            if len(futures) > PREFETCH:
                break
        while futures:
            yield futures.pop(0)
            nxt = next(it, None)
            if nxt is not None:
                futures.append((nxt, pool.submit(decode, nxt, sample_rate)))


def run(
    paths: list[str],
    model: Model,
    hop: float = DEFAULT_HOP_S,
    batch: int = DEFAULT_BATCH,
    out: TextIO | None = None,
    csv_out: bool = False,
    timeline_csv: TextIO | None = None,
    progress: bool = False,
) -> int:
    """Analyse ``paths`` and write one record per file; return the number that failed."""
    out = out if out is not None else sys.stdout
    writer = None
    if csv_out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["file", "duration", "arousal", "valence", "quadrant", "error"])
    tl_writer = None
    if timeline_csv is not None:
        tl_writer = csv.writer(timeline_csv, lineterminator="\n")
        tl_writer.writerow(["file", "t", "arousal", "valence"])
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(paths), unit="file", file=sys.stderr, dynamic_ncols=True)
    failed = 0
    try:
        for p, fut in _decoded(paths, model.sample_rate):
            try:
                x, duration = fut.result()
                rec: dict[str, Any] = analyze_array(
                    x, model.sample_rate, model, hop=hop, batch=batch, _resampled=True
                )
                rec = {"file": p, **rec, "duration": round(duration, 3)}
            except (AnalyzeError, ModelError) as e:
                rec = {"file": p, "error": _one_line(e)}
            except MemoryError:
                rec = {"file": p, "error": "out of memory (file too long for this machine)"}
            if "error" in rec:
                failed += 1
                print(f"mer-analyze: warning: {p}: {rec['error']}", file=sys.stderr, flush=True)
            if writer is not None:
                writer.writerow(
                    [p, rec.get("duration", ""), rec.get("arousal", ""), rec.get("valence", ""),
                     rec.get("quadrant", ""), rec.get("error", "")]
                )
            else:
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            if tl_writer is not None and "timeline" in rec:
                for t, a, v in rec["timeline"]:
                    tl_writer.writerow([p, t, a, v])
            out.flush()
            if bar is not None:
                bar.update(1)
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
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (default 0: all cores)")
    p.add_argument("--hop", type=float, default=DEFAULT_HOP_S, help="seconds between windows (default 1.0)")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="windows per model call (default 64)")
    p.add_argument("--csv", action="store_true", help="write a CSV table (one row per file) instead of JSON")
    p.add_argument("--timeline-csv", type=Path, metavar="FILE", help="also write every window to FILE as CSV")
    p.add_argument("--progress", action="store_true", help="progress bar even when stderr is no TTY")
    p.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug and tracebacks")
    p.add_argument("--version", action="version", version=f"mer-analyze {__version__}")
    return p


def load_model(path: Path | None, provider: str = "auto", threads: int | None = None) -> Model:
    """Load the model or raise ModelError with a message that says what to do."""
    if path is None:
        path = default_model_path()
        if not path.is_file():
            raise ModelError(
                f"no model: the default model ({path.name}) is not installed in this version; "
                "pass --model PATH"
            )
    return Model(path, provider=provider, threads=threads or None)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prog = "mer-analyze"
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
        format=f"{prog}: %(message)s",
        stream=sys.stderr,
    )
    try:
        if not args.hop > 0 or not np.isfinite(args.hop):
            raise AnalyzeError(f"--hop must be a number of seconds > 0, got {args.hop}")
        if args.batch < 1:
            raise AnalyzeError(f"--batch must be an integer >= 1, got {args.batch}")
        if args.threads < 0:
            raise AnalyzeError(f"--threads must be >= 0, got {args.threads}")
        threads = args.threads or os.cpu_count() or 1
        model = load_model(args.model, args.provider, threads)
        log.info("model %s on %s, %d threads", model.card.name, model.active_provider, threads)
        paths = collect_paths(args.paths)
        if not paths:
            raise AnalyzeError("no audio files to analyse")
        progress = args.progress or (len(paths) > 3 and sys.stderr.isatty())
        tl = open(args.timeline_csv, "w", newline="", encoding="utf-8") if args.timeline_csv else None
        try:
            failed = run(paths, model, hop=args.hop, batch=args.batch, csv_out=args.csv,
                         timeline_csv=tl, progress=progress)
        finally:
            if tl is not None:
                tl.close()
    except (AnalyzeError, ModelError, OSError) as e:
        if args.verbose >= 2:
            raise
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `mer-analyze ... | head`
        return 0
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

