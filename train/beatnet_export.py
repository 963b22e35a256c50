"""BeatNet's CRNN (Heydari et al. 2021, CC BY 4.0) to ONNX with the LSTM's state as explicit inputs.

    python -m train.beatnet_export [--model 1] [--clip cache/beatreal/00.wav] [--path /tmp/bnenv:/tmp/bnshim]

Why: issue #31 item 3. BeatNet's online mode beats aubio on the real-music known-grid set, but it
runs on torch and madmom, which the live runtime never imports. Its CRNN is causal (a
unidirectional 2-layer LSTM over 20-ms frames), so one frame in, its hidden and cell state
carried from call to call, gives the same activations as BeatNet over a whole clip. This writes
``models/beatnet-<model>.onnx``: inputs ``feats`` [frames, 272] (``mer_live.analysers.beatnet_dsp``'s
log-filtered spectrogram + its positive difference), ``h`` and ``c`` [2, 1, 150]; outputs ``act``
[frames, 2] (beat, downbeat probability: BeatNet's softmax over beat / downbeat / none) and
``h_out``, ``c_out``. And a card ``models/beatnet-<model>.json`` with the source, the licence, the
BeatNet version and the parity measured here: ONNX one frame per call against torch over the
whole clip, and the numpy front end against BeatNet's own madmom features, on a real clip.

Needs BeatNet 1.1.3 and a patched madmom (bench/bench_beatnet.py's docstring says how); torch is
only needed here, never at run time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
N_FEAT, N_HID, N_LAYERS = 272, 150, 2
WEIGHTS = {1: "GTZAN held out in training", 2: "Ballroom held out in training", 3: "Rock corpus held out"}


def load_clip(path: Path) -> np.ndarray:
    """Mono float32 at 22050 Hz (BeatNet's rate), resampled with scipy's polyphase filter."""
    from math import gcd

    import soundfile as sf
    from scipy.signal import resample_poly

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    g = gcd(sr, 22050)
    return resample_poly(x, 22050 // g, sr // g).astype(np.float32)


def export(model_no: int, clip: Path, out_dir: Path, bn_path: str, opset: int = 17) -> dict:
    for p in reversed(bn_path.split(":")):
        if p and p not in sys.path:
            sys.path.insert(0, p)
    import BeatNet as bn_pkg
    import onnxruntime as ort
    import torch
    from BeatNet.log_spect import LOG_SPECT
    from BeatNet.model import BDA

    from mer_live.analysers.beatnet_dsp import LogSpect

    weights = Path(bn_pkg.__file__).parent / "models" / f"model_{model_no}_weights.pt"
    net = BDA(N_FEAT, N_HID, N_LAYERS, "cpu")
    state = torch.load(str(weights), map_location="cpu")
    missing, unexpected = net.load_state_dict(state, strict=False)  # as BeatNet loads it
    if [k for k in missing if not k.startswith(("hidden", "cell"))] or unexpected:
        raise RuntimeError(f"{weights}: keys missing {missing}, unexpected {unexpected}")
    net.eval()

    class Step(torch.nn.Module):
        """BDA.forward with the LSTM state in and out (BDA keeps it on the module)."""

        def __init__(self, m: BDA) -> None:
            super().__init__()
            self.m = m

        def forward(self, feats: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
            m = self.m
            x = feats.unsqueeze(1)  # [T, 1, 272]
            x = torch.nn.functional.max_pool1d(torch.relu(m.conv1(x)), 2)
            x = m.linear0(x.flatten(1)).unsqueeze(0)  # [1, T, 150]
            y, (h2, c2) = m.lstm(x, (h, c))
            p = torch.softmax(m.linear(y[0]), dim=-1)  # [T, 3]: beat, downbeat, none
            return p[:, :2], h2, c2

    step = Step(net).eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"beatnet-{model_no}.onnx"
    z = torch.zeros(N_LAYERS, 1, N_HID)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(step, (torch.zeros(3, N_FEAT), z, z), str(onnx_path),
                          input_names=["feats", "h", "c"], output_names=["act", "h_out", "c_out"],
                          dynamic_axes={"feats": {0: "frames"}, "act": {0: "frames"}},
                          opset_version=opset, dynamo=False)

    # parity 1: the numpy front end against BeatNet's madmom LOG_SPECT, on a real clip
    y = load_clip(clip)
    ref = LOG_SPECT(sample_rate=22050, win_length=int(64 * 0.001 * 22050), hop_size=int(20 * 0.001 * 22050),
                    n_bands=[24], mode="online").process_audio(y).T.astype(np.float32)
    ours = LogSpect().process(y)
    feat_diff = float(np.max(np.abs(ours - ref)))
    # parity 2: torch over the whole clip (BeatNet's activation_extractor_online) against ONNX
    # one frame per call, state carried
    net.hidden = torch.zeros(N_LAYERS, 1, N_HID)
    net.cell = torch.zeros(N_LAYERS, 1, N_HID)
    with torch.no_grad():
        want = net.final_pred(net(torch.from_numpy(ref).unsqueeze(0))[0]).numpy()[:2].T
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    h = np.zeros((N_LAYERS, 1, N_HID), np.float32)
    c = h.copy()
    got = np.zeros_like(want)
    for i in range(len(ref)):
        got[i], h, c = (v[0] if k == 0 else v for k, v in
                        enumerate(sess.run(None, {"feats": ref[i:i + 1], "h": h, "c": c})))
    act_diff = float(np.max(np.abs(got - want)))
    # and the whole chain: our features through ONNX against BeatNet's features through torch
    h = np.zeros((N_LAYERS, 1, N_HID), np.float32)
    chain, _, _ = sess.run(None, {"feats": ours, "h": h, "c": h})
    chain_diff = float(np.max(np.abs(chain - want)))
    import importlib.metadata as md

    version = md.version("BeatNet") if _has_dist("BeatNet") else _dist_version(bn_path, "BeatNet")
    card = {
        "name": f"beatnet-{model_no}",
        "kind": "beat and downbeat activations (a causal CRNN), for mer_live.analysers.beatnet",
        "sample_rate": 22050,
        "hop_samples": 441,
        "frame_samples": 1411,
        "fps": 50,
        "input": "feats: float32 [frames, 272]: madmom's LOG_SPECT as BeatNet configures it (22050 Hz, "
                 "1411-sample Hann frames centred on every 441st sample, 1411-point FFT, 24 bands per "
                 "octave 30-17000 Hz (136 log-spaced triangular filters, area-normalised), log10(1 + x), "
                 "then its positive difference to the previous frame (madmom's diff_ratio 0.5: 1 frame), "
                 "stacked: 136 + 136); "
                 "h, c: float32 [2, 1, 150], the LSTM's state (zeros at the start)",
        "outputs": ["act", "h_out", "c_out"],
        "output_shapes": {"act": ["frames", 2], "h_out": [2, 1, 150], "c_out": [2, 1, 150]},
        "scale": "act[:, 0] beat, act[:, 1] downbeat: BeatNet's softmax over (beat, downbeat, no beat)",
        "description": f"BeatNet model {model_no} ({WEIGHTS[model_no]}): conv1d (2 x 10) + max-pool + "
                       "linear 150 + 2-layer unidirectional LSTM 150 + linear 3 + softmax, exported "
                       "with the LSTM state as explicit inputs/outputs so that it runs one frame per call",
        "licence": "CC-BY-4.0",
        "licence_text": "Creative Commons Attribution 4.0 International "
                        "(https://creativecommons.org/licenses/by/4.0/). BeatNet by Mojtaba Heydari, "
                        "Frank Cwitkowitz and Zhiyao Duan (University of Rochester), "
                        "https://github.com/mjhydri/BeatNet. Changes: converted from PyTorch to ONNX, "
                        "the LSTM state made explicit; the weights are unchanged.",
        "attribution": "M. Heydari, F. Cwitkowitz, Z. Duan, \"BeatNet: CRNN and Particle Filtering for "
                       "Online Joint Beat Downbeat and Meter Tracking\", ISMIR 2021",
        "provenance": {
            "package": "BeatNet", "version": version,
            "weights": f"BeatNet/models/model_{model_no}_weights.pt",
            "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
            "converted_with": f"train/beatnet_export.py, torch {torch.__version__}, opset {opset}",
        },
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "parity": {
            "clip": f"{clip.parent.name}/{clip.name} ({len(y) / 22050:.1f} s, resampled to 22050 Hz)",
            "frames": len(ref),
            "max_abs_diff_feats_numpy_vs_madmom": feat_diff,
            "max_abs_diff_act_onnx_per_frame_vs_torch": act_diff,
            "max_abs_diff_act_numpy_feats_onnx_vs_beatnet": chain_diff,
        },
    }
    (out_dir / f"beatnet-{model_no}.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card


def _has_dist(name: str) -> bool:
    import importlib.metadata as md

    try:
        md.version(name)
        return True
    except md.PackageNotFoundError:
        return False


def _dist_version(bn_path: str, name: str) -> str:
    for p in bn_path.split(":"):
        for d in Path(p).glob(f"{name}-*.dist-info"):
            return d.name[len(name) + 1:-len(".dist-info")]
    return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=int, nargs="+", default=[1, 2], choices=(1, 2, 3))
    ap.add_argument("--clip", type=Path, default=Path("/work/main/cache/beatreal/00.wav"),
                    help="a real recording for the parity check")
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    ap.add_argument("--path", default="/tmp/bnenv:/tmp/bnshim",
                    help="where BeatNet and the patched madmom are installed (prepended to sys.path)")
    args = ap.parse_args(argv)
    for m in args.model:
        card = export(m, args.clip, args.out, args.path)
        print(f"beatnet-{m}: {json.dumps(card['parity'])}")
        par = card["parity"]
        if par["max_abs_diff_act_onnx_per_frame_vs_torch"] > 1e-4:
            print(f"beatnet-{m}: ONNX differs from torch by more than 1e-4", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
