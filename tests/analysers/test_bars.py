"""Bars through the real product: `mer-live --input` on two grooves with a silence between them sends
/mer/beat_in_bar 1..4 with every /mer/beat and /mer/bar on each 1 over real UDP; the second song
starts again at bar 1 beat 1; an OSC message to the localhost reset port makes the beat it follows
beat 1. The counter's rules are checked on their own too."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_message_builder import OscMessageBuilder

from mer_live.analysers.bars import BarCounter, BarsConfig
from mer_live.common.validate import ShowConfigError
from tests.grooves import groove
from tests.net import Wire
from tests.test_cli import ROOT, env

pytestmark = pytest.mark.timeout(120)
SR = 44100


def test_counter_cycles_restarts_after_a_gap_and_relabels():
    c = BarCounter(beats_per_bar=3, restart_s=2.0)
    got = [c.beat(0.5 * i) for i in range(7)]
    assert got == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3), (3, 1)]
    assert c.beat(3.0 + 2.5) == (1, 1)  # a gap longer than restart_s: a new song
    c.relabel_last_as_one()  # the operator says that beat was beat 1 ... it already was
    assert c.beat(6.0) == (1, 2)
    c.beat(6.5)
    c.relabel_last_as_one()  # ... now the beat at 6.5 was beat 1: the next is 2
    assert c.beat(7.0) == (1, 2)
    c.restart()
    assert c.beat(7.5) == (1, 1)


def test_config_is_checked_in_one_line():
    assert BarsConfig().reset_port == 0 and BarsConfig().beats_per_bar == 4
    with pytest.raises(ShowConfigError, match=r"\[bars\] beats_per_bar must be an integer in 1..32, got 0"):
        BarsConfig(beats_per_bar=0)
    with pytest.raises(ShowConfigError, match=r"\[bars\] reset_port"):
        BarsConfig.from_dict({"reset_port": 80})


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reset_msg() -> bytes:
    return OscMessageBuilder(address="/mer/bar/reset").build().dgram


def test_bars_over_osc_restart_with_a_new_song_and_on_a_reset(tmp_path, loudness_model):
    bpm = 120.0
    a, _ = groove(bpm, 10.0, SR, seed=1)
    b, _ = groove(bpm, 12.0, SR, seed=2)
    gap = np.zeros(int(3.0 * SR), np.float32)
    wav = tmp_path / "two_songs.wav"
    sf.write(wav, np.concatenate([a, gap, b]), SR)
    port = _free_port()
    cfg = tmp_path / "show.toml"
    cfg.write_text(f'[bars]\nbeats_per_bar = 4\nreset_port = {port}\n')
    wire = Wire()
    p = subprocess.Popen([sys.executable, "-m", "mer_live", "--config", str(cfg), "--input", str(wav),
                          "--headless", "--model", str(loudness_model), "--no-music-gate", "--no-sections",
                          "--osc", f"127.0.0.1:{wire.port}"], cwd=ROOT, env=env(), text=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    reset_sent = None
    try:
        t0 = time.monotonic()
        # in the second song (starts at 13 s): right after a beat_in_bar 2, ask for a reset
        while p.poll() is None and time.monotonic() - t0 < 60:
            time.sleep(0.005)
            if reset_sent is None and time.monotonic() - t0 > 18.0:
                pos = [m for m in wire.messages if m[1] == "/mer/beat_in_bar"]
                if pos and pos[-1][2][0] == 2 and time.monotonic() - pos[-1][0] < 0.05:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                        s.sendto(_reset_msg(), ("127.0.0.1", port))
                    reset_sent = time.monotonic()
        _, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
        wire.close()
    assert p.returncode == 0, err
    assert reset_sent is not None, "no beat_in_bar 2 seen in the second song"
    seq = [(t, addr, args[0]) for t, addr, args in wire.messages
           if addr in ("/mer/beat", "/mer/beat_in_bar", "/mer/bar")]
    beats = [x for x in seq if x[1] == "/mer/beat"]
    pos = [x for x in seq if x[1] == "/mer/beat_in_bar"]
    bars = [x for x in seq if x[1] == "/mer/bar"]
    assert len(beats) >= 30 and abs(len(pos) - len(beats)) <= 1  # one place per beat
    # split into songs at the silence (no beat for more than 2 s)
    gaps = [i for i in range(1, len(pos)) if pos[i][0] - pos[i - 1][0] > 2.0]
    assert len(gaps) == 1, [round(x[0] - seq[0][0], 2) for x in pos]
    song1, song2 = [x[2] for x in pos[:gaps[0]]], pos[gaps[0]:]
    assert song1[:9] == [1, 2, 3, 4, 1, 2, 3, 4, 1]
    assert all(song1[i] == song1[i - 1] % 4 + 1 for i in range(1, len(song1))), str(song1)
    assert song2[0][2] == 1, "the second song starts at beat 1"
    # the reset: the beat_in_bar 2 just before it becomes beat 1, so the next beat is 2 (not 3)
    before = [x for x in song2 if x[0] < reset_sent]
    after = [x for x in song2 if x[0] > reset_sent]
    assert before[-1][2] == 2 and after[0][2] == 2, (before[-3:], after[:3])
    assert all(after[i][2] == after[i - 1][2] % 4 + 1 for i in range(1, len(after)))
    # bars: on each beat 1, counting from 1 in each song
    bar_counts = [x[2] for x in bars]
    first2 = next(i for i, x in enumerate(bars) if x[0] >= song2[0][0] - 0.01)
    assert bar_counts[:first2] == list(range(1, first2 + 1))
    assert bar_counts[first2] == 1
    n_ones = sum(1 for x in pos if x[2] == 1)
    assert len(bars) == n_ones
