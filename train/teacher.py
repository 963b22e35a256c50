"""The pretrained teacher: musicnn's MSD_musicnn as one ONNX graph from 16 kHz audio to its 200-d layer.

Why: musicnn (Pons & Serra 2019; ISC licence, Music Technology Group, Universitat Pompeu Fabra;
its PyPI wheel carries the weights) was trained on the Million Song Dataset's last.fm tags, far
more music than 4Q's 716 clips. A logistic regression on its 200-d penultimate layer, fused with
the shipped CNN's logits, passes issue #17's floors (docs/teacher.md). The runtime must never need
TensorFlow, so the model is converted once and shipped as ``models/musicnn-msd.onnx``:

- input ``audio``: float32 ``[batch, 48128]``, mono 16 kHz (``WINDOW_SAMPLES``): one musicnn patch
  (187 frames of hop 256, 2.992 s, ``PATCH_SAMPLES``) and the 256 samples before it, which its
  first frame reads (``patch_windows`` cuts them from a clip, with zeros before the clip's start);
- outputs ``features``: ``[batch, 200]`` (the penultimate layer, after its batch norm) and
  ``tags``: ``[batch, 50]`` (sigmoid probabilities of ``MSD_LABELS``).

Inside the graph: musicnn's own front end, rebuilt with ``onnx.helper`` (``frontend_model``):
librosa's centred STFT (n_fft 512, hop 256, periodic Hann) as musicnn computes it over a whole clip
(frame t centred on the patch's sample 256 t, so it reads 256 samples before the patch; at the
clip's start those are librosa's centre padding, zeros), power, librosa's Slaney mel filters (96
bands, 0-8 kHz, ``slaney_mel_filters``), the float16 round trip of musicnn's ``batch_data`` (it
casts the mel power to float16 before the log) and ``log10(10000 x + 1)``; then the converted
TensorFlow graph (``convert_core``), merged with ``onnx.compose``.

TensorFlow lives only in its own virtual environment, never in the project's (pins measured in
/work/shared/recipes/pretrained-musicnn.md; newer numpy/protobuf/ml-dtypes break TF 2.15)::

    python3 -m venv /tmp/mnn-venv
    /tmp/mnn-venv/bin/pip install "tensorflow-cpu==2.15.1" "numpy==1.26.4" librosa soundfile soxr \\
        "tf2onnx==1.17.0" "onnx==1.17.0" "onnxruntime==1.20.1" "protobuf==4.25.9" "ml-dtypes==0.3.2"
    /tmp/mnn-venv/bin/pip install --no-deps musicnn==0.1.0   # its own pins predate TF 2
    /tmp/mnn-venv/bin/python -m train ship teacher       # = train.teacher build: models/musicnn-msd.*
    /tmp/mnn-venv/bin/python -m train.teacher parity --clips 24  # against TF + librosa, into the card
    /tmp/mnn-venv/bin/python -m train.teacher reference          # tests/data/musicnn-msd-demo.npz

(run from the repository root). ``frontend_model``, ``slaney_mel_filters`` and ``logmel_reference``
need only numpy and onnx, so the project's tests use them without TensorFlow.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from mer_live.common.hashing import sha256_of

from .paths import MODELS, ROOT, shared_data_dir

SR = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
N_FRAMES = 187  # musicnn's patch: librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
PATCH_SAMPLES = N_FRAMES * HOP  # 47872 samples, 2.992 s: where musicnn's patches start and end
CONTEXT = N_FFT // 2  # the first frame is centred on the patch's first sample: 256 samples before it
WINDOW_SAMPLES = CONTEXT + PATCH_SAMPLES  # 48128 = 188 blocks of 256: the model's input
N_FEATURES = 200
MODEL = "MSD_musicnn"
OPSET = 17

ONNX_PATH = MODELS / "musicnn-msd.onnx"
REFERENCE_NPZ = ROOT / "tests" / "data" / "musicnn-msd-demo.npz"
LICENCE = ("ISC. Copyright (c) Music Technology Group, Universitat Pompeu Fabra 2019. Code developed by "
           "Jordi Pons (www.jordipons.me). Permission to use, copy, modify, and/or distribute this "
           "software for any purpose with or without fee is hereby granted, provided that the above "
           "copyright notice and this permission notice appear in all copies. THE SOFTWARE IS PROVIDED "
           "\"AS IS\" AND THE AUTHOR DISCLAIMS ALL WARRANTIES (full text: the musicnn 0.1.0 wheel's "
           "LICENSE.md).")


# ------------------------------------------------------------------------------ front end (numpy, onnx)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's ``htk=False``): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep,
                    f / f_sp)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def slaney_mel_filters(sr: int = SR, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """``[n_mels, 1 + n_fft // 2]`` float32: librosa.filters.mel's defaults (Slaney scale and area
    norm, 0 Hz to sr / 2), re-implemented so the project needs no librosa; the venv's parity run
    checks it against librosa."""
    fft_f = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_f)
    w = np.zeros((n_mels, len(fft_f)), np.float32)
    for i in range(n_mels):
        w[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    w *= (2.0 / (mel_f[2: n_mels + 2] - mel_f[:n_mels]))[:, None]
    return w


def _hann() -> np.ndarray:
    """The periodic Hann window of ``scipy.signal.get_window("hann", N_FFT)`` (librosa's)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)


def logmel_reference(audio: np.ndarray) -> np.ndarray:
    """``[batch, 187, 96]`` float32 log-mel patches of ``[batch, 48128]`` windows, in numpy (float64
    FFT): what musicnn's ``batch_data`` computes for the patch that starts 256 samples into the
    window, the front end the ONNX graph must reproduce."""
    x = np.atleast_2d(np.asarray(audio, np.float64))
    if x.shape[1] != WINDOW_SAMPLES:
        raise ValueError(f"logmel_reference: expected {WINDOW_SAMPLES} samples a row, got {x.shape[1]}")
    idx = np.arange(N_FRAMES)[:, None] * HOP + np.arange(N_FFT)[None, :]
    spec = np.fft.rfft(x[:, idx] * _hann(), axis=-1)
    power = (np.abs(spec) ** 2).astype(np.float32)  # librosa keeps complex64, so float32 power
    mel = power @ slaney_mel_filters().T
    return np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1).astype(np.float32)


