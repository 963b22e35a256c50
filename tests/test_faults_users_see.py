"""Faults a user would notice, each pinned where it shows: on the wire, in the record, in the
fused value. Issue #27 planted plausible one-line bugs one at a time; these are the kinds that
passed every test before (the teacher's memory ignored, a record column swapped, sections sent
between songs, a broken gate silencing the show, a sink failure escaping a narrowed except).
Each test also has a control that the fault WOULD change, so it cannot pass vacuously."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mer_live.analysers.sections import SectionDetector
from mer_live.inference.model import Model
from mer_live.inference.presence import MusicGate, PresenceModel
from mer_live.live.pipeline import Pipeline, PipelineConfig
from mer_live.live.records import Estimate, Event
from mer_live.outputs.osc import OscConfig, OscSender
from mer_live.outputs.record import Recorder, read_record
from mer_live.sources.filesource import FileSource
from tests.grooves import groove, pad
from tests.net import Wire

SR = 16000


def make_presence(path: Path, value: float, window: int = SR) -> Path:
    """A real ONNX presence model whose output is ``value`` for every window (0: never music;
    NaN: a broken model), with its card."""
    x = helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", window])
    y = helper.make_tensor_value_info("music", TensorProto.FLOAT, ["batch", 1])
    nodes = [
        helper.make_node("Mul", ["audio", "zero"], ["z"]),
        helper.make_node("ReduceMean", ["z", "axes"], ["m"], keepdims=1),
        helper.make_node("Add", ["m", "value"], ["music"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array([1], np.int64), "axes"),
        numpy_helper.from_array(np.array([[value]], np.float32), "value"),
    ]
    model = helper.make_model(helper.make_graph(nodes, "const-presence", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    card = {"name": path.stem, "sample_rate": SR, "window_samples": window, "outputs": ["music"],
            "scale": "0..1", "description": "test presence model",
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    path.with_suffix(".json").write_text(json.dumps(card))
    return path


def run_unpaced(model: Model, x: np.ndarray, sinks: list, **kw) -> Pipeline:
    pl = Pipeline(FileSource(x.astype(np.float32), SR, realtime=False), model, PipelineConfig(), sinks, **kw)
    pl.start()
    try:
        assert pl.join(60.0), "the pipeline did not finish a short file within 60 s"
    finally:
        pl.stop()
    return pl


@pytest.fixture(scope="module")
def model(loudness_model: Path) -> Model:
    return Model(loudness_model, provider="cpu", threads=1)


def music_piece(seconds: float) -> np.ndarray:
    """Loud, busy audio the loudness model hears as music-like (a groove), at the model's rate."""
    x, _ = groove(120.0, seconds, SR, seed=3, fills=True)
    return x


# -- the record -----------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".csv", ".jsonl"])
def test_each_record_column_holds_its_own_value(tmp_path: Path, ext: str) -> None:
    """Every number is distinct, so a column written from another field is caught."""
    e = Estimate(t=12.5, wall=time.monotonic(), arousal_raw=0.11, valence_raw=0.77, arousal=0.23,
                 valence=0.64, level_rms_db=-17.3, level_peak_db=-3.0, silent=False, clipping=False,
                 input_ok=True, bad_samples=0, model_ms=1.0, latency_ms=2.0, overflows=0, hops_skipped=0,
                 music=True, music_prob=0.9, bpm=128.5, beats=42)
    path = tmp_path / f"show{ext}"
    rec = Recorder(path)
    rec.start()
    rec(e)
    rec.stop()
    (row,) = read_record(path)
    assert (row["t"], row["arousal_raw"], row["valence_raw"], row["arousal"], row["valence"]) == (
        12.5, 0.11, 0.77, 0.23, 0.64)
    assert (row["quadrant"], row["level_db"], row["music"], row["bpm"], row["beats"]) == (
        4, -17.3, 1, 128.5, 42)


def test_the_record_of_a_run_matches_what_the_pipeline_published(model: Model, tmp_path: Path) -> None:
    path = tmp_path / "run.csv"
    rec, seen = Recorder(path), []
    rec.start()
    run_unpaced(model, music_piece(4.0), [rec, seen.append])
    rec.stop()
    rows = read_record(path)
    assert len(rows) == len(seen) > 20
    for r, e in zip(rows, seen, strict=True):
        assert r["arousal_raw"] == pytest.approx(e.arousal_raw, abs=1e-4)
        assert r["valence_raw"] == pytest.approx(e.valence_raw, abs=1e-4)
        assert r["arousal"] == pytest.approx(e.arousal, abs=1e-4)
        assert r["valence"] == pytest.approx(e.valence, abs=1e-4)
    assert any(abs(e.arousal_raw - e.valence_raw) > 0.05 for e in seen)  # the columns differ


