"""Dataset specs -> labelled windows: BVH folders with sidecars, synthetic frames, sessions with a
label file, the window cache, and every data error named before training."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from bodytalk.capture.source import create
from bodytalk.model.encoder import EncoderConfig
from bodytalk.stream import schema
from bodytalk.stream.session_file import SessionWriter
from bodytalk.train import readers
from bodytalk.train.config import ConfigError, parse
from bodytalk.train.data import DataConfig, DatasetError, load, load_split
from bodytalk.train.labels import LabelError, Timeline, interval_timelines
from bodytalk.train.splits import SplitError
from bodytalk.train.views import WindowDataset
from tests.capture.test_bvh import CMU_RIG, bvh_text, rest_rows

FRAMES = 76  # 2.5 s at 30 fps (+1: "Frame Time: 0.0333333" is a hair faster): two 2 s windows


def data_config(tmp_path: Path, *datasets: dict, **kw) -> DataConfig:
    return parse(DataConfig, {"datasets": list(datasets), "cache": str(tmp_path / "cache"), **kw})


def write_bandai_like(root: Path, takes: dict[str, tuple[int, int, int]]) -> Path:
    """ROOT/data/<stem>.bvh (a rest pose of ``frames``) with Bandai-style id sidecars for ``takes``
    (stem -> (content, style, frames)), ROOT/cfg/*_label.txt naming the ids; returns ROOT/data."""
    (root / "cfg").mkdir(parents=True)
    (root / "cfg" / "style_label.txt").write_text("ds-1_happy\nds-1_sad\nds-1_normal\n")
    (root / "cfg" / "content_label.txt").write_text("ds-1_walk\nds-1_bow\n")
    data = root / "data"
    data.mkdir()
    for stem, (content, style, frames) in takes.items():
        (data / f"{stem}.bvh").write_text(bvh_text(CMU_RIG, rest_rows(CMU_RIG, frames=frames)))
        (data / f"{stem}.json").write_text(json.dumps({"content": content, "style": style}))
    return data


@pytest.fixture
def bandai_like(tmp_path) -> Path:
    """2 contents x 3 styles of FRAMES frames each."""
    return write_bandai_like(tmp_path / "ds", {f"take_{c}_{s}": (c, s, FRAMES) for c in range(2) for s in range(3)})


def test_bvh_folder_labels_from_id_sidecars(tmp_path, bandai_like):
    spec = {"uri": f"bvh:{bandai_like}", "label_key": "style", "name": "ds"}
    ws = load(data_config(tmp_path, spec), progress=False)
    assert ws.labels == ("happy", "normal", "sad")
    assert len(ws.clips) == 6 and len(ws) == 12 and ws.joints.shape[1:] == (60, 17, 3)
    clip = next(c for c in ws.clips if c.id == "ds/take_1_2.bvh")
    assert (clip.label, clip.groups, clip.layout) == ("normal", {"content": "bow"}, "bvh-cmu")
    assert ws.summary()["per_label"]["sad"] == {"windows": 4, "clips": 2}


def test_class_subset_and_renaming(tmp_path, bandai_like):
    spec = {"uri": f"bvh:{bandai_like}", "label_key": "style", "classes": ["happy", "normal"],
            "rename": {"normal": "neutral"}}
    ws = load(data_config(tmp_path, spec), progress=False)
    assert ws.labels == ("happy", "neutral") and len(ws.clips) == 4


def test_files_without_labels_are_all_named(tmp_path, bandai_like):
    (bandai_like / "take_0_1.json").unlink()
    (bandai_like / "take_1_0.json").write_text(json.dumps({"content": 1}))
    with pytest.raises(DatasetError, match=r"2 file\(s\) have no 'style' label") as err:
        load(data_config(tmp_path, {"uri": f"bvh:{bandai_like}", "label_key": "style"}), progress=False)
    assert "take_0_1.bvh" in str(err.value) and "take_1_0.bvh" in str(err.value)
    assert "take_0_0.bvh" not in str(err.value)


def test_unknown_class_names_list_the_real_ones(tmp_path, bandai_like):
    for field, value in (("classes", ["happy", "angry"]), ("rename", {"joyful": "happy"})):
        spec = {"uri": f"bvh:{bandai_like}", "label_key": "style", field: value}
        with pytest.raises(DatasetError, match="unknown class name.*(angry|joyful).*happy, normal, sad"):
            load(data_config(tmp_path, spec), progress=False)


def test_a_rig_without_unified_mapping_names_its_files(tmp_path, bandai_like):
    rig = [(n.replace("Head", "Skull"), p and p.replace("Head", "Skull"), o) for n, p, o in CMU_RIG]
    (bandai_like / "take_0_0.bvh").write_text(bvh_text(rig, rest_rows(rig, frames=FRAMES)))
    with pytest.raises(DatasetError, match=r"(?s)1 file\(s\) could not be read.*take_0_0.bvh.*no joint for head"):
        load(data_config(tmp_path, {"uri": f"bvh:{bandai_like}", "label_key": "style"}), progress=False)


def test_labels_outside_the_configured_label_set(tmp_path, bandai_like):
    cfg = data_config(tmp_path, {"uri": f"bvh:{bandai_like}", "label_key": "style"}, labels=["happy", "sad"])
    with pytest.raises(DatasetError, match="normal are not in data.labels"):
        load(cfg, progress=False)


def test_windows_are_cached_until_the_file_changes(tmp_path, bandai_like, monkeypatch):
    cfg = data_config(tmp_path, {"uri": f"bvh:{bandai_like}", "label_key": "style"})
    first = load(cfg, progress=False)
    monkeypatch.setattr(readers, "read", lambda *a, **k: pytest.fail("read again despite the cache"))
    again = load(cfg, progress=False)
    np.testing.assert_array_equal(first.joints, again.joints)
    path = bandai_like / "take_0_0.bvh"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with pytest.raises(pytest.fail.Exception, match="read again"):
        load(cfg, progress=False)


def test_synthetic_clips_never_mix_labels(tmp_path):
    spec = {"uri": "synthetic:?bodies=2&duration=30&hold=10&seed=3"}
    ws = load(data_config(tmp_path, spec), progress=False)
    assert {c.groups["body"] for c in ws.clips} == {"1", "2"}
    for i, clip in enumerate(ws.clips):
        n = int((ws.clip == i).sum())
        assert 1 <= n <= 17  # at most one 10 s label period: (10 - 2) / 0.5 + 1 windows
        assert {ws.labels[k] for k in ws.label[ws.clip == i]} == {clip.label}


def test_synthetic_labels_agree_with_the_frames(tmp_path):
    spec = {"uri": "synthetic:?bodies=1&duration=6&emotion=sad"}
    ws = load(data_config(tmp_path, spec, labels=["happy", "sad"]), progress=False)
    assert ws.labels == ("happy", "sad") and set(ws.label.tolist()) == {1}


def test_an_empty_test_side_stops_before_training(tmp_path):
    spec = {"uri": "synthetic:?bodies=2&duration=4&emotion=happy,sad"}  # one clip per class
    with pytest.raises(SplitError, match="test side has no windows"):
        load_split(data_config(tmp_path, spec), progress=False)


def test_dataset_specs_are_checked_on_construction(tmp_path):
    with pytest.raises(ConfigError, match="needs `labels:`"):
        data_config(tmp_path, {"uri": "session:x.mcap"})
    with pytest.raises(ConfigError, match="not a dataset"):
        data_config(tmp_path, {"uri": "nosuch:x"})
    with pytest.raises(ConfigError, match="distinct `name:`"):
        data_config(tmp_path, {"uri": "synthetic:?seed=1&duration=9"}, {"uri": "synthetic:?seed=2&duration=9"})


def test_session_with_interval_labels(tmp_path):
    """A recorded session + a label file: windows inside an interval take its label; windows
    across the change at 4 s are dropped."""
    path = tmp_path / "take.mcap"
    with create("synthetic:?bodies=1&duration=8&seed=5") as src, SessionWriter(path) as writer:
        for seq, f in enumerate(src.frames()):
            msg = schema.SkeletonFrame(sensor="k", seq=seq, t_capture=1000.0 + f.t, layout="kinect_v2",
                                       body_ids=f.body_ids, joints=f.joints, confidence=f.confidence)
            writer.write(schema.encode(msg), log_time=seq + 1)
    labels = tmp_path / "labels.csv"
    labels.write_text("start,end,emotion\n0,4,calm\n4,8,tense\n")
    ws = load(data_config(tmp_path, {"uri": f"session:{path}", "labels": "labels.csv"}), progress=False)
    assert ws.labels == ("calm", "tense")
    assert [(c.id, c.label) for c in ws.clips] == [("take/b1/s0", "calm"), ("take/b1/s2", "tense")]
    assert np.bincount(ws.label).tolist() == [5, 5]  # (4 - 2) / 0.5 + 1 windows each; 3 straddle


def test_several_datasets_in_one_run_keep_their_layouts(tmp_path, bandai_like):
    ws = load(data_config(tmp_path, {"uri": f"bvh:{bandai_like}", "label_key": "style", "name": "mocap"},
                          {"uri": "synthetic:?bodies=1&duration=6&emotion=sad", "name": "synth"}), progress=False)
    assert ws.labels == ("happy", "normal", "sad")
    assert {c.dataset: c.layout for c in ws.clips} == {"mocap": "bvh-cmu", "synth": "kinect_v2"}
    layouts = EncoderConfig().layouts
    ids = WindowDataset(ws, layouts, 60, version=1).layout
    expected = [layouts.index(ws.clips[i].layout) for i in ws.clip]
    assert ids.tolist() == expected and len(set(expected)) == 2


def test_timelines_and_interval_files(tmp_path):
    t = Timeline()
    for time, value in ((0.0, "a"), (1.0, "a"), (5.0, "b"), (9.0, None)):
        t.add(time, value)
    assert t.segment(0.5, 4.9) == (0, "a") and t.segment(5.0, 8.0) == (1, "b")
    assert t.segment(4.0, 6.0) is None and t.segment(9.5, 10) is None
    bad = tmp_path / "overlap.csv"
    bad.write_text("start,end,emotion\n0,5,a\n4,8,b\n")
    with pytest.raises(LabelError, match="overlap at 4.0"):
        interval_timelines(bad, "emotion")
    with pytest.raises(LabelError, match="does not exist"):
        interval_timelines(tmp_path / "nope.csv", "emotion")


@pytest.mark.shared_data
def test_bandai_emotion_styles(shared_data, tmp_path):
    data = shared_data("bandai-namco-ds1", "data")
    spec = {"uri": f"bvh:{data}", "name": "bandai", "label_key": "style",
            "classes": ["angry", "happy", "sad", "proud", "not-confident", "tired", "normal"],
            "rename": {"normal": "neutral"}}
    ws = load(data_config(tmp_path, spec), progress=False)
    assert ws.labels == ("angry", "happy", "neutral", "not-confident", "proud", "sad", "tired")
    assert {c.layout for c in ws.clips} == {"bvh-bandai"}
    walk = [c for c in ws.clips if c.groups["content"] == "walk"]
    assert {c.label for c in walk} == set(ws.labels)
    assert all(c.id.startswith("bandai/dataset-1_") for c in ws.clips)
    # every clip counts: the 5 clips shorter than a window give one padded window each
    assert len(ws.clips) == 86 and ws.padding() == {"windows": 5, "clips": 5}
    padded = sorted(ws.clips[i].id.split("/")[1] for i in set(ws.clip[ws.padded].tolist()))
    assert padded == ["dataset-1_byebye_angry_001.bvh", "dataset-1_dash_normal_001.bvh",
                      "dataset-1_run_normal_001.bvh", "dataset-1_walk-back_normal_001.bvh",
                      "dataset-1_walk_normal_002.bvh"]


def test_train_hop_cuts_the_training_clips_denser_and_leaves_the_held_out_ones(tmp_path, bandai_like):
    spec = {"uri": f"bvh:{bandai_like}", "label_key": "style", "name": "ds"}
    split = {"kind": "logo", "group": "content", "fold": "bow"}
    windows, _, train, test = load_split(data_config(tmp_path, spec, split=split), progress=False)
    _, _, dense, test2 = load_split(data_config(tmp_path, spec, split=split, train_hop=0.2), progress=False)
    assert len(windows) == 12 and len(train) == len(test) == 6          # 2 windows a clip, 0.5 s apart
    assert len(dense) == 2 * len(train) - 3                             # 3 windows a clip, 0.2 s apart
    assert {dense.clips[i].id for i in dense.clip} == {train.clips[i].id for i in train.clip}
    np.testing.assert_array_equal(test.joints, test2.joints)
    with pytest.raises(ConfigError, match="hop"):
        data_config(tmp_path, spec, train_hop=0)
