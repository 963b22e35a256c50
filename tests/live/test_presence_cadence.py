"""The presence model every other hop while the music gate is settled (issue #28): the gate's
decisions through the live pipeline stay those of the every-hop gate, each change seen at most one
hop late, at about half the presence model's runs in steady music or applause.

Real parts: the shipped presence and emotion models in onnxruntime, the unpaced pipeline, a stream
of the bundled demo piece, synthetic applause and room tone (train/negatives.py) and silence."""

from __future__ import annotations

import numpy as np
import pytest

from mer_live.inference.model import Model
from mer_live.inference.presence import GateConfig, MusicGate, PresenceModel
from mer_live.live.pipeline import Pipeline, PipelineConfig
from mer_live.sources.demo import demo_audio
from mer_live.sources.filesource import FileSource
from train.negatives import applause, room_tone

SR = 22050
HOP_S = 0.1


def show() -> np.ndarray:
    """Music, applause, music, room tone, silence, music: six gate changes at least."""
    demo = demo_audio(SR)
    parts = [demo[: 20 * SR], applause(8.0, SR, seed=3, density=120.0), demo[24 * SR: 39 * SR],
             room_tone(6.0, SR, seed=5), np.zeros(3 * SR, np.float32), demo[5 * SR: 17 * SR]]
    return np.concatenate([np.asarray(p, np.float32).reshape(-1) for p in parts])


def music_flags_live(x: np.ndarray, skip: bool) -> tuple[np.ndarray, int, int]:
    out: list = []
    model = Model.load(provider="cpu", threads=1)
    pl = Pipeline(FileSource(x, SR, realtime=False, blocksize=1024, name="show"), model,
                  PipelineConfig(hop_s=HOP_S), [out.append], presence=PresenceModel(),
                  gate=MusicGate(GateConfig()))
    pl.estimator.presence_skip_settled = skip
    pl.start()
    assert pl.join(120.0), "the pipeline did not finish the stream"
    return np.array([e.music for e in out]), pl.estimator.presence_runs, pl.estimator.presence_reused


def changes(flags: np.ndarray) -> list[tuple[int, bool]]:
    return [(i, bool(flags[i])) for i in range(1, len(flags)) if flags[i] != flags[i - 1]]


@pytest.mark.timeout(240)
def test_settled_gate_skips_half_the_presence_runs_and_decides_the_same() -> None:
    x = show()
    every, runs_every, reused_every = music_flags_live(x, skip=False)
    settled, runs, reused = music_flags_live(x, skip=True)
    assert reused_every == 0 and runs_every > 450
    assert len(settled) == len(every) >= 600
    want, got = changes(every), changes(settled)
    print(f"presence runs {runs_every} -> {runs} (reused {reused}); gate changes {want} vs {got}")
    # the premise: music, then applause, music, room tone/silence, music gave the gate changes
    assert len(want) >= 5 and want[0][1] is True
    # the same changes in the same directions, each at most one hop late
    assert [d for _, d in got] == [d for _, d in want]
    assert all(0 <= g - w <= 1 for (g, _), (w, _) in zip(got, want, strict=True)), (want, got)
    assert (settled != every).sum() <= len(want)
    # and the point of it: the model ran on well under two thirds of the heard hops
    assert runs < 0.65 * runs_every
