"""Issue #20 through the real product: a groove through `mer-live --input` gives /mer/bpm and one
/mer/beat per beat over real UDP and a --record file that matches what went out; two pieces joined
give one /mer/section near the join through the pipeline and the OSC sender; DMX frames from
`mer-live --config` reach an independent receiver (olad) and go black on SIGTERM."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from mer_live.analysers.beat import BeatConfig, BeatTracker
from mer_live.analysers.sections import SectionConfig, SectionDetector
from mer_live.inference.model import Model
from mer_live.live.pipeline import Pipeline, PipelineConfig
from mer_live.live.records import Event
from mer_live.outputs.osc import OscConfig, OscSender
from mer_live.sources.filesource import FileSource
from tests.grooves import groove, pad
from tests.net import Wire
from tests.olad import SACN_UNIVERSE, olad  # noqa: F401
from tests.test_cli import ROOT, env, run_cli

pytestmark = pytest.mark.timeout(180)
SR = 44100


@pytest.fixture
def osc_server():
    s = Wire()
    yield s
    s.close()


def test_groove_gives_bpm_and_a_beat_per_beat_and_the_record_matches_osc(tmp_path, loudness_model,
                                                                         osc_server) -> None:
    bpm = 120.0
    x, beats = groove(bpm, 14.0, SR, seed=3)
    wav = tmp_path / "groove.wav"
    sf.write(wav, x, SR)
    rec = tmp_path / "show.csv"
    r = run_cli("--input", str(wav), "--headless", "--model", str(loudness_model), "--no-music-gate",
                "--osc", f"127.0.0.1:{osc_server.port}", "--osc-rate", "20", "--record", str(rec), timeout=90)
    time.sleep(0.3)
    assert r.returncode == 0, r.stderr
    sent_bpm = [p[0] for p in osc_server.values("/mer/bpm")]
    assert sent_bpm and sent_bpm[-1] == pytest.approx(bpm, rel=0.02)
    counts = [p[0] for p in osc_server.values("/mer/beat")]
    assert counts == sorted(set(counts)), "beat counters go up one message per beat"
    # beats go out while music plays: from the first full window (1 s for the test model) to the end
    expected = int(np.sum(beats >= 1.0))
    assert abs(len(counts) - expected) <= max(2, 0.1 * expected), (len(counts), expected)
    phase = [p[0] for p in osc_server.values("/mer/beat_phase")]
    assert phase and all(0.0 <= v <= 1.0 for v in phase) and max(phase) - min(phase) > 0.5
    # the record: one row per estimate, the values that went out over OSC
    rows = list(csv.DictReader(rec.open()))
    assert len(rows) >= 100  # 14 s at a 0.1-s hop
    sent = {(round(a, 4), round(v, 4)) for a, v in osc_server.values("/mer/av")}
    recorded = [(float(r_["arousal"]), float(r_["valence"])) for r_ in rows]
    assert set(recorded[:-3]) <= sent  # the last estimates may still be in flight at the stop
    assert sent <= set(recorded)
    assert float(rows[-1]["bpm"]) == pytest.approx(bpm, rel=0.02)
    assert int(rows[-1]["beats"]) >= counts[-1] and rows[-1]["music"] == "1"


class _Events:
    def __init__(self) -> None:
        self.got: list[Event] = []

    def __call__(self, _estimate) -> None:
        pass

    def event(self, ev: Event) -> None:
        self.got.append(ev)


def test_two_pieces_joined_give_one_section_near_the_join(loudness_model, osc_server) -> None:
    a, _ = groove(124.0, 20.0, SR, seed=1, fills=True)
    b = pad(20.0, SR, seed=2)
    x = np.concatenate([a, b])
    events = _Events()
    osc = OscSender(OscConfig(targets=[f"127.0.0.1:{osc_server.port}"], rate_hz=20))
    pipe = Pipeline(FileSource(x, SR, realtime=False, blocksize=1024), Model(loudness_model, provider="cpu"),
                    PipelineConfig(), sinks=[osc, events],
                    analysers=[BeatTracker(BeatConfig()), SectionDetector(SectionConfig())])
    osc.start()
    pipe.start()
    try:
        assert pipe.join(120)
        time.sleep(0.3)
    finally:
        pipe.stop()
        osc.stop()
    sections = [e for e in events.got if e.kind == "section"]
    assert len(sections) == 1 and abs(sections[0].t - 20.0) <= 3.0, [(e.t, e.strength) for e in sections]
    assert [p[0] for p in osc_server.values("/mer/section")] == [1]


def test_lighting_from_the_config_reaches_olad_and_blacks_out_on_sigterm(tmp_path, loudness_model,
                                                                          olad) -> None:  # noqa: F811
    x, _ = groove(120.0, 30.0, SR, seed=4)
    wav = tmp_path / "groove.wav"
    sf.write(wav, x, SR)
    toml = tmp_path / "show.toml"
    toml.write_text(
        f'[source]\ninput = "groove.wav"\nloop = true\n[osc]\nenabled = false\n'
        f'[lighting]\nenabled = true\nprotocol = "sacn"\nhost = "127.0.0.1"\nuniverse = {SACN_UNIVERSE}\n'
        '[[lighting.fixtures]]\nname = "wash"\naddress = 1\nkind = "rgb"\n'
        '[[lighting.fixtures]]\nname = "par"\naddress = 4\nkind = "dimmer"\n'
    )
    p = subprocess.Popen([sys.executable, "-m", "mer_live", "--config", str(toml), "--headless",
                          "--model", str(loudness_model), "--no-music-gate"],
                         cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        lit = olad.wait_for(SACN_UNIVERSE, lambda ch: any(ch[:4]), timeout=20.0)
        assert any(lit[:4]), "no light from mer-live"
        assert not any(lit[4:512]), "only the two fixtures' channels are used"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0, p.stderr.read() if p.stderr else ""
    finally:
        if p.poll() is None:
            p.kill()
    dark = olad.wait_for(SACN_UNIVERSE, lambda ch: not any(ch), timeout=5.0)
    assert not any(dark), f"no blackout after SIGTERM: {dark[:6]}"
