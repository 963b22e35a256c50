"""How much the resampler in front of the model moves its outputs: the reason ``--low-latency``
is opt-in.

Why: without ``--low-latency`` mer-live resamples with soxr HQ, exactly as training and
``mer-analyze`` do; with it, the audio server (PulseAudio, PipeWire, a driver) resamples to the
model's rate, with its own filter. This measures, on real music, the per-window difference
between soxr HQ and cheaper resamplers standing in for a server's (soxr MQ, LQ and QQ; at 48 kHz
-> 16 kHz QQ keeps every third sample, no anti-alias filter: the worst case), all from the same
48 kHz signal a null sink would carry.

    python -m bench.resampler_skew [--clips 20] [--model M]

Not a speed benchmark: a quality check, recorded beside the latency records it explains.
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.common import fourq_clips, md_table, model_file, positive_int, record, run_cli


def main(argv: list[str] | None = None) -> int:
    import soundfile as sf
    import soxr

    from bench.bench_model import pick_model
    from mer_live.analyze import analyze_array
    from mer_live.assemble import load_model
    from mer_live.common.levels import DCBlocker

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=positive_int, default=20)
    ap.add_argument("--model", type=model_file)
    args = ap.parse_args(argv)
    paths = fourq_clips(716)[:: max(1, 716 // args.clips)][: args.clips]
    if not paths:
        print("no 4Q clips under ../shared/data/4q/audio: nothing to compare")
        return 2
    path = pick_model(args.model)
    model = load_model(path, provider="cpu", threads=2)
    rate = model.sample_rate
    kinds = ("soxr MQ", "soxr LQ", "soxr QQ")
    diffs: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
    for p in paths:
        x, sr = sf.read(str(p), dtype="float32", always_2d=True)
        x = DCBlocker(sr, 10.0).process(x.mean(axis=1))
        x48 = soxr.resample(x, sr, 48000, quality="VHQ")  # what the sink carries

        def values(y: np.ndarray) -> np.ndarray:
            r = analyze_array(y.astype(np.float32), rate, model, hop=1.0, _resampled=True)
            return np.array([[a, v] for _, a, v in r["timeline"]])

        ref = values(soxr.resample(x48, 48000, rate, quality="HQ"))
        others = {k: soxr.resample(x48, 48000, rate, quality=k.split()[1]) for k in kinds}
        for k, y in others.items():
            v = values(y)
            n = min(len(v), len(ref))
            diffs[k].append(np.abs(v[:n] - ref[:n]))
    rows = []
    for k in kinds:
        d = np.concatenate(diffs[k])
        rows.append([k, d.shape[0], f"{d.mean():.4f}", f"{np.percentile(d, 99):.4f}", f"{d.max():.4f}"])
    record(
        f"Resampler skew: soxr HQ vs cheaper resamplers ({path.name})",
        md_table(["resampler (vs soxr HQ)", "windows x 2 values", "mean abs diff", "p99", "max"],
                 [[r[0], r[1] * 2, *r[2:]] for r in rows]),
        notes=[
            f"{len(paths)} 4Q clips spread over the set, DC-blocked, resampled to 48 kHz (soxr VHQ, the "
            f"null sink's rate), then to {rate} Hz by each resampler; arousal and valence of every window "
            "1 s apart compared with the soxr HQ path (what training, mer-analyze and mer-live without "
            "--low-latency use). Values are in [0, 1].",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
