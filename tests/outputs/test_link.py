"""Ableton Link between real peers, only inside a private network namespace (`unshare -n`, only `lo`
up, a multicast route on it): never on the machine's own interfaces.

A peer of the same binding (LinkPython-extern) starts the session at 90 BPM; `mer-live --link` hears
a 128-BPM groove: the peer sees the session tempo within 1 % of 128 within 8 beats of mer-live's
first beat, and the session's beat grid within 20 ms (median) of the groove's beats. With no beat
(one sustained chord), the peer's 90 BPM is left alone and mer-live never joins.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from mer_live.common.validate import ShowConfigError
from mer_live.outputs.link import LinkConfig, target_beat
from tests.conftest import ROOT, missing, need_module
from tests.grooves import groove, pad

pytestmark = pytest.mark.timeout(150)
SR = 44100


def test_target_beat_is_the_nearest_with_the_bar_phase():
    assert target_beat(10.1, 0, 4.0) == 10.0  # place in the bar unknown: the nearest whole beat
    assert target_beat(10.1, 3, 4.0) == 10.0  # 10 % 4 == 2: beat 3 of the bar
    assert target_beat(9.9, 1, 4.0) == 8.0  # beat 1 -> phase 0: 8 is nearer than 12
    assert target_beat(11.2, 1, 4.0) == 12.0
    assert target_beat(-0.9, 1, 4.0) == 0.0


def test_config_errors_are_one_line():
    assert LinkConfig().enabled is False and LinkConfig().quantum == 4.0
    with pytest.raises(ShowConfigError, match=r"\[link\] quantum must be beats in 1..16, got 0.5"):
        LinkConfig(quantum=0.5)


def _namespace_ok() -> None:
    need_module("link", "link")
    if os.geteuid() != 0:
        missing("a private network namespace (unshare -n) needs root here")
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed (Debian: util-linux / iproute2)")
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, text=True,
                           timeout=10)
    if probe.returncode != 0:  # a container without CAP_SYS_ADMIN
        missing(f"unshare -n is not permitted here: {probe.stderr.strip()[:200]}")


def _session(tmp_path, audio: np.ndarray, peer_bpm: float, seconds: float, model) -> dict:
    """Run tests/link_session.py inside `unshare -n` and return what it saw."""
    wav, out = tmp_path / "music.wav", tmp_path / "session.json"
    sf.write(wav, audio, SR)
    inner = (f"ip link set lo up && ip route add 224.0.0.0/4 dev lo && "
             f"exec {sys.executable} -m tests.link_session {wav} {out} {peer_bpm} {seconds} "
             f"--model {model} --no-music-gate")
    r = subprocess.run(["unshare", "-n", "bash", "-c", inner], cwd=ROOT, capture_output=True, text=True,
                       timeout=seconds + 60)
    assert r.returncode == 0 and out.is_file(), r.stderr[-2000:]
    got = json.loads(out.read_text())
    assert got["rc"] == 0, got["stderr"][-2000:]
    return got


def test_a_peer_follows_the_groove_tempo_and_beat_within_8_beats(tmp_path, loudness_model):
    _namespace_ok()
    bpm = 128.0
    x, true_beats = groove(bpm, 20.0, SR, seed=5)
    got = _session(tmp_path, x, 90.0, 19.0, loudness_model)
    s = np.array(got["samples"])  # monotonic, link-minus-monotonic, tempo, beat (quantum 4), peers
    beats = [(t, a[0]) for t, addr, a in got["beats"] if addr == "/mer/beat"]
    assert len(beats) > 20, got["stderr"][-1500:]
    period = 60.0 / bpm
    first = beats[0][0]
    before = s[s[:, 0] < first, 2]
    assert before.max() == pytest.approx(90.0), "the session's tempo before mer-live heard a beat"
    within = first + 8 * period
    ok = s[(s[:, 0] >= within)]
    assert np.all(np.abs(ok[:, 2] / bpm - 1) < 0.01), (ok[:5, 2], within - first)
    assert ok[:, 4].max() == 1, "mer-live joined the session as one peer"
    # phase: when did each groove beat reach mer-live? (the least-lag /mer/beat message says)
    arr = np.array([t for t, _ in beats])
    idx = [int(np.argmin(np.abs(true_beats - (t - (arr[0] - true_beats[0]))))) for t in arr]
    off = float(np.min(arr - true_beats[idx]))
    walls = true_beats + off
    walls = walls[(walls > within) & (walls < s[-1, 0] - 0.5)]
    assert len(walls) >= 15
    beat_at = np.interp(walls, s[:, 0], s[:, 3])  # the peer's session beat at each groove beat
    err_ms = (beat_at - np.round(beat_at)) * period * 1000
    off_tempo = np.nonzero(np.abs(s[:, 2] / bpm - 1) >= 0.01)[0]
    conv_beats = (s[off_tempo[-1] + 1, 0] - first) / period if len(off_tempo) else 0.0
    print(f"\nLink: tempo {np.median(ok[:, 2]):.2f} BPM (groove {bpm}); phase error median "
          f"{np.median(np.abs(err_ms)):.1f} ms, p90 {np.percentile(np.abs(err_ms), 90):.1f} ms over "
          f"{len(err_ms)} beats; tempo within 1 % from {conv_beats:.1f} beats after mer-live's first beat")
    assert np.median(np.abs(err_ms)) < 20.0, err_ms
    # the session's bar: mer-live's beat 1 falls on phase 0 of the quantum
    ones = [t for t, addr, a in got["beats"] if addr == "/mer/beat_in_bar" and a[0] == 1 and t > within + 1]
    if ones:
        ph = np.interp(np.array(ones) - 0.03, s[:, 0], s[:, 3]) % 4.0
        assert np.median(np.minimum(ph, 4.0 - ph)) < 0.5, ph


def test_with_no_beat_the_session_tempo_is_left_alone(tmp_path, loudness_model):
    _namespace_ok()
    # one sustained chord: music (loud enough for the test model) without a beat. The tracker may
    # still publish a few irregular beats on it (then mer-live may join, listening): no steady beat,
    # so it must commit nothing: neither the tempo nor the beat grid moves
    got = _session(tmp_path, pad(10.0, SR, seed=2, chord_s=10.0), 90.0, 8.0, loudness_model)
    s = np.array(got["samples"])
    assert len(s) > 100
    assert np.all(s[:, 2] == pytest.approx(90.0)), set(np.round(s[:, 2], 2))
    link_time = s[:, 0] + s[:, 1]
    residual_ms = (s[:, 3] - (s[0, 3] + (link_time - link_time[0]) * 1.5)) / 1.5 * 1000
    assert np.max(np.abs(residual_ms)) < 2.0, "the session's beat grid was moved"