def frontend_model(ir_version: int = 8, opset: int = OPSET) -> onnx.ModelProto:  # noqa: F821
    """ONNX graph ``audio [batch, 47872]`` -> ``logmel [batch, 187, 96]`` (see ``logmel_reference``).

    Frames by a reshape into 256-sample blocks + two shifted slices (no gather), the
    windowed DFT of all 257 bins as one MatMul (cos and sin columns side by side; the matrix built
    from indices in the graph, a constant after onnxruntime's constant folding), mel filters as a
    second MatMul, the float16 round trip as two Casts."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nb = N_FRAMES + 1  # 256-sample blocks; frame t = blocks t and t + 1
    init = [
        numpy_helper.from_array(np.array([-1, nb, HOP], np.int64), "blocks_shape"),
        numpy_helper.from_array(np.array([0], np.int64), "s0"),
        numpy_helper.from_array(np.array([1], np.int64), "s1"),
        numpy_helper.from_array(np.array([N_FRAMES], np.int64), "e0"),
        numpy_helper.from_array(np.array([nb], np.int64), "e1"),
        numpy_helper.from_array(np.array([1], np.int64), "ax1"),
        numpy_helper.from_array(np.array([2], np.int64), "ax2"),
        numpy_helper.from_array(np.array([1 + N_FFT // 2], np.int64), "nbins"),
        numpy_helper.from_array(np.array([2 + N_FFT], np.int64), "nbins2"),
        # the DFT matrix is computed from 6 kB of indices (folded into a constant when the session
        # loads) rather than stored: 1 MB less file; (n k) mod N in integers keeps the angles exact
        numpy_helper.from_array(np.arange(N_FFT, dtype=np.int64)[:, None], "n_idx"),
        numpy_helper.from_array(np.arange(1 + N_FFT // 2, dtype=np.int64)[None, :], "k_idx"),
        numpy_helper.from_array(np.array(N_FFT, np.int64), "n_fft"),
        numpy_helper.from_array(np.array(2 * np.pi / N_FFT, np.float32), "two_pi_n"),
        numpy_helper.from_array(_hann().astype(np.float32)[:, None], "window"),
        numpy_helper.from_array(np.ascontiguousarray(slaney_mel_filters().T), "mel_t"),
        numpy_helper.from_array(np.array(10000.0, np.float32), "c10000"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(1 / math.log(10), np.float32), "inv_ln10"),
    ]
    nodes = [
        helper.make_node("Mul", ["n_idx", "k_idx"], ["nk"]),
        helper.make_node("Mod", ["nk", "n_fft"], ["nk_mod"]),
        helper.make_node("Cast", ["nk_mod"], ["nk_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["nk_f", "two_pi_n"], ["angle"]),
        helper.make_node("Cos", ["angle"], ["cos"]),
        helper.make_node("Sin", ["angle"], ["sin"]),
        helper.make_node("Concat", ["cos", "sin"], ["cos_sin"], axis=1),
        helper.make_node("Mul", ["cos_sin", "window"], ["dft"]),
        helper.make_node("Reshape", ["audio", "blocks_shape"], ["blocks"]),
        helper.make_node("Slice", ["blocks", "s0", "e0", "ax1"], ["left"]),
        helper.make_node("Slice", ["blocks", "s1", "e1", "ax1"], ["right"]),
        helper.make_node("Concat", ["left", "right"], ["frames"], axis=2),
        helper.make_node("MatMul", ["frames", "dft"], ["spec"]),
        helper.make_node("Slice", ["spec", "s0", "nbins", "ax2"], ["re"]),
        helper.make_node("Slice", ["spec", "nbins", "nbins2", "ax2"], ["im"]),
        helper.make_node("Mul", ["re", "re"], ["re2"]),
        helper.make_node("Mul", ["im", "im"], ["im2"]),
        helper.make_node("Add", ["re2", "im2"], ["power"]),
        helper.make_node("MatMul", ["power", "mel_t"], ["mel"]),
        helper.make_node("Cast", ["mel"], ["mel16"], to=TensorProto.FLOAT16),
        helper.make_node("Cast", ["mel16"], ["mel32"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["mel32", "c10000"], ["scaled"]),
        helper.make_node("Add", ["scaled", "one"], ["shifted"]),
        helper.make_node("Log", ["shifted"], ["ln"]),
        helper.make_node("Mul", ["ln", "inv_ln10"], ["logmel"]),
    ]
    graph = helper.make_graph(
        nodes, "musicnn_frontend",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", WINDOW_SAMPLES])],
        [helper.make_tensor_value_info("logmel", TensorProto.FLOAT, ["batch", N_FRAMES, N_MELS])],
        init)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="mer-live train.teacher")
    m.ir_version = ir_version
    onnx.checker.check_model(m)
    return m


# ------------------------------------------------------------------------------ TensorFlow (venv only)


def musicnn_dir(model: str = MODEL) -> Path:
    """The installed package's checkpoint folder of ``model``."""
    from musicnn import models

    return Path(models.__file__).resolve().parent / model


