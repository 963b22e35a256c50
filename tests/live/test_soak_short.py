"""A short soak (~2 minutes of audio, unpaced): the long-run checks of bench/soak.py in CI time.

Why: a show runs for hours; drift in the hop schedule, values that stop matching mer-analyze, or
memory that creeps per hop show up already over a couple of thousand hops, long before an hour.
Real parts throughout: FileSource -> Pipeline -> OscSender -> a UDP socket, real onnxruntime.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.soak import run_soak
from mer_live.sources.demo import demo_audio

SR = 22050


@pytest.fixture(scope="module")
def two_minutes() -> np.ndarray:
    d = demo_audio(SR)
    reps = -(-120 * SR // len(d))
    return np.tile(d, reps)[: 120 * SR].astype(np.float32)


@pytest.mark.timeout(400)  # a hang guard, generous: shared CPUs can be 10x slower under load
@pytest.mark.parametrize("hop_s", [0.1, 0.025])
def test_short_soak_schedule_values_memory_osc(two_minutes, loudness_model, hop_s):
    r = run_soak(two_minutes, SR, loudness_model, hop_s=hop_s, rss_every_s=10.0, timeout_s=360.0)
    # every hop boundary with a full window behind it, none skipped (unpaced: back-pressure)
    assert r.hops == r.expected_hops > 1000 * (0.1 / hop_s) * 0.9
    assert r.pipeline_stats["hops_skipped"] == 0 and r.pipeline_stats["frames_lost"] == 0
    assert r.pipeline_stats["sink_errors"] == 0 and r.pipeline_stats["model_errors"] == 0
    # no drift: Estimate.t is exactly k * hop (in model-rate samples)
    assert r.t_exact, f"schedule drifted by up to {r.t_max_err_s} s"
    # values: the same as mer-analyze on the same audio (its timeline is rounded to 4 decimals)
    assert r.compared > 0.9 * r.hops
    assert r.max_abs_diff <= 5.1e-5
    assert r.max_abs_diff_exact <= 1e-6
    # memory: RSS after the warm-up stays flat (the recorder itself is preallocated)
    assert len(r.rss) >= 10
    assert r.rss_growth_mb <= 5.0, r.rss
    # OSC: real datagrams arrived and the sender saw no errors
    assert r.osc_packets > 0
    per = r.osc_sender_stats["per_target"]
    assert all(v["errors"] == 0 and v["sent"] > 0 for v in per.values())
