"""Clip embeddings from a pretrained music tagger (musicnn), the targets of ``--fit feature_weight``.

Why: the 716 4Q clips are all the labelled audio here, and every recipe trained on them alone
stops near arousal AUC 0.96. musicnn (Pons & Serra 2019, ISC licence; its PyPI wheel carries the
trained weights) was trained on the Million Song Dataset's last.fm tags, far more music than 4Q.
Its penultimate layer, averaged over a clip's 3-s patches, is a 200-d description of the clip;
a logistic regression on it alone scores arousal / valence AUC 0.958 / 0.885 in our artist folds
(C = 0.1). ``run_spec --clip-features`` teaches our small CNN to predict it from the training
clips (an auxiliary regression head, never exported): the runtime model stays ours, one CNN with
no TensorFlow anywhere near it.

musicnn needs TensorFlow 1.x-style graphs, so this script runs in its own virtual environment,
never in the project's::

    python3 -m venv /tmp/mnn-venv
    /tmp/mnn-venv/bin/pip install "tensorflow-cpu==2.15.*" librosa soundfile
    /tmp/mnn-venv/bin/pip install --no-deps musicnn==0.1.0   # its pins (numpy<1.17) predate TF 2
    /tmp/mnn-venv/bin/python train/experiments/musicnn_features.py \
        --audio ../shared/data/4q/audio --out cache/musicnn-msd-4q.npz

Output: an npz with ``ids`` (file stems), ``features`` (``[n, 200]`` float32, the mean over
patches of the penultimate layer), ``tags`` (``[n, 50]``, mean tag probabilities), ``labels``
(the tag names), and the time-resolved layer: ``patch_features`` (``[n, P, 200]``, NaN past a
clip's last patch), ``patch_starts`` (``[P]`` seconds) and ``patch_seconds`` (2.992). Patches
start every ``--patch-hop`` seconds (default: back to back); ``--patch-hop 1`` gives the
targets of ``run_spec --feature-patches`` (each training crop regresses the patches inside it,
not the clip's mean). Audio is decoded by musicnn's own librosa chain at 16 kHz (the teacher's
input, as it was trained); 716 clips in ~3 min on one thread (printed at the end), ~15 min
with ``--patch-hop 1`` (three times the patches). ``--time-window N``
also times one 6-s window (two patches) on ``--threads``: 42-47 ms on one thread here, the number
docs/model.md compares with our 0.57 ms. Derived from the data: keep it out of git.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

AUDIO_EXT = (".mp3", ".wav", ".flac", ".ogg")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--audio", type=Path, required=True, help="folder of clips, <id>.<ext>")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", default="MSD_musicnn", choices=("MSD_musicnn", "MTT_musicnn"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--time-window", type=int, default=0, metavar="N",
                    help="also time N calls on one 6-s window (two 3-s patches) and print the median")
    ap.add_argument("--patch-hop", type=float, default=0.0, metavar="S",
                    help="seconds between patch starts (default 0: back to back, 2.992 s)")
    args = ap.parse_args(argv)
    files = sorted(p for p in args.audio.iterdir() if p.suffix.lower() in AUDIO_EXT)
    if not files:
        print(f"musicnn_features: error: no audio files in {args.audio}", file=sys.stderr)
        return 2
    import time

    import librosa
    import numpy as np
    import tensorflow as tf
    from musicnn import configuration as config
    from musicnn import models
    from musicnn.extractor import batch_data

    tf.compat.v1.disable_eager_execution()
    labels = config.MSD_LABELS if args.model.startswith("MSD") else config.MTT_LABELS
    n_frames = librosa.time_to_frames(3, sr=config.SR, n_fft=config.FFT_SIZE, hop_length=config.FFT_HOP) + 1
    with tf.name_scope("model"):  # the graph of musicnn.extractor, built once for every file
        x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
        training = tf.compat.v1.placeholder(tf.bool)
        logits, *_, penultimate = models.define_model(x, training, args.model, len(labels))
        probs = tf.nn.sigmoid(logits)
    conf = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=args.threads, inter_op_parallelism_threads=1)
    sess = tf.compat.v1.Session(config=conf)
    sess.run(tf.compat.v1.global_variables_initializer())
    tf.compat.v1.train.Saver().restore(sess, os.path.join(os.path.dirname(models.__file__), args.model) + "/")
    if args.time_window > 0:  # what running musicnn live would cost: one window per hop
        w = np.random.default_rng(0).random((2, n_frames, config.N_MELS), dtype=np.float32)
        for _ in range(3):
            sess.run(penultimate, feed_dict={x: w, training: False})
        ts = []
        for _ in range(args.time_window):
            t0 = time.perf_counter()
            sess.run(penultimate, feed_dict={x: w, training: False})
            ts.append(time.perf_counter() - t0)
        print(f"{args.model}: {1e3 * float(np.median(ts)):.1f} ms per 6-s window (median of "
              f"{args.time_window}, {args.threads} thread(s))")
    hop = n_frames if args.patch_hop <= 0 else max(1, round(args.patch_hop * config.SR / config.FFT_HOP))
    t_start = time.perf_counter()
    ids, feats, tags, pens = [], [], [], []
    for i, f in enumerate(files):
        try:
            patches, _ = batch_data(str(f), n_frames, hop)  # 3-s patches starting every `hop` frames
        except Exception as e:  # a corrupt file: say which, go on without it
            print(f"musicnn_features: warning: {f.name}: not decoded ({e}); skipped", file=sys.stderr)
            continue
        p, pen = sess.run([probs, penultimate], feed_dict={x: patches, training: False})
        ids.append(f.stem)
        feats.append(pen.mean(axis=0))
        tags.append(p.mean(axis=0))
        pens.append(pen.astype(np.float32))
        if (i + 1) % 50 == 0 or i + 1 == len(files):
            print(f"{i + 1}/{len(files)} clips", file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    n_p = max(len(q) for q in pens)
    patch = np.full((len(pens), n_p, pens[0].shape[1]), np.nan, np.float32)
    for k, q in enumerate(pens):
        patch[k, : len(q)] = q
    frame_s = config.FFT_HOP / config.SR
    np.savez(args.out, ids=np.array(ids), features=np.array(feats, np.float32),
             tags=np.array(tags, np.float32), labels=np.array(labels), patch_features=patch,
             patch_starts=(np.arange(n_p) * hop * frame_s).astype(np.float32),
             patch_seconds=np.float32(n_frames * frame_s))
    print(f"wrote {args.out}: {len(ids)} clips x {len(feats[0])} features ({args.model}, "
          f"{time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
