"""Issue #18's "done when", through the real product: `mer-live --device pulse` with the shipped
models hears a private PulseAudio server's null sink and sends OSC over real UDP.

Silence, a real voice (alsa-utils' recorded phrases, never used to train the presence model) and
applause send no emotion away from neutral and /mer/music 0; music then sends /mer/music 1
within one model window; /mer/input and /mer/level arrive within a second of the input opening;
the heartbeat comes once a second."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from mer_live.sources.demo import demo_audio
from tests.audio import SINK_RATE, PulseServer, pulse_fixture, write_wav  # noqa: F401
from tests.conftest import missing
from tests.net import Wire
from tests.test_cli_pulse import Live

pytestmark = [pytest.mark.audio, pytest.mark.slow, pytest.mark.timeout(240)]
ALSA_VOICE = Path("/usr/share/sounds/alsa")


def real_voice(seconds: float) -> np.ndarray:
    """alsa-utils' recorded phrases ("Front Left", ...) with short pauses, at the sink's rate."""
    files = sorted(p for p in ALSA_VOICE.glob("*.wav") if p.name != "Noise.wav")
    if not files:
        missing("alsa-utils' /usr/share/sounds/alsa/*.wav (Debian: alsa-utils)")
    parts = []
    for p in files:
        x, sr = sf.read(p, dtype="float32", always_2d=True)
        parts += [soxr.resample(x.mean(axis=1), sr, SINK_RATE), np.zeros(int(0.4 * SINK_RATE), np.float32)]
    x = np.concatenate(parts)
    x = np.tile(x, int(np.ceil(seconds * SINK_RATE / len(x))))[: int(seconds * SINK_RATE)]
    return 0.3 * x / np.max(np.abs(x))


def stereo(x: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(x, np.float32)[:, None], 2, axis=1)


def test_between_songs_no_emotion_then_music(pulse: PulseServer, tmp_path) -> None:  # noqa: F811
    from train.negatives import applause

    voice = write_wav(tmp_path / "voice.wav", stereo(real_voice(6.0)))
    clap = write_wav(tmp_path / "applause.wav", stereo(0.5 * applause(6.0, SINK_RATE, seed=9001)))
    demo = demo_audio(SINK_RATE)
    music = write_wav(tmp_path / "music.wav", stereo(demo[25 * SINK_RATE : 40 * SINK_RATE]))
    wire = Wire()
    live = Live("--device", "pulse", "--headless", "--osc", f"127.0.0.1:{wire.port}", "--osc-rate", "20",
                extra_env=dict(pulse.env))
    try:
        live.wait_for(r"mer-live: input: ", timeout=60)
        opened = time.monotonic()
        time.sleep(3.0)  # silence: nothing plays into the sink
        pulse.play(voice)
        pulse.play(clap)
        before_music = time.monotonic()
        pulse.play(music, wait=False)
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline and 1 not in [p[0] for p in wire.values("/mer/music")]:
            time.sleep(0.05)
        time.sleep(1.0)
    finally:
        live.p.terminate()
        live.p.wait(timeout=10)
        wire.close()
    # input and level from the first second, before any model window is full
    assert min(wire.times("/mer/input")) - opened < 1.0
    assert min(wire.times("/mer/level")) - opened < 1.0
    # silence, the real voice and the applause: music 0 and neutral values on every tick
    gate = [(t, p[0]) for t, a, p in wire.messages if a == "/mer/music"]
    no_music = [t for t, m in gate if t < before_music]
    assert no_music and all(m == 0 for t, m in gate if t < before_music), "music heard between songs"
    early_av = [p for t, a, p in wire.messages if a == "/mer/av" and t < before_music]
    assert early_av and all(p == (0.5, 0.5) for p in early_av), "emotion sent without music"
    assert all(p[0] == 0 for t, a, p in wire.messages if a == "/mer/quadrant" and t < before_music)
    levels = [p[0] for t, a, p in wire.messages if a == "/mer/level" and t < before_music]
    assert max(levels) > -40.0, "the voice and the applause did reach mer-live"
    # music: /mer/music 1 within one model window (6 s) of the music starting
    first = min(t for t, m in gate if m == 1)
    assert first - before_music <= 6.0, first - before_music
    assert any(p != (0.5, 0.5) for t, a, p in wire.messages if a == "/mer/av" and t > first)
    # the heartbeat: once a second on its own clock
    beats = wire.times("/mer/heartbeat")
    gaps = np.diff(beats)
    assert len(gaps) >= 8 and abs(float(np.median(gaps)) - 1.0) <= 0.01, gaps
