"""BeatNet's port (``mer_live.analysers.beatnet*``): the numpy front end, the numpy particle filter
and the tracker through a real onnxruntime session on the shipped ``models/beatnet-1.onnx``.

The parity tests against BeatNet itself (madmom features, torch activations, BeatNet's own beat
list with the same seed) need BeatNet 1.1.3 and a patched madmom (bench/bench_beatnet.py's
docstring; not a project dependency, not on CI): they run where ``MER_BEATNET_PATH`` (default
``/tmp/bnenv:/tmp/bnshim``) holds that install and skip elsewhere.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from mer_live.analysers.beat import BeatConfig, make_tracker
from mer_live.analysers.beatnet import (
    BeatNetTracker,
    GapFill,
    HybridTracker,
    SourcePick,
    beatnet_model_path,
    load_beatnet,
)
from mer_live.analysers.beatnet_dsp import HOP, SR, LogSpect, log_filterbank
from mer_live.analysers.beatnet_pf import ParticleFilter
from mer_live.inference.model import ModelError
from mer_live.registry import StartError
from tests.grooves import groove

ROOT = Path(__file__).resolve().parents[2]


def beatnet_or_skip():
    """BeatNet's own modules (torch, madmom) from ``MER_BEATNET_PATH``, or skip."""
    for p in reversed(os.environ.get("MER_BEATNET_PATH", "/tmp/bnenv:/tmp/bnshim").split(":")):
        if p and Path(p).is_dir() and p not in sys.path:
            sys.path.insert(0, p)
    pytest.importorskip("torch")
    pytest.importorskip("madmom")
    return pytest.importorskip("BeatNet.particle_filtering_cascade")


def real_clip(shared_data: Path, seconds: float = 20.0) -> np.ndarray:
    """A real recording (4Q's first clip used by the e2e tests), mono 22050 Hz."""
    import soundfile as sf
    import soxr

    x, sr = sf.read(shared_data / "4q" / "audio" / "MT0001335920.mp3", dtype="float32", always_2d=True)
    return soxr.resample(x[: int(seconds * sr)].mean(axis=1), sr, SR).astype(np.float32)


def test_the_filterbank_is_madmoms_136_bands_each_of_area_one() -> None:
    fb = log_filterbank()
    assert fb.shape == (705, 136)
    assert np.allclose(fb.sum(axis=0), 1.0)
    centres = fb.argmax(axis=0)
    assert np.all(np.diff(centres) > 0), "band centres must rise"


def test_streamed_frames_equal_the_whole_clip_frames() -> None:
    rng = np.random.default_rng(1)
    y, _ = groove(120.0, 4.0, SR, seed=1)
    whole = LogSpect().process(y)
    s, parts, i = LogSpect(), [], 0
    while i < len(y):  # blocks of any size, as the live input gives them
        n = int(rng.integers(1, 3000))
        parts.append(s.push(y[i:i + n]))
        i += n
    streamed = np.concatenate(parts)
    assert len(streamed) >= len(whole) - 2  # the last frames wait for their 32 ms of look-ahead
    np.testing.assert_array_equal(streamed, whole[: len(streamed)])


def test_the_particle_filter_locks_onto_a_pulse_of_activations() -> None:
    """A beat activation peak (3 frames wide, as the CRNN's are) every 25 frames (120 BPM at 50
    fps): after a few seconds one beat each 25 frames, on the peak, and the filter's tempo 120 BPM."""
    n = 50 * 20
    act = np.full((n, 2), 0.02, np.float32)
    for k, v in ((-1, 0.6), (0, 0.9), (1, 0.6)):
        act[7 + k::25, 0] = v
    pf = ParticleFilter(seed=3)
    beats = np.array([i for i in range(n) if pf.step(float(act[i, 0]), float(act[i, 1]))])
    late = beats[beats > 50 * 8]
    assert len(late) >= 22, beats
    assert np.all(np.diff(late) == 25), np.diff(late)
    assert np.all(np.abs((late - 7 + 12) % 25 - 12) <= 1), late
    assert pf.bpm() == pytest.approx(120.0)


def run_fill(fill: GapFill, net_beats: list[float], bpm: float, until: float) -> list[float]:
    out, todo = [], sorted(net_beats)
    for f in range(int(until * 50)):
        t = f / 50
        b = todo.pop(0) if todo and todo[0] <= t + 1e-9 else None
        out += fill.step(t, b, bpm)
    return out


