"""train/data.py and train/cache.py on a generated fixture dataset (and on 4Q when present)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from mer_live.analyze import decode as runtime_decode
from mer_live.common.framing import frame_windows
from tests.conftest import need_tool
from tests.fixtures_train import make_fixture_dataset
from train.cache import decode, load_audio
from train.data import Clip, DataError, artist_folds, load_4q, load_manifest, targets
from train.fit import clip_windows


@pytest.fixture()
def manifest(tmp_path: Path) -> Path:
    return make_fixture_dataset(tmp_path / "ds", n=10, seconds=2.0, n_artists=5)


def test_manifest_loads_labels_and_resolves_relative_paths(manifest: Path) -> None:
    clips = load_manifest(manifest)
    assert len(clips) == 10
    for c in clips:
        assert c.path.is_file() and c.path.is_absolute()
        assert c.dataset == "manifest"
        assert c.arousal_high == int(c.arousal >= 0.5)
        assert c.quadrant in (1, 2, 3, 4)
    t = targets(clips)
    assert t.shape == (10, 2) and t.dtype == np.float32
    assert np.allclose(t[:, 0], [c.arousal for c in clips])


def test_manifest_quadrant_column_and_bad_rows(tmp_path: Path, manifest: Path, caplog) -> None:
    audio = manifest.parent / "audio" / "clip00.wav"
    q = tmp_path / "q.csv"
    q.write_text(f"file,quadrant\n{audio},Q2\n{audio.parent / 'nope.wav'},3\n")
    with caplog.at_level(logging.WARNING):
        clips = load_manifest(q)
    assert [(c.quadrant, c.arousal_high, c.valence_high, c.arousal) for c in clips] == [(2, 1, 0, None)]
    assert "nope.wav" in caplog.text
    bad = tmp_path / "bad.csv"
    bad.write_text(f"file,arousal,valence\n{audio},1.5,0.2\n")
    with pytest.raises(DataError, match="row 2"):
        load_manifest(bad)
    with pytest.raises(DataError, match="'file'"):
        (tmp_path / "nofile.csv").write_text("path,arousal,valence\nx,0.1,0.2\n")
        load_manifest(tmp_path / "nofile.csv")


def test_clip_rejects_contradictions() -> None:
    with pytest.raises(DataError):
        Clip("x", "a", Path("x"), arousal_high=0, valence_high=1, quadrant=1)
    assert Clip("x", "a", Path("x"), arousal=0.5, valence=0.49).quadrant == 2


def test_artist_folds_never_share_an_artist(manifest: Path) -> None:
    clips = load_manifest(manifest)
    folds = artist_folds(clips, k=5, seed=0)
    assert len(folds) == 5
    all_test = np.concatenate([te for _, te in folds])
    assert sorted(all_test.tolist()) == list(range(len(clips)))
    for tr, te in folds:
        assert not {clips[i].artist for i in tr} & {clips[i].artist for i in te}
    again = artist_folds(clips, k=5, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    with pytest.raises(DataError):
        artist_folds(clips[:2], k=5)


def test_cache_decodes_downmixes_resamples_and_reuses(manifest: Path, tmp_path: Path) -> None:
    clips = load_manifest(manifest)
    cache = tmp_path / "cache"
    audio = load_audio(clips, 16000, cache_dir=cache, progress=False)
    assert len(audio) == len(clips) and audio.clips == clips and audio.dropped == []
    for c, x in zip(clips, audio, strict=True):
        assert x.dtype == np.float32 and x.ndim == 1
        assert abs(len(x) - 2.0 * 16000) <= 2
        # the very samples mer-analyze feeds the model (runtime's decode + clean-up chain)
        np.testing.assert_array_equal(x, runtime_decode(c.path, 16000)[0])
        # and that chain is: channel mean, 10 Hz DC blocker, soxr HQ (not just a copy)
        raw, sr = sf.read(c.path, dtype="float32", always_2d=True)
        plain = soxr.resample(raw.mean(axis=1), sr, 16000, quality="HQ")
        assert np.abs(x - plain).max() < 0.02 and len(x) == len(plain)
    files = sorted((cache / "manifest-16000").glob("*.npy"))
    assert len(files) == len(clips)
    # a second load reads the cache: corrupting the source would not change it, a rewrite would
    again = load_audio(clips, 16000, cache_dir=cache, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(audio, again, strict=True))
    sf.write(clips[0].path, np.zeros(22050, np.float32), 22050)  # new mtime/size -> new entry
    fresh = load_audio(clips, 16000, cache_dir=cache, progress=False)
    assert len(fresh[0]) == 16000 and np.all(fresh[0] == 0)
    assert len(sorted((cache / "manifest-16000").glob("*.npy"))) == len(clips)


def test_undecodable_clip_is_dropped_with_warning(manifest: Path, tmp_path: Path, caplog) -> None:
    clips = load_manifest(manifest)
    clips[3].path.write_bytes(b"this is not audio")
    with caplog.at_level(logging.WARNING):
        audio = load_audio(clips, 22050, cache_dir=tmp_path / "c", progress=False)
    assert len(audio) == len(clips) - 1
    assert [c.id for c in audio.clips] == [c.id for i, c in enumerate(clips) if i != 3]
    assert [d[0] for d in audio.dropped] == [clips[3].id]
    assert clips[3].id in caplog.text
    with pytest.raises(Exception):  # noqa: B017 - decode itself raises; load_audio absorbs it
        decode(clips[3].path, 22050)


def test_training_windows_are_the_runtimes() -> None:
    """Training crops a clip with the runtime's own framing: windows end on hop boundaries."""
    x = np.arange(1, 101, dtype=np.float32)
    ends, _ = frame_windows(x, 30, 20)
    assert ends.tolist() == [40, 60, 80, 100]
    w = clip_windows(x, 30, 20)
    assert w.shape == (4, 30) and w.flags.c_contiguous
    assert w[0, -1] == 40 and w[-1, -1] == 100 and w[-1, 0] == 71
    short = clip_windows(x[:10], 30, 20)  # shorter than a window: zero-padded on the left
    assert short.shape == (1, 30) and short[0, :20].sum() == 0 and short[0, -1] == 10