def _tf_graph(model: str = MODEL):
    """musicnn's inference graph (as ``musicnn.extractor`` builds it, ``is_training`` a Python False so
    batch norm and dropout freeze) with its checkpoint restored: ``(session, input, features, tags)``."""
    import tensorflow as tf
    from musicnn import configuration as config
    from musicnn import models

    tf.compat.v1.disable_eager_execution()
    labels = config.MSD_LABELS if model.startswith("MSD") else config.MTT_LABELS
    g = tf.Graph()
    with g.as_default():
        with tf.name_scope("model"):
            x = tf.compat.v1.placeholder(tf.float32, [None, N_FRAMES, N_MELS], name="logmel")
            logits, *_, penultimate = models.define_model(x, False, model, len(labels))
        feats = tf.identity(penultimate, name="features")
        tags = tf.nn.sigmoid(logits, name="tags")
        conf = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
        sess = tf.compat.v1.Session(graph=g, config=conf)
        tf.compat.v1.train.Saver().restore(sess, str(musicnn_dir(model)) + "/")
    return sess, x, feats, tags


def convert_core(model: str = MODEL, opset: int = OPSET) -> onnx.ModelProto:  # noqa: F821
    """musicnn's graph from log-mel patches ``[n, 187, 96]`` to ``features`` and ``tags``, frozen and
    converted by tf2onnx (needs the venv)."""
    import tensorflow as tf
    import tf2onnx

    sess, x, feats, tags = _tf_graph(model)
    frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
        sess, sess.graph.as_graph_def(), ["features", "tags"])
    core, _ = tf2onnx.convert.from_graph_def(frozen, input_names=[x.name],
                                             output_names=["features:0", "tags:0"], opset=opset)
    rename = {"features:0": "features", "tags:0": "tags"}  # plain output names, everywhere they occur
    for node in core.graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
        node.output[:] = [rename.get(o, o) for o in node.output]
    for o in core.graph.output:
        o.name = rename.get(o.name, o.name)
    return core