def test_gap_fill_sends_every_net_beat_and_the_skipped_ones_then_stops() -> None:
    """120 BPM: BeatNet's beats at 1.0, 1.5, 3.0 (two skipped), then one half a beat off (a phase
    change: it goes out at once and the grid follows it), then nothing: four more."""
    got = run_fill(GapFill(hold_beats=4), [1.0, 1.5, 3.0, 3.76], 120.0, 8.0)
    np.testing.assert_allclose(got, [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 3.76, 4.26, 4.76, 5.26, 5.76], atol=1e-9)


def test_gap_fill_does_not_double_a_beat_that_comes_just_after_a_filled_one() -> None:
    got = run_fill(GapFill(), [1.0, 1.5, 2.56], 120.0, 2.9)  # 2.5 filled, BeatNet's 2.56 only re-anchors
    np.testing.assert_allclose(got, [1.0, 1.5, 2.0, 2.5], atol=1e-9)


def test_the_tracker_follows_a_186_bpm_groove_through_onnxruntime() -> None:
    """The whole port, block by block at 44.1 kHz (the shipped model in a real session): BeatNet's
    beats on the true beats (F >= 0.9 after the first 3 s) and the tempo within 2 % of 186."""
    import mir_eval

    sr = 44100
    x, truth = groove(186.0, 12.0, sr, seed=3)
    tr = make_tracker(BeatConfig(tracker="beatnet"))
    assert isinstance(tr, BeatNetTracker)
    tr.reset(sr)
    beats, bpms = [], []
    for i in range(0, len(x) - 511, 512):
        for ev in tr.process(x[i:i + 512], (i + 512) / sr, 0.0):
            if ev.kind == "beat":
                beats.append(ev.t)
                bpms.append(ev.bpm)
    beats_a = np.array(beats)
    f = mir_eval.beat.f_measure(truth[truth > 3.0], beats_a[beats_a > 3.0])
    assert f >= 0.9, (f, np.diff(beats_a))
    assert tr.state().bpm == pytest.approx(186.0, rel=0.02)
    assert tr.state().beats == len(beats)
    assert tr.state().onsets > 0, "aubio's onsets still come"


def run_blocks(tr, x: np.ndarray, sr: int, at=None) -> list:
    """Beat events of ``tr`` over ``x`` in 512-sample blocks (``at(tr, t)`` called before each)."""
    tr.reset(sr)
    out = []
    for i in range(0, len(x) - 511, 512):
        if at is not None:
            at(tr, i / sr)
        out += [ev for ev in tr.process(x[i:i + 512], (i + 512) / sr, 0.0) if ev.kind == "beat"]
    return out


def test_source_pick_follows_the_smoothed_comb_with_hysteresis() -> None:
    pick = SourcePick(on=0.65, off=0.5, up_s=1.0, down_s=8.0)
    assert not pick.update(0.9, 0.1), "one strong score is not yet a groove"
    assert any(pick.update(0.8, 0.1) for _ in range(30)), "3 s of a strong comb picks aubio"
    assert all(pick.update(0.55, 0.1) for _ in range(200)), "between off and on: held"
    assert all(pick.update(0.3, 0.1) for _ in range(10)), "one weak second does not switch (slow fall)"
    assert not pick.update(0.3, 10.0), "a weak comb goes back to BeatNet"
    assert not pick.update(0.0, 0.1) and pick.level == 0.0, "a restarted sound starts the level over"


def test_the_hybrid_sends_exactly_the_picked_trackers_beats() -> None:
    """Held on either side, the hybrid's beats are that tracker's own, beat for beat."""
    sr = 44100
    x, _ = groove(128.0, 10.0, sr, seed=5)

    def held(on: float):
        def at(tr, _t):
            tr.pick.on = tr.pick.off = on
        return at

    aubio = [ev.t for ev in run_blocks(make_tracker(BeatConfig(tracker="aubio")), x, sr)]
    net = [ev.t for ev in run_blocks(make_tracker(BeatConfig(tracker="beatnet")), x, sr)]
    assert len(aubio) > 10 and len(net) > 10
    np.testing.assert_allclose([ev.t for ev in run_blocks(HybridTracker(), x, sr, held(-1.0))], aubio)
    np.testing.assert_allclose([ev.t for ev in run_blocks(HybridTracker(), x, sr, held(2.0))], net)