@pytest.mark.data
def test_load_4q(shared_data: Path) -> None:
    clips = load_4q(shared_data / "4q")
    assert len(clips) == 716
    assert {q: sum(c.quadrant == q for c in clips) for q in (1, 2, 3, 4)} == {1: 179, 2: 179, 3: 179, 4: 179}
    by_id = {c.id: c for c in clips}  # genres become tags: "Electronic; International; Pop/Rock"
    assert by_id["MT0000011357"].tags == ("Electronic", "International", "Pop/Rock")
    assert all(c.tags for c in clips)
    folds = artist_folds(clips, k=5, seed=0)
    for tr, te in folds:
        assert not {clips[i].artist.casefold() for i in tr} & {clips[i].artist.casefold() for i in te}


@pytest.mark.data
def test_emopia_renders_to_labelled_audio(shared_data: Path, tmp_path: Path) -> None:
    """EMOPIA MIDI -> FluidSynth piano audio: a quadrant-balanced subset, each clip a real WAV
    with its label, clips of one song under one artist name (so they stay on one side of a fold)."""
    need_tool("fluidsynth")
    from train.midi import emopia_song, load_emopia

    clips = load_emopia(tmp_path, root=shared_data / "emopia", limit=8, seed=1)
    assert len(clips) == 8
    assert sorted(c.quadrant for c in clips) == [1, 1, 2, 2, 3, 3, 4, 4]
    for c in clips:
        x, sr = sf.read(str(c.path))
        assert x.ndim == 1 and len(x) > sr and np.abs(x).max() > 0.01  # mono, > 1 s, not silent
        assert c.artist == f"emopia:{emopia_song(c.id.removeprefix('emopia-'))}"
        assert c.id.removeprefix("emopia-").startswith(f"Q{c.quadrant}_")
    assert emopia_song("Q2_L3_TadjSQQ0_0") == "L3_TadjSQQ0"
