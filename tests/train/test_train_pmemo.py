"""train/pmemo.py: the real PMEmo2019 label files, a hand-made layout with BOM/CRLF, label alignment,
and stand-in chorus audio end to end (labels -> audio -> cache -> windows with dynamic labels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mer_live.common.framing import frame_windows
from train.cache import load_audio
from train.data import DataError
from train.pmemo import (
    Dynamic,
    load_dynamic,
    load_metadata,
    load_pmemo,
    load_split,
    load_static,
    make_standin_chorus,
    song_folds,
    split_clips,
    window_targets,
)


@pytest.fixture()
def pmemo_real(shared_data: Path) -> Path:
    return shared_data / "pmemo-labels" / "PMEmo2019"


def write_tiny_pmemo(root: Path) -> Path:
    """Two songs in the published layout, with a BOM, CRLF line ends and padded cells."""
    (root / "annotations").mkdir(parents=True)
    (root / "metadata.csv").write_text(
        "\ufeffmusicId,fileName,title,artist,album,duration,chorus_start_time,chorus_end_time\r\n"
        '7,7.mp3,Song A,Band,"Album, Vol. 1",17.0,01:00,01:17\r\n'
        "9,9.mp3,Song B,Other,Alb,16.5,00:30,00:46\r\n", encoding="utf-8")
    (root / "annotations" / "static_annotations.csv").write_text(
        "musicId,Arousal(mean),Valence(mean)\r\n7, 0.8 ,0.3\r\n9,0.2,0.7\r\n")
    (root / "annotations" / "dynamic_annotations.csv").write_text(
        "musicId,frameTime,Arousal(mean),Valence(mean)\n"
        "7,16.0,0.81,0.31\n7,15.5,0.80,0.30\n7,16.5,0.82,0.32\n9,15.5,0.2,0.7\n9,16.0,0.1,0.6\n")
    (root / "annotations" / "dynamic_annotations_std.csv").write_text(
        "musicId,frameTime,Arousal(std),Valence(std)\n7,15.5,0.1,0.2\n7,16.0,0.1,0.2\n7,16.5,0.1,0.2\n"
        "9,15.5,0.3,0.3\n9,16.0,0.3,0.3\n")
    return root


def test_tiny_layout_parses_bom_crlf_and_unsorted_frames(tmp_path: Path) -> None:
    root = write_tiny_pmemo(tmp_path / "PMEmo2019")
    assert load_metadata(root)["7"]["album"] == "Album, Vol. 1"
    assert load_static(root) == {"7": (0.8, 0.3), "9": (0.2, 0.7)}
    dyn = load_dynamic(root)
    assert dyn["7"].times.tolist() == [15.5, 16.0, 16.5]
    assert np.allclose(dyn["7"].arousal, [0.80, 0.81, 0.82]) and np.allclose(dyn["9"].arousal_std, 0.3)
    clips = load_pmemo(root, require_audio=False)
    assert [(c.id, c.artist, c.quadrant) for c in clips] == [("7", "Band", 2), ("9", "Other", 4)]
    assert load_pmemo(root) == []  # no chorus audio: dropped (with a warning), not a crash


def test_dynamic_alignment_nearest_within_tolerance() -> None:
    d = Dynamic(np.array([15.5, 16.0, 16.5]), np.array([0.1, 0.2, 0.3], np.float32),
                np.array([0.9, 0.8, 0.7], np.float32))
    y = d.at(np.array([15.0, 15.26, 15.6, 15.9, 16.74, 16.76, 30.0]))
    assert np.isnan(y[0]).all() and np.isnan(y[5]).all() and np.isnan(y[6]).all()
    assert y[1:5, 0].tolist() == pytest.approx([0.1, 0.1, 0.2, 0.3])
    assert y[1:5, 1].tolist() == pytest.approx([0.9, 0.9, 0.8, 0.7])
    ends = np.array([16000 * 16, 16000 * 20])
    assert window_targets(d, ends, 16000)[0].tolist() == pytest.approx([0.2, 0.8])


@pytest.mark.data
def test_real_label_files(pmemo_real: Path) -> None:
    static = load_static(pmemo_real)
    assert len(static) == 767
    dyn = load_dynamic(pmemo_real)
    assert len(dyn) == 767 and sum(len(d.times) for d in dyn.values()) == 36434
    assert all(d.times[0] == 15.5 and np.allclose(np.diff(d.times), 0.5) for d in dyn.values())
    assert all(d.arousal_std is not None and not np.isnan(d.arousal_std).any() for d in dyn.values())
    assert static["1"] == (0.4, 0.575)
    assert len(load_metadata(pmemo_real)) == 794
    clips = load_pmemo(pmemo_real, require_audio=False)
    assert len(clips) == 767
    q = {k: sum(c.quadrant == k for c in clips) for k in (1, 2, 3, 4)}
    assert q == {1: 505, 2: 73, 3: 132, 4: 57}  # the skew the data README documents
    split = load_split(pmemo_real.parent / "split")
    assert {k: len(v) for k, v in split.items()} == {"train": 536, "validation": 116, "test": 115}
    parts = split_clips(clips, split)
    assert sum(len(v) for v in parts.values()) == 767
    folds = song_folds(clips, k=5, seed=0)
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(767))


def test_split_rejects_overlap(tmp_path: Path) -> None:
    for name, ids in (("train", "1\n2\n"), ("validation", "3\n"), ("test", "2\n")):
        (tmp_path / f"{name}.txt").write_text(ids)
    with pytest.raises(DataError, match="musicId 2"):
        load_split(tmp_path)


@pytest.mark.data
def test_standin_chorus_end_to_end(pmemo_real: Path, tmp_path: Path) -> None:
    root = make_standin_chorus(pmemo_real, tmp_path / "standin", n=6, seconds=20.0)
    assert not str(root).startswith(str(Path(__file__).resolve().parents[2]))
    clips = load_pmemo(root)
    assert len(clips) == 6 and all(c.path.suffix == ".mp3" for c in clips)
    sr, win, hop = 16000, 3 * 16000, 8000
    audio = load_audio(clips, sr, cache_dir=tmp_path / "cache", progress=False)
    assert audio.dropped == [] and len(audio) == 6
    dyn = load_dynamic(root)
    loud, aro = [], []
    for c, x in zip(audio.clips, audio, strict=True):
        assert abs(len(x) / sr - 20.0) < 0.2
        ends, w = frame_windows(x, win, hop)
        y = window_targets(dyn[c.id], ends, sr)
        has = ~np.isnan(y[:, 0])
        # windows end every 0.5 s from 3.0 s; frames start at 15.5 s, so labels start there
        assert not has[ends / sr < 15.25].any() and has[(ends / sr >= 15.5)].all()
        t_first = ends[has][0] / sr
        assert t_first == pytest.approx(15.5) and y[has][0, 0] == pytest.approx(dyn[c.id].arousal[0])
        loud.append(float(np.sqrt(np.mean(x**2))))
        aro.append(c.arousal)
    # the stand-in audio is louder for higher labelled arousal: something a model can learn
    assert np.corrcoef(loud, aro)[0, 1] > 0.8
    # deterministic: a second generation gives the same bytes
    again = make_standin_chorus(pmemo_real, tmp_path / "standin2", n=1, seconds=20.0)
    assert (again / "chorus" / "1.mp3").read_bytes() == (root / "chorus" / "1.mp3").read_bytes()