def test_the_hybrid_picks_aubio_on_a_clean_groove_and_a_switch_never_doubles_a_beat() -> None:
    """The default tracker on a clean groove: aubio's beats once its comb is strong; one beat per
    beat across every switch (forced to BeatNet at 8-10 s here)."""
    import mir_eval

    sr = 44100
    x, truth = groove(128.0, 20.0, sr, seed=3)
    tr = make_tracker(BeatConfig())
    assert isinstance(tr, HybridTracker)
    sources = []

    def at(tr, t):
        if 8.0 <= t < 10.0:
            tr.pick.aubio, tr.pick.level = False, 0.0
        sources.append(tr.pick.aubio)

    beats = run_blocks(tr, x, sr, at)
    t = np.array([ev.t for ev in beats])
    assert sources[-1] and sum(sources) > 0.6 * len(sources), "aubio's beats on the clean groove"
    assert int(np.count_nonzero(np.diff(np.array(sources, int)))) >= 2, "forced to BeatNet and back"
    f = mir_eval.beat.f_measure(truth[truth > 3.0], t[t > 3.0])
    assert f >= 0.9, (f, np.diff(t))
    assert np.diff(t).min() > 0.4 * 60 / 128, "no beat sent twice at a switch"
    assert [ev.count for ev in beats] == list(range(1, len(beats) + 1))
    assert tr.state().bpm == pytest.approx(128.0, rel=0.02)
    assert tr.state().beats == len(beats)


def test_a_missing_or_malformed_model_is_one_line(tmp_path) -> None:
    with pytest.raises(ModelError, match="not found") as e:
        load_beatnet(tmp_path / "nope.onnx")
    assert "\n" not in str(e.value)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an onnx file\n" * 10)
    with pytest.raises(StartError, match="cannot be loaded") as e2:
        make_tracker(BeatConfig(tracker="beatnet", beatnet_path=str(bad)))
    assert "\n" not in str(e2.value)
    # a real ONNX file of another shape: the emotion model is not BeatNet
    other = ROOT / "models" / "mer-presence.onnx"
    if other.is_file():
        with pytest.raises(ModelError, match="not a BeatNet CRNN export"):
            load_beatnet(other)


def test_the_shipped_model_is_found_and_its_card_says_cc_by() -> None:
    import json

    path = beatnet_model_path(BeatConfig(tracker="beatnet"))
    assert path.is_file(), path
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["licence"] == "CC-BY-4.0" and "Heydari" in card["licence_text"]
    assert card["provenance"]["version"] == "1.1.3"
    assert card["parity"]["max_abs_diff_act_onnx_per_frame_vs_torch"] <= 1e-4


# ---- parity with BeatNet itself (needs its install) --------------------------------------------------


def test_features_and_activations_match_beatnet_on_a_real_clip(shared_data) -> None:
    beatnet_or_skip()
    import BeatNet as bn
    import onnxruntime as ort
    import torch
    from BeatNet.log_spect import LOG_SPECT
    from BeatNet.model import BDA

    y = real_clip(shared_data)
    ref = LOG_SPECT(sample_rate=SR, win_length=1411, hop_size=HOP, n_bands=[24], mode="online") \
        .process_audio(y).T.astype(np.float32)
    ours = LogSpect().process(y)
    assert ours.shape == ref.shape
    assert float(np.max(np.abs(ours - ref))) <= 1e-5
    net = BDA(272, 150, 2, "cpu")
    net.load_state_dict(torch.load(Path(bn.__file__).parent / "models" / "model_1_weights.pt"), strict=False)
    net.eval()
    with torch.no_grad():
        want = net.final_pred(net(torch.from_numpy(ref).unsqueeze(0))[0]).numpy()[:2].T
    sess = ort.InferenceSession(str(ROOT / "models" / "beatnet-1.onnx"), providers=["CPUExecutionProvider"])
    h = c = np.zeros((2, 1, 150), np.float32)
    got = []
    for i in range(0, len(ours), 7):  # a few frames per call, the state carried
        a, h, c = sess.run(None, {"feats": ours[i:i + 7], "h": h, "c": c})
        got.append(a)
    assert float(np.max(np.abs(np.concatenate(got) - want))) <= 1e-4


@pytest.mark.parametrize("seed", [0, 5])
def test_the_filter_gives_beatnets_own_beats_with_the_same_seed(shared_data, seed: int) -> None:
    pfc = beatnet_or_skip()
    import onnxruntime as ort

    y = real_clip(shared_data, 30.0)
    sess = ort.InferenceSession(str(ROOT / "models" / "beatnet-1.onnx"), providers=["CPUExecutionProvider"])
    z = np.zeros((2, 1, 150), np.float32)
    act, _, _ = sess.run(None, {"feats": LogSpect().process(y), "h": z, "c": z})
    np.random.seed(seed)
    ref = pfc.particle_filter_cascade(beats_per_bar=[], fps=50, plot=[], mode="online").process(act)
    pf = ParticleFilter(seed=seed, faithful=True)
    ours = np.array([[i / 50, lab] for i, (b, d) in enumerate(act) if (lab := pf.step(float(b), float(d)))])
    assert len(ref) > 20
    np.testing.assert_allclose(ours, ref)  # the same beats, downbeats marked the same
