"""The phrase cue (mer_live.inference.phrase): a melody of held notes reads as many held pitches
and changes, a tuning (one note again and again) and a gliding voice do not; live equals offline."""

from __future__ import annotations

import numpy as np

from mer_live.inference import phrase

SR = phrase.SR


def tone(midi: float, seconds: float, glide: float = 0.0, level: float = 0.1) -> np.ndarray:
    """A harmonic tone (5 partials) with an attack and release; ``glide`` semitones over its length."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = 440.0 * 2 ** ((midi - 69 + glide * t / seconds) / 12)
    ph = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * ph) / k for k in range(1, 6))
    env = np.minimum(1.0, np.minimum(t / 0.02, (seconds - t) / 0.05))
    return (level * x * env).astype(np.float32)


def melody() -> np.ndarray:
    notes = [60, 62, 64, 65, 67, 69, 67, 65, 64, 62, 60, 64, 67, 72]
    return np.concatenate([tone(n, 0.6) for n in notes])


def tuning() -> np.ndarray:
    """One string plucked again and again, drifting a few cents into tune, with pauses."""
    gap = np.zeros(int(0.4 * SR), np.float32)
    return np.concatenate([np.concatenate([tone(57 - 0.2 + 0.04 * k, 1.0), gap]) for k in range(6)])


def voice() -> np.ndarray:
    """Syllable-like tones gliding 2-4 semitones each, as speech's pitch does."""
    rng = np.random.default_rng(0)
    return np.concatenate([tone(50 + rng.uniform(-3, 3), 0.2, glide=rng.uniform(-4, 4)) for _ in range(40)])


def last(x: np.ndarray) -> np.ndarray:
    return phrase.stream_features(phrase.stream_chroma(x), 6.0)[-1]


def test_a_melody_moves_a_tuning_and_a_gliding_voice_do_not() -> None:
    n_pc, n_chg = phrase.NAMES.index("n_pc"), phrase.NAMES.index("n_chg")
    m, t, v = last(melody()), last(tuning()), last(voice())
    assert m[n_pc] * 12 >= 5 and m[n_chg] * 12 >= 5, m
    assert t[n_pc] * 12 <= 1 and t[n_chg] == 0, t
    assert v[n_chg] * 12 <= 1, v
    steady = phrase.NAMES.index("steady_ctx")
    assert m[steady] > 0.4 and v[steady] < 0.1, (m, v)


def test_silence_is_no_phrase() -> None:
    f = last(np.zeros(8 * SR, np.float32))
    assert not f.any()


def test_live_track_equals_the_offline_features() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([melody(), 0.05 * rng.standard_normal(2 * SR).astype(np.float32), tuning()])
    want = phrase.stream_features(phrase.stream_chroma(x), 6.0)
    track = phrase.PhraseTrack(6.0)
    hop = phrase.HOP
    got = np.stack([track.push(x[max(0, e - phrase.FRAME) : e]) for e in range(hop, len(x) + 1, hop)])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)
    track.reset()
    assert not track.push(np.zeros(phrase.FRAME, np.float32)).any()


def test_the_head_only_raises_and_music_flags_gates_on_it() -> None:
    """A head that hears a phrase in a melody's cue lifts a low p over the gate's on level; the
    same p with a tuning's cue stays low; music_flags with the head and cue gates on max(p, head)."""
    import pytest

    from mer_live.inference.presence import GateConfig, music_flags

    # the weights of a head that likes held-pitch changes (n_chg) when the sound is tonal now
    coef = np.zeros(10)
    coef[7], coef[9] = 40.0, 5.0  # n_chg * tonal_now, logit(p) / 5
    head = phrase.PhraseHead(coef, -4.0, 6.0)
    mel = phrase.stream_features(phrase.stream_chroma(melody()), 6.0)
    tun = phrase.stream_features(phrase.stream_chroma(tuning()), 6.0)
    n = min(len(mel), len(tun))
    p = np.full(n, 0.3, np.float32)
    q_mel, q_tun = head.raise_(p, mel[:n]), head.raise_(p, tun[:n])
    assert (q_mel >= p).all() and (q_tun >= p).all()  # never lowers
    assert q_mel[-1] > 0.8 > q_tun[-1]
    cfg = GateConfig()
    assert not music_flags(p, 0.1, None, cfg).any()
    got = music_flags(p, 0.1, None, cfg, head, mel[:n])
    np.testing.assert_array_equal(got, music_flags(q_mel, 0.1, None, cfg))
    assert music_flags(p, 0.1, None, cfg, head, mel[:n])[-1]
    with pytest.raises(ValueError, match="cue has shape"):
        music_flags(p, 0.1, None, cfg, head, mel[: n - 1])
    with pytest.raises(ValueError, match="phrase head"):
        phrase.PhraseHead.from_card({"coef": [1.0] * 3, "intercept": 0.0, "context_s": 8.0})
