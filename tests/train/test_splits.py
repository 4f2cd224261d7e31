"""Splits by clip and leave-one-group-out: no clip (hence no window) on both sides, folds cover
every group once, checks before training."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bodytalk.train import splits
from bodytalk.train.windowset import Clip, WindowSet
from bodytalk.train.splits import Split, SplitConfig, SplitError


@dataclass(frozen=True)
class C:
    id: str
    label: str
    groups: dict = field(default_factory=dict)


def bandai_like() -> list[C]:
    """7 styles x 5 contents, one clip each, plus 3 clips of a content only 'normal' has."""
    styles = ["angry", "happy", "sad", "proud", "not-confident", "tired", "normal"]
    contents = ["walk", "run", "bow", "bye", "guide"]
    clips = [C(f"{c}_{s}", s, {"content": c}) for s in styles for c in contents]
    return clips + [C(f"punch_normal_{i}", "normal", {"content": "punch"}) for i in range(3)]


def test_by_clip_is_stratified_disjoint_and_seeded():
    clips = bandai_like()
    a = splits.by_clip(clips, 0.2, seed=0)
    assert not set(a.train) & set(a.test)
    assert set(a.train) | set(a.test) == {c.id for c in clips}
    label = {c.id: c.label for c in clips}
    assert {label[i] for i in a.test} == {label[i] for i in a.train} == {c.label for c in clips}
    assert splits.by_clip(clips, 0.2, seed=0) == a
    assert splits.by_clip(clips, 0.2, seed=1).test != a.test


def test_a_class_with_one_clip_stays_in_training():
    clips = [C("a1", "a"), C("a2", "a"), C("b1", "b")]
    s = splits.by_clip(clips, 0.5, seed=0)
    assert "b1" in s.train and len([i for i in s.test if i.startswith("a")]) == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from("xyz")), min_size=1, max_size=40),
       st.floats(0.05, 0.95), st.integers(0, 5))
def test_by_clip_never_puts_a_clip_on_both_sides(items, share, seed):
    clips = [C(f"c{i}", lab, {"g": g}) for i, (lab, g) in enumerate(items)]
    s = splits.by_clip(clips, share, seed)
    assert sorted(s.train + s.test) == sorted(c.id for c in clips)
    assert not set(s.train) & set(s.test)


def test_leave_one_group_out_folds_cover_every_group_and_clip_once():
    clips = bandai_like()
    folds = splits.make(clips, SplitConfig(kind="logo", group="content"))
    assert [f.held_out for f in folds] == sorted({c.groups["content"] for c in clips})
    tested = [i for f in folds for i in f.test]
    assert sorted(tested) == sorted(c.id for c in clips)  # each clip tested exactly once
    for f in folds:
        assert not set(f.train) & set(f.test)
        assert all(i.startswith(f.held_out + "_") for i in f.test)
    assert splits.select(clips, SplitConfig(kind="logo", fold="bow")).held_out == "bow"
    with pytest.raises(SplitError, match="not a value of 'content'.*walk"):
        splits.select(clips, SplitConfig(kind="logo", fold="swim"))


def test_logo_needs_the_group_field_on_every_clip():
    with pytest.raises(SplitError, match="no 'subject' field.*content"):
        splits.leave_one_group_out(bandai_like(), "subject")


def test_split_description_round_trips_and_refuses_overlap():
    s = splits.by_clip(bandai_like(), 0.3, seed=4)
    d = s.to_dict()
    assert d["kind"] == "clip" and d["seed"] == 4 and set(d) >= {"train", "test"}
    assert Split.from_dict(d) == s
    with pytest.raises(SplitError, match="both sides"):
        Split.from_dict({**d, "test": d["test"] + d["train"][:1]})


def test_check_refuses_empty_sides_and_test_only_classes():
    clips = [C("a1", "a"), C("a2", "a"), C("b1", "b")]
    counts = {"a1": 3, "a2": 4, "b1": 2}
    with pytest.raises(SplitError, match="class.*b.*only on the test side"):
        splits.check(Split("clip", ("a1",), ("a2", "b1")), clips, counts)
    with pytest.raises(SplitError, match="test side has no windows"):
        splits.check(Split("clip", ("a1", "b1"), ("a2",)), clips, {**counts, "a2": 0})
    splits.check(Split("clip", ("a1", "b1"), ("a2",)), clips, counts)  # fine


def test_windows_follow_their_clip():
    """WindowSet.split: every window lands on its clip's side, none on both."""
    clips = tuple(Clip(f"k{i}", "ab"[i % 2], "unified", "d") for i in range(6))
    clip = np.repeat(np.arange(6), 5)  # 5 overlapping windows per clip
    n = len(clip)
    ws = WindowSet(np.zeros((n, 60, 17, 3), np.float32), np.ones((n, 60, 17), np.float32),
                   clip % 2, clip, clips, ("a", "b"), 30.0)
    split = splits.by_clip(clips, 0.34, seed=0)
    train, test = ws.split(split)
    assert len(train) + len(test) == n
    assert {clips[i].id for i in train.clip} == set(split.train)
    assert {clips[i].id for i in test.clip} == set(split.test)