def wrap(frontend, core):
    """One graph: ``frontend_model``'s ``logmel`` feeding ``core``'s input."""
    import onnx
    from onnx import compose

    core_in = core.graph.input[0].name
    merged = compose.merge_models(frontend, core, io_map=[("logmel", core_in)])
    merged.graph.name = "musicnn_msd_audio"
    merged.producer_name = "mer-live train.teacher (tf2onnx + onnx.compose)"
    onnx.checker.check_model(merged)
    return merged


def tf_reference(audio: np.ndarray, model: str = MODEL, graph=None) -> dict[str, np.ndarray]:
    """What the original computes for ``[n, 48128]`` windows: librosa's mel (musicnn's ``batch_data``
    call, float16 cast, log) and the TensorFlow graph. Returns logmel, features, tags. librosa's
    frames 1..187 of a window are centred on the patch's samples 0, 256, ... and read no padding."""
    import librosa

    mels = []
    for row in np.atleast_2d(audio):
        rep = librosa.feature.melspectrogram(y=np.asarray(row, np.float32), sr=SR, hop_length=HOP,
                                             n_fft=N_FFT, n_mels=N_MELS).T[1: N_FRAMES + 1]
        mels.append(np.log10(10000 * rep.astype(np.float16) + 1))
    logmel = np.asarray(mels, np.float32)
    sess, x, feats, tags = graph or _tf_graph(model)
    f, t = sess.run([feats, tags], feed_dict={x: logmel})
    return {"logmel": logmel, "features": f, "tags": t}


# ------------------------------------------------------------------------------ onnxruntime (anywhere)