# -- the live teacher's memory --------------------------------------------------------------------
def test_the_live_teacher_forgets_patches_older_than_its_memory() -> None:
    from mer_live.assemble import load_model
    from mer_live.inference.fusion import Fusion, TeacherThread
    from mer_live.sources.demo import demo_audio

    fusion = Fusion.of(load_model(None, "cpu", 1))
    assert fusion is not None
    x = demo_audio(SR)
    n = fusion.window_samples
    calm, loud = x[2 * SR : 2 * SR + n], x[32 * SR : 32 * SR + n]
    z_calm, z_loud = fusion.logits(calm[None])[0], fusion.logits(loud[None])[0]
    assert np.abs(z_calm - z_loud).max() > 0.5  # the two patches disagree: mixing them shows
    th = TeacherThread(fusion)
    th.start()
    try:
        mem = th.memory_s
        for i, (patch, t_end) in enumerate(((calm, 3.0), (loud, 3.0 + mem + 1.0))):
            th.submit(patch, t_end)
            deadline = time.monotonic() + 10.0
            while th.runs < i + 1:
                assert time.monotonic() < deadline, "the teacher thread ran no patch within 10 s"
                time.sleep(0.01)
        t_now = 3.0 + mem + 1.5
        np.testing.assert_allclose(th.recent(t_now), z_loud, atol=1e-5)  # the calm patch is forgotten
        np.testing.assert_allclose(th.recent(3.5), z_calm, atol=1e-5)  # ... but was heard at its time
        assert th.recent(t_now + mem + 1.0) is None  # nothing heard lately: the CNN alone
    finally:
        th.stop()


# -- the music gate -------------------------------------------------------------------------------
def _osc_run(model: Model, x: np.ndarray, presence: PresenceModel | None, analysers: list) -> Wire:
    wire = Wire()
    osc = OscSender(OscConfig(targets=[f"127.0.0.1:{wire.port}"], rate_hz=100.0))
    osc.start()
    try:
        run_unpaced(model, x, [osc], presence=presence, gate=MusicGate() if presence else None,
                    analysers=analysers)
        time.sleep(0.3)  # the sender's last datagrams
    finally:
        osc.stop()
        wire.close()
    return wire


def test_sections_and_drops_go_out_only_while_music_plays(model: Model, tmp_path: Path) -> None:
    a, _ = groove(124.0, 25.0, SR, seed=1, fills=True)
    x = np.concatenate([a, pad(25.0, SR, seed=2)])
    never = PresenceModel(make_presence(tmp_path / "never.onnx", 0.0))
    gated = _osc_run(model, x, never, [SectionDetector()])
    assert gated.values("/mer/music") and set(gated.values("/mer/music")) == {(0,)}
    assert gated.values("/mer/section") == [] and gated.values("/mer/drop") == []
    # control: the same audio without a gate sends the section at the join
    open_ = _osc_run(model, x, None, [SectionDetector()])
    assert (1,) in open_.values("/mer/music") and open_.values("/mer/section")


@pytest.mark.parametrize("fault", ["nan", "fails to run"])
def test_a_broken_presence_model_never_silences_the_show(model: Model, tmp_path: Path, caplog,
                                                         fault: str) -> None:
    if fault == "nan":
        pm = PresenceModel(make_presence(tmp_path / "nan.onnx", float("nan")))
    else:  # a window longer than the emotion model's (1 s): onnxruntime refuses every call
        pm = PresenceModel(make_presence(tmp_path / "long.onnx", 0.0, window=2 * SR))
    seen: list[Estimate] = []
    with caplog.at_level(logging.WARNING):
        run_unpaced(model, music_piece(6.0), [seen.append], presence=pm, gate=MusicGate())
    late = [e.music for e in seen if e.t >= pm.window_samples / SR + 1.0]  # a window and the gate's on_s
    assert len(late) > 20 and all(late), "a broken gate silenced the show"
    if fault != "nan":
        warned = [r.getMessage() for r in caplog.records if "music-presence model failed" in r.getMessage()]
        assert len(warned) == 1 and "\n" not in warned[0]


# -- sinks ----------------------------------------------------------------------------------------
class _Ticker:
    """A block analyser that reports an onset for every 5th block it hears."""

    def __init__(self) -> None:
        self.n = 0

    def reset(self, samplerate: int) -> None:
        self.n = 0

    def process(self, mono: np.ndarray, t_end: float, wall: float) -> list[Event]:
        self.n += 1
        return [Event("onset", self.n // 5, t_end, wall)] if self.n % 5 == 0 else []


@pytest.mark.parametrize("exc", [RuntimeError, KeyError, TypeError, AttributeError, ZeroDivisionError,
                                 OSError, ValueError, IndexError])
def test_a_sink_failing_with_any_exception_never_starves_the_others(model: Model, exc: type) -> None:
    class Broken:
        def __call__(self, e: Estimate) -> None:
            raise exc("boom")

        def event(self, ev: Event) -> None:
            raise exc("boom")

    class Good:
        def __init__(self) -> None:
            self.estimates: list[Estimate] = []
            self.events: list[Event] = []

        def __call__(self, e: Estimate) -> None:
            self.estimates.append(e)

        def event(self, ev: Event) -> None:
            self.events.append(ev)

    good = Good()
    pl = run_unpaced(model, music_piece(4.0), [Broken(), good], analysers=[_Ticker()])
    assert len(good.estimates) == pl.stats["hops"] > 20  # every estimate reached the good sink
    assert len(good.events) > 3
    assert pl.stats["sink_errors"] == pl.stats["hops"] + len(good.events)
