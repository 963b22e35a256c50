"""The music-kinds corpus (train/showmusic.py): deterministic by seed, the right kinds and groups,
a groove is a steady, periodic, audible beat on real sampled kits, GM kits and synthesised ones."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import missing, need_tool
from train import showmusic as sm

SR = 16000


def db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-20)


def onset_period(x: np.ndarray, lo_s: float = 0.2, hi_s: float = 2.5) -> float:
    """The lag (s) of the strongest autocorrelation peak of the onset envelope (10-ms frames)."""
    hop = SR // 100
    m = len(x) // hop
    e = np.sqrt(np.mean(x[: m * hop].reshape(m, hop) ** 2, axis=1))
    d = np.maximum(np.diff(np.log(e + 1e-6)), 0)
    d -= d.mean()
    ac = np.correlate(d, d, "full")[len(d) - 1 :]
    lo, hi = int(lo_s * 100), int(hi_s * 100)
    return (lo + int(np.argmax(ac[lo:hi]))) / 100


def bar_repeat(x: np.ndarray, bar_s: float) -> float:
    """Normalised autocorrelation of the onset envelope at one bar: a steady groove repeats every
    bar (~0.4..0.7 here), irregular single hits do not (< 0.2)."""
    hop = SR // 100
    m = len(x) // hop
    e = np.sqrt(np.mean(x[: m * hop].reshape(m, hop) ** 2, axis=1))
    d = np.maximum(np.diff(np.log(e + 1e-6)), 0)
    d -= d.mean()
    ac = np.correlate(d, d, "full")[len(d) - 1 :]
    lag = int(round(bar_s * 100))
    return float(ac[lag - 1 : lag + 2].max() / ac[0])


def on_the_beat(p: float, beat: float) -> bool:
    """``p`` is a whole number of beats (within 30 ms): a steady groove repeats every beat, every
    two beats (kick / snare) or every bar."""
    k = round(p / beat * 2) / 2  # half beats: 8th-note hats
    return k >= 0.5 and abs(p - k * beat) < 0.03


def hydrogen_kit() -> str:
    ks = sm.hydrogen_kits()
    if not ks:
        missing("no Hydrogen drum kit in /usr/share/hydrogen/data/drumkits (Debian: hydrogen-drumkits)")
    return "kit:" + ("VariBreaks" if "VariBreaks" in ks else ks[0])


def test_pattern_is_a_steady_groove_and_kick_snare_has_no_hats() -> None:
    hits = sm.pattern_hits("house", 120.0, 8.0, seed=1, human=False, fills=False)
    kicks = np.array([h.t for h in hits if h.role == "kick"])
    assert np.allclose(np.diff(kicks), 0.5)  # four on the floor at 120 BPM
    assert len(kicks) == 16
    ks = sm.pattern_hits("kick_snare", 100.0, 8.0, seed=1)
    assert {h.role for h in ks} <= {"kick", "snare", "tom"}  # no hats, no cymbals
    with pytest.raises(ValueError, match="unknown groove style"):
        sm.groove("synth:0", "polka", 120, 2.0, SR)


@pytest.mark.parametrize("style,bpm", [("house", 124.0), ("kick_snare", 90.0), ("trap", 140.0)])
def test_synth_groove_is_deterministic_audible_and_periodic(style: str, bpm: float) -> None:
    a = sm.groove("synth:1", style, bpm, 8.0, SR, seed=3)
    assert a.dtype == np.float32 and a.shape == (8 * SR,)
    assert np.array_equal(a, sm.groove("synth:1", style, bpm, 8.0, SR, seed=3))
    assert not np.array_equal(a, sm.groove("synth:2", style, bpm, 8.0, SR, seed=3))
    assert db(a) > -35
    beat = 60 / bpm
    p = onset_period(a)
    assert on_the_beat(p, beat), (p, beat)
    assert bar_repeat(a, 4 * beat) > 0.3
    assert np.all(np.isfinite(a))


def test_irregular_hits_do_not_repeat_like_a_groove() -> None:
    """The measure above can fail: single hits at line-check spacing (0.35..2.2 s) do not repeat."""
    rng = np.random.default_rng(0)
    hits, t = [], 0.2
    while t < 8.0:
        hits.append(sm.Hit(t, str(rng.choice(["kick", "snare", "tom"])), 100))
        t += rng.uniform(0.35, 2.2)
    x = sm.play(hits, "synth:1", 8.0, SR, 0)
    assert max(bar_repeat(x, 240 / bpm) for bpm in (90, 110, 124)) < 0.2


def test_groove_on_a_real_sampled_kit() -> None:
    kit = hydrogen_kit()
    x = sm.groove(kit, "rock", 110.0, 8.0, SR, seed=2)
    assert db(x) > -35
    beat = 60 / 110
    assert on_the_beat(onset_period(x), beat)
    assert bar_repeat(x, 4 * beat) > 0.3
    roles = sm._hydrogen_roles(kit.split(":", 1)[1])
    assert "kick" in roles and "snare" in roles


def test_gm_kits_sound_different_808_included() -> None:
    need_tool("fluidsynth")
    a = sm.groove("gm:25", "house", 125.0, 4.0, SR, seed=1)  # TR-808
    b = sm.groove("gm:0", "house", 125.0, 4.0, SR, seed=1)  # standard
    assert db(a) > -35 and db(b) > -35
    assert np.abs(a - b).mean() > 0.2 * np.abs(b).mean()
    assert on_the_beat(onset_period(a), 60 / 125)


def test_items_kinds_groups_and_determinism() -> None:
    need_tool("fluidsynth")
    kit = hydrogen_kit()
    assert kit in sm.kits()
    prefixes = {
        "groove-kit": "kit:",
        "groove-gm": "gm:",
        "groove-synth": "synth:",
        "edm-intro": "",
        "edm": "",
        "solo": "solo:",
    }
    for kind, pre in prefixes.items():
        got = sm.items(kind, SR, seed=0, seconds=3.0, count=2)
        assert len(got) == 2, kind
        for g, name, x in got:
            assert g.startswith(pre) and name.startswith(kind)
            assert x.shape == (3 * SR,) and -40 < db(x) < -8, (kind, name, db(x))
    a = sm.items("solo", SR, seed=4, seconds=3.0, count=3)
    b = sm.items("solo", SR, seed=4, seconds=3.0, count=3)
    assert [n for _, n, _ in a] == [n for _, n, _ in b]
    assert all(np.array_equal(x, y) for (_, _, x), (_, _, y) in zip(a, b, strict=True))
    assert len({g for g, _, _ in a}) == 3  # one instrument per group, three instruments
    with pytest.raises(ValueError, match="unknown music kind"):
        sm.items("polka")


def test_edm_intro_is_kick_and_hats_from_the_first_bar() -> None:
    need_tool("fluidsynth")
    x = sm.edm("synth:0", 8.0, SR, seed=11, full=False)
    assert db(x[: 2 * SR]) > -35  # no silent lead-in
    p = onset_period(x, 0.3, 0.7)
    assert 0.45 <= p <= 0.51  # a beat at 118..133 BPM


def test_recorded_excerpts_come_from_installed_packages() -> None:
    have = [p for p in sm.PACKAGES if sm.package_tracks(p)]
    if not have:
        missing("no music package installed (Debian: asc-music, see train/showmusic.PACKAGES)")
    got = sm.items("recorded", SR, seed=0, seconds=4.0, count=2)
    assert len(got) == 2
    for g, _name, x in got:
        assert g.removeprefix("pkg:") in have and x.shape == (4 * SR,) and db(x) > -40


def chord_sizes(x: np.ndarray) -> list[int]:
    """Per 1-s frame: how many pitch classes are within 8 dB of the strongest one (FFT chroma,
    80 Hz..2 kHz): a chord has 3 or more, a tuned string 1 or 2."""
    out = []
    for i in range(len(x) // SR):
        f = np.fft.rfftfreq(SR, 1 / SR)
        mag = np.abs(np.fft.rfft(x[i * SR : (i + 1) * SR] * np.hanning(SR))) ** 2
        sel = (f > 80) & (f < 2000)
        pc = np.round(12 * np.log2(f[sel] / 440.0)).astype(int) % 12
        ch = np.bincount(pc, weights=mag[sel], minlength=12)
        out.append(int((ch >= 0.15 * ch.max()).sum()))
    return out


def test_pad_items_are_changing_chords_of_three_notes_or_more_grouped_by_family() -> None:
    """The sustained-chord kind stays apart from the tunings: every chord has 3+ notes and the
    chords change (a tuning is one or two notes, re-struck); one family is one group."""
    need_tool("fluidsynth")
    rng = np.random.default_rng(5)
    for style in ("chords", "drone"):
        for _ in range(10):
            chords, _bass = sm._pad_plan(rng, 30.0, style)
            assert all(len(set(k)) >= 3 for _, _, k, _ in chords)
            assert len({tuple(k) for _, _, k, _ in chords}) >= 5  # 2-4 s a chord: they change
            lo = 1.5 if style == "drone" else 2.0  # over a drone, one upper voice moves every 1.5-4 s
            starts = np.array([c[0] for c in chords])
            assert np.all((np.diff(starts) >= lo - 1e-9) & (np.diff(starts) <= 4.0 + 1e-9))
    got = sm.items("pad", SR, seed=0, seconds=8.0, count=len(sm.PAD_FAMILIES))
    assert {g for g, _, _ in got} == {f"pad:{f}" for f in sm.PAD_FAMILIES}
    for g, name, x in got:
        assert name.startswith("pad-") and x.shape == (8 * SR,) and -40 < db(x) < -8, (name, db(x))
        sizes = chord_sizes(x[2 * SR :])  # a loud bass note can hide the chord in some seconds
        assert np.mean(np.array(sizes) >= 3) >= 0.5, (g, sizes)
    again = sm.items("pad", SR, seed=0, seconds=8.0, count=2)
    assert all(np.array_equal(x, y) for (_, _, x), (_, _, y) in zip(got[:2], again, strict=True))


def test_intro_items_are_song_starts_grouped_by_composer() -> None:
    """The ``intro`` kind is each track's first seconds from its first audible sample (a quiet
    intro included), one group per composer or package, no remake of another album's tune."""
    import soundfile as sf

    have = [p for p in sm.INTRO_PACKAGES if sm.package_tracks(p)]
    if not have:
        missing("no intro package installed (Debian: planetblupi-music-ogg; train/showmusic.INTRO_PACKAGES)")
    got = sm.items("intro", SR, seed=0, seconds=4.0, count=4)
    assert len(got) == 4
    assert all(g.startswith("intro:") for g, _n, _x in got)
    assert len({g for g, _n, _x in got}) >= min(2, len(have))  # round robin over the groups
    assert all(x.shape == (4 * SR,) and "_enhanced" not in n for _g, n, x in got)
    # a song start, not an excerpt: the file's own samples from its first audible one
    path = next(p for pkg in have for p, _m in sm.package_tracks(pkg) if sm.INTRO_PACKAGES[pkg][0] in p)
    raw, fsr = sf.read(path, dtype="float32", always_2d=True)
    raw = raw.mean(axis=1)
    first = int(np.nonzero(np.abs(raw) > 1e-3)[0][0])
    x = sm._song_start(path, 4.0, fsr)
    assert x is not None and np.allclose(x, raw[first : first + 4 * fsr], atol=1e-6)