def session(path: Path = ONNX_PATH, threads: int = 1, outputs_logmel: bool = False):
    """An onnxruntime session on the teacher, ``threads`` intra-op threads, sequential."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_onnx(sess, audio: np.ndarray, batch: int = 16) -> dict[str, np.ndarray]:
    """``features`` and ``tags`` of ``[n, 48128]`` windows (``patch_windows``), ``batch`` a call."""
    audio = np.ascontiguousarray(np.atleast_2d(audio), np.float32)
    if audio.shape[1] != WINDOW_SAMPLES:
        raise ValueError(f"teacher: expected {WINDOW_SAMPLES} samples a window, got {audio.shape[1]}")
    out = {"features": [], "tags": []}
    for i in range(0, len(audio), batch):
        f, t = sess.run(["features", "tags"], {"audio": audio[i: i + batch]})
        out["features"].append(f)
        out["tags"].append(t)
    return {k: np.concatenate(v) if v else np.zeros((0, 200 if k == "features" else 50), np.float32)
            for k, v in out.items()}


def patch_starts(n_samples: int, hop_seconds: float = 1.0) -> np.ndarray:
    """Start samples of the whole patches of a clip of ``n_samples``, one every ``hop_seconds``
    (musicnn's own ``batch_data`` steps in frames: 187 back to back, 62 for ~1 s)."""
    hop = int(round(hop_seconds * SR))
    if hop < 1:
        raise ValueError("hop_seconds must be positive")
    if n_samples < PATCH_SAMPLES:
        return np.zeros(0, np.int64)
    return np.arange(0, n_samples - PATCH_SAMPLES + 1, hop, dtype=np.int64)


def patch_windows(y: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """``[len(starts), 48128]`` model inputs for the patches of clip ``y`` starting at ``starts``: each
    patch with the 256 samples before it (zeros before the clip's start, librosa's centre padding)."""
    y = np.asarray(y, np.float32)
    padded = np.concatenate([np.zeros(CONTEXT, np.float32), y])
    out = np.empty((len(starts), WINDOW_SAMPLES), np.float32)
    for i, s in enumerate(np.asarray(starts, np.int64)):
        if s < 0 or s + PATCH_SAMPLES > len(y):
            raise ValueError(f"patch at {s} does not fit a clip of {len(y)} samples")
        out[i] = padded[s: s + WINDOW_SAMPLES]
    return out


# ------------------------------------------------------------------------------ commands (venv)


def _card_path(onnx_path: Path) -> Path:
    return onnx_path.with_suffix(".json")


def build(out: Path, model: str = MODEL) -> dict:
    """Convert, wrap, save ``out`` and its card; return the card."""
    import onnx
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx
    from musicnn import configuration as config

    t0 = time.perf_counter()
    core = convert_core(model)
    front = frontend_model(ir_version=core.ir_version, opset=OPSET)
    merged = wrap(front, core)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(merged, str(out))
    seconds = time.perf_counter() - t0
    ckpt = musicnn_dir(model) / ".data-00000-of-00001"
    labels = config.MSD_LABELS if model.startswith("MSD") else config.MTT_LABELS
    card = {
        "name": out.stem,
        "kind": "teacher (pretrained features, not an arousal/valence model)",
        "sample_rate": SR,
        "window_samples": WINDOW_SAMPLES,
        "window_seconds": WINDOW_SAMPLES / SR,
        "input": (f"audio: float32 [batch, {WINDOW_SAMPLES}], mono 16 kHz: one musicnn patch (187 frames, "
                  f"{PATCH_SAMPLES} samples) and the {CONTEXT} samples before it (zeros before a "
                  "clip's start)"),
        "patch_samples": PATCH_SAMPLES,
        "outputs": ["features", "tags"],
        "output_shapes": {"features": ["batch", N_FEATURES], "tags": ["batch", len(labels)]},
        "tags": list(labels),
        "description": (
            f"musicnn {model} (Pons & Serra 2019, trained on the Million Song Dataset's last.fm tags): "
            "features = the 200-d penultimate layer (dense + ReLU + batch norm), tags = sigmoid of the "
            "50 tag logits. Front end inside the graph: librosa's centred STFT (n_fft 512, hop 256, "
            "periodic Hann, frames centred on the patch's samples 0, 256, ... as in musicnn's whole-clip "
            "mel), power, Slaney mel (96 bands, 0-8 kHz), the "
            "float16 cast of musicnn's batch_data, log10(10000 x + 1)."),
        "licence": "ISC",
        **({} if model.startswith("MSD") else {"licence_note": (
            "weights trained on MagnaTagATune (Magnatune audio, CC BY-NC-SA): research probe only, "
            "never shipped nor distilled into a shipped model")}),
        "licence_text": LICENCE,
        "copyright": "Music Technology Group, Universitat Pompeu Fabra 2019 (Jordi Pons)",
        "provenance": {
            "package": "musicnn", "version": "0.1.0", "checkpoint": f"musicnn/{model}/.data-00000-of-00001",
            "checkpoint_sha256": sha256_of(ckpt),
            "converted_with": {"tensorflow-cpu": tf.__version__, "tf2onnx": tf2onnx.__version__,
                               "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                               "numpy": np.__version__, "opset": OPSET},
            "command": "/tmp/mnn-venv/bin/python -m train ship teacher (mer-train ship teacher in the "
                       "musicnn venv, = python -m train.teacher build; venv recipe: train/teacher.py)",
            "conversion_seconds": round(seconds, 2),
            "created": dt.date.today().isoformat(),
        },
        "sha256": sha256_of(out),
    }
    _card_path(out).write_text(json.dumps(card, indent=1) + "\n")
    return card


def _clip_audio_librosa(path: Path) -> np.ndarray:
    import librosa

    y, _ = librosa.load(str(path), sr=SR)
    return y.astype(np.float32)


def parity(onnx_path: Path, clips: int, hop_seconds: float, seed: int = 0) -> dict:
    """Max |ONNX - original| on real 4Q clips (decoded by musicnn's librosa.load): the mel stage,
    the 200-d layer and the tags of patches every ``hop_seconds`` (librosa's mel of each window),
    and the 200-d layer against musicnn's own extractor (``batch_data``: the mel of the whole clip,
    then back-to-back patches)."""
    from musicnn.extractor import batch_data
    from tqdm import tqdm

    audio_dir = shared_data_dir() / "4q" / "audio"
    files = sorted(audio_dir.glob("*.mp3"))
    if not files:
        raise SystemExit(f"teacher: error: no 4Q audio in {audio_dir}")
    pick = np.random.default_rng(seed).choice(len(files), size=min(clips, len(files)), replace=False)
    sess = session(onnx_path, threads=1)
    front = session_frontend(threads=1)
    graph = _tf_graph(MODEL)
    d = {"logmel": 0.0, "features": 0.0, "tags": 0.0, "inclip_features": 0.0, "inclip_first_patch": 0.0}
    n_patches, n_cells, n_cells_diff, feat_scale = 0, 0, 0, 0.0
    for i in tqdm(sorted(pick), desc="parity", unit="clip"):
        y = _clip_audio_librosa(files[i])
        starts = patch_starts(len(y), hop_seconds)
        if len(starts) == 0:
            continue
        patches = patch_windows(y, starts)
        ref = tf_reference(patches, graph=graph)
        ours = run_onnx(sess, patches)
        mel = front.run(["logmel"], {"audio": patches})[0]
        diff_mel = np.abs(mel - ref["logmel"])
        d["logmel"] = max(d["logmel"], float(diff_mel.max()))
        n_cells += diff_mel.size
        n_cells_diff += int((diff_mel > 1e-5).sum())
        d["features"] = max(d["features"], float(np.abs(ours["features"] - ref["features"]).max()))
        d["tags"] = max(d["tags"], float(np.abs(ours["tags"] - ref["tags"]).max()))
        feat_scale = max(feat_scale, float(np.abs(ref["features"]).max()))
        n_patches += len(patches)
        # musicnn's own extractor: back-to-back patches cut from the whole clip's mel
        batch, _ = batch_data(str(files[i]), N_FRAMES, N_FRAMES)
        sess_tf, x, feats, _ = graph
        f_tf = sess_tf.run(feats, feed_dict={x: batch})
        k = min(len(batch), len(y) // PATCH_SAMPLES)  # its last patch may read librosa's end padding
        f_ours = run_onnx(sess, patch_windows(y, np.arange(k) * PATCH_SAMPLES))["features"]
        dif = np.abs(f_ours - f_tf[:k]).max(axis=1)
        d["inclip_first_patch"] = max(d["inclip_first_patch"], float(dif[0]))
        d["inclip_features"] = max(d["inclip_features"], float(dif.max()))
    return {"clips": int(len(pick)), "patches": n_patches, "patch_hop_seconds": hop_seconds,
            "decode": "librosa.load(sr=16000) (musicnn's own chain)",
            "max_abs_diff_logmel": d["logmel"],
            "logmel_cells_differing_over_1e-5": n_cells_diff, "logmel_cells": n_cells,
            "max_abs_diff_features": d["features"], "max_abs_features": feat_scale,
            "max_abs_diff_tags": d["tags"],
            "max_abs_diff_features_vs_extractor_first_patch": d["inclip_first_patch"],
            "max_abs_diff_features_vs_extractor_in_clip_patches": d["inclip_features"],
            "seed": seed, "date": dt.date.today().isoformat()}


def session_frontend(threads: int = 1):
    """An onnxruntime session on ``frontend_model`` alone (the mel stage's parity)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(frontend_model().SerializeToString(), so, providers=["CPUExecutionProvider"])


def reference(out: Path, starts_seconds: tuple[float, ...] = (2.0, 14.5, 26.0, 33.0)) -> dict:
    """Patches of the bundled demo piece (self-made, ``mer_live.sources.demo``) and the original's outputs
    for them: the tests compare the ONNX file with these without TensorFlow."""
    from mer_live.sources.demo import demo_audio

    y = demo_audio(SR)
    starts = np.array([int(s * SR) for s in starts_seconds], np.int64)
    patches = patch_windows(y, starts)
    ref = tf_reference(patches)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, starts=starts, demo_sr=np.int64(SR), features=ref["features"],
                        tags=ref["tags"], logmel=ref["logmel"])
    return {"patches": len(starts), "bytes": out.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.teacher", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="convert musicnn (TF venv) and write models/musicnn-msd.onnx + card")
    b.add_argument("--out", type=Path, default=ONNX_PATH)
    b.add_argument("--model", default=MODEL, choices=("MSD_musicnn", "MTT_musicnn"),
                   help="MTT_musicnn: a probe only (non-commercial training data); --out under cache/")
    p = sub.add_parser("parity", help="compare with TF + librosa on real 4Q clips; writes into the card")
    p.add_argument("--onnx", type=Path, default=ONNX_PATH)
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--hop", type=float, default=1.0, help="seconds between patch starts")
    r = sub.add_parser("reference", help="TF outputs for patches of the demo piece (tests/data)")
    r.add_argument("--out", type=Path, default=REFERENCE_NPZ)
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.cmd == "build":
        if args.model != MODEL and args.out.resolve().parent == ONNX_PATH.parent:
            print("teacher: error: MTT_musicnn's weights may be probed, never shipped: --out under cache/",
                  file=sys.stderr)
            return 2
        card = build(args.out, args.model)
        print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, sha256 {card['sha256'][:12]}...) "
              f"in {card['provenance']['conversion_seconds']} s")
    elif args.cmd == "parity":
        res = parity(args.onnx, args.clips, args.hop)
        res["command"] = "python -m train.teacher " + shlex.join(sys.argv[1:] if argv is None else argv)
        card_path = _card_path(args.onnx)
        card = json.loads(card_path.read_text())
        card["parity"] = res
        card_path.write_text(json.dumps(card, indent=1) + "\n")
        print(json.dumps(res, indent=1))
    else:
        print(reference(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
