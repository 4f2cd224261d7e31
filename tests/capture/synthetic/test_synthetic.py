"""The ``synthetic:`` source: determinism, kinematics, floor, handedness, labels, options,
dropout and windowing. The emotion styles are measured in test_synthetic_styles.py."""
from __future__ import annotations

import numpy as np
import pytest

from bodytalk.capture import source
from bodytalk.capture.layouts_known import KINECT_V2
from bodytalk.capture.sources.synthetic.source import SyntheticSource
from bodytalk.capture.sources.synthetic.motion import MotionConfig, SyntheticMotion
from bodytalk.capture.sources.synthetic.pose import Overlay
from bodytalk.capture.sources.synthetic.styles import ACTIVITIES, STYLES
from bodytalk.capture.windowing import WindowConfig, Windower

J = {name: i for i, name in enumerate(KINECT_V2.joints)}
BONES = [j for j, p in enumerate(KINECT_V2.parents) if p >= 0]
PARENTS = [KINECT_V2.parents[j] for j in BONES]


def read(uri: str) -> list[source.Frame]:
    with source.create(uri) as src:
        return list(src.frames())


def joints(frames: list[source.Frame]) -> np.ndarray:
    """``[T, B, 25, 3]`` float64 (every body present in every frame)."""
    return np.stack([f.joints for f in frames]).astype(np.float64)


def bone_lengths(X: np.ndarray) -> np.ndarray:
    return np.linalg.norm(X[..., BONES, :] - X[..., PARENTS, :], axis=-1)


def test_same_uri_gives_identical_frames_and_seed_changes_them():
    uri = "synthetic:?bodies=3&duration=4&dropout=0.2&seed=5"
    a, b = read(uri), read(uri)
    assert len(a) == len(b) == 120
    for fa, fb in zip(a, b):
        assert fa.t == fb.t and fa.labels == fb.labels
        np.testing.assert_array_equal(fa.body_ids, fb.body_ids)
        np.testing.assert_array_equal(fa.joints, fb.joints)
        np.testing.assert_array_equal(fa.confidence, fb.confidence)
    other = joints(read("synthetic:?bodies=3&duration=4&seed=6"))
    assert np.abs(other - joints(read("synthetic:?bodies=3&duration=4&seed=5"))).max() > 0.1


def test_duration_ends_the_source_with_timestamps_frame_over_fps():
    frames = read("synthetic:?duration=2")
    assert [f.t for f in frames] == [i / 30 for i in range(60)]
    slow = read("synthetic:?fps=10&duration=3")
    assert [f.t for f in slow] == [i / 10 for i in range(30)]
    # A shorter run is the start of a longer one (frames do not depend on where it ends).
    np.testing.assert_allclose(joints(read("synthetic:?duration=1.5")), joints(frames)[:45], atol=1e-6)


def test_bones_keep_their_length_and_bodies_differ():
    X = joints(read("synthetic:?bodies=3&duration=20&hold=5&seed=2"))
    L = bone_lengths(X)                                     # [T, B, 24]
    assert L.std(axis=0).max() < 1e-5
    assert L.min() > 0.02
    per_body = L.mean(axis=0)
    for i in range(3):
        for j in range(i):
            assert np.abs(per_body[i] - per_body[j]).max() > 0.005
    thigh = L[0, :, BONES.index(J["KneeLeft"])]
    assert np.all((thigh > 0.245 * 1.5 * 0.9) & (thigh < 0.245 * 1.9 * 1.1))


def test_feet_stay_on_the_floor():
    X = joints(read("synthetic:?bodies=3&duration=30&hold=6&seed=1"))
    ankles = X[:, :, [J["AnkleLeft"], J["AnkleRight"]], 1]
    assert 0.03 < ankles.min(-1).min() and ankles.min(-1).max() < 0.12  # one foot down, always
    assert X[:, :, [J["FootLeft"], J["FootRight"]], 1].min() > 0.0
    assert X[..., 1].min() > 0.0
    # A planted foot does not slide: an ankle at floor height in two frames stays put.
    A = X[:, :, [J["AnkleLeft"], J["AnkleRight"]]]                       # [T, B, 2, 3]
    planted = A[..., 1] < A[..., 1].min(axis=(0, 2), keepdims=True) + 1e-3
    both = planted[1:] & planted[:-1]
    slide = np.linalg.norm(np.diff(A[..., [0, 2]], axis=0), axis=-1)[both] * 30   # m/s
    assert both.mean() > 0.3 and np.median(slide) < 0.01 and np.percentile(slide, 90) < 0.1


def test_left_joints_are_on_the_persons_left():
    X = joints(read("synthetic:?bodies=3&duration=30&seed=3"))
    velocity = np.diff(X[:, :, J["SpineBase"]], axis=0) * 30
    velocity[..., 1] = 0
    walking = np.linalg.norm(velocity, axis=-1) > 0.5        # facing = direction of travel
    left = np.cross([0.0, 1.0, 0.0], velocity)                # up x forward = left (right-handed)
    for l_, r_ in (("ShoulderLeft", "ShoulderRight"), ("HipLeft", "HipRight"), ("HandLeft", "HandRight")):
        across = X[1:, :, J[l_]] - X[1:, :, J[r_]]
        assert np.all((across * left).sum(-1)[walking] > 0), l_
    toes = X[1:, :, J["FootLeft"]] - X[1:, :, J["AnkleLeft"]]
    assert np.all((toes * velocity).sum(-1)[walking] > 0)      # feet point where the body goes
    assert walking.sum() > 500


def test_labels_for_every_body_with_distinct_ids():
    frames = read("synthetic:?bodies=3&duration=30&hold=10")
    seen = set()
    for f in frames:
        assert f.body_ids.tolist() == [1, 2, 3]
        assert set(f.labels) == {1, 2, 3}
        for label in f.labels.values():
            assert label["emotion"] in STYLES and label["activity"] in ACTIVITIES
            seen.add(label["activity"])
    assert len(seen) >= 4  # bodies change what they do every few seconds


def test_emotion_option_fixes_emotions_and_hold_switches_them():
    frames = read("synthetic:?bodies=2&emotion=sad&duration=3")
    assert {lab["emotion"] for f in frames for lab in f.labels.values()} == {"sad"}
    frames = read("synthetic:?bodies=2&emotion=happy,angry&duration=3")
    assert all(f.labels[1]["emotion"] == "happy" and f.labels[2]["emotion"] == "angry" for f in frames)
    frames = read("synthetic:?bodies=2&hold=2&duration=10")
    for body in (1, 2):
        emotions = [f.labels[body]["emotion"] for f in frames]
        changes = [frames[i].t for i in range(1, len(frames)) if emotions[i] != emotions[i - 1]]
        assert changes == pytest.approx([2.0, 4.0, 6.0, 8.0])


@pytest.mark.parametrize("query, message", [
    ("emotion=bored", "unknown emotion bored; known: neutral"),
    ("bodies=3&emotion=sad,happy", "2 emotions for 3 bodies"),
    ("bodies=0", "bodies must be 1-64"),
    ("dropout=1.5", "dropout is a fraction"),
    ("duration=-1", "duration must be > 0"),
    ("fps=fast", "fps='fast' is not a valid float"),
    ("bodys=3", "unknown option.*bodys.*known: bodies"),
])
def test_bad_options_say_what_is_wrong(query, message):
    with pytest.raises(source.SourceError, match=message):
        source.create(f"synthetic:?{query}").open()


def test_dropout_lowers_confidence_and_hides_bodies_without_nan():
    frames = read("synthetic:?bodies=3&duration=30&dropout=0.3&seed=4")
    conf = np.concatenate([f.confidence for f in frames])
    assert all(np.isfinite(f.joints).all() for f in frames) and np.isfinite(conf).all()
    assert set(np.unique(conf)) == {0.0, 0.5, 1.0}
    assert 0.02 < (conf < 1).mean() < 0.3
    present = np.array([len(f.body_ids) for f in frames])
    assert present.min() < 3 and present.mean() > 2.5
    assert all(set(f.labels) == set(f.body_ids.tolist()) for f in frames)
    clean = read("synthetic:?bodies=3&duration=5&seed=4")
    assert all(len(f.body_ids) == 3 and (f.confidence == 1).all() for f in clean)


def test_windows_come_out_with_the_labels():
    windower = Windower(WindowConfig(window=2.0, hop=0.5, fps=30))
    windows = []
    for f in read("synthetic:?bodies=2&duration=6&emotion=fearful,happy"):
        windows += windower.push(f.t, f.body_ids, *KINECT_V2.to_unified(f.joints, f.confidence), f.labels)
    assert {w.body for w in windows} == {1, 2}
    assert len(windows) == 2 * 9  # (6 s - 2 s) / 0.5 s + 1 per body
    for w in windows:
        assert w.joints.shape == (60, 17, 3) and np.isfinite(w.joints).all()
        assert w.labels["emotion"] == {1: "fearful", 2: "happy"}[w.body]
        assert w.labels["activity"] in ACTIVITIES


def test_overlay_offsets_channels_only_over_its_span():
    cfg = MotionConfig(bodies=2, seed=9)
    plain, scripted = SyntheticMotion(cfg), SyntheticMotion(cfg)
    scripted.add_overlay(0, Overlay(1.0, 2.0, lambda tau: {"l_elbow": np.sin(np.pi * tau)}))
    _, a = plain.advance(90)
    track, b = scripted.advance(90)
    inside = (track.t >= 1.0) & (track.t < 2.0)
    moved = np.abs(b - a).max(axis=(2, 3))                  # [T, B]
    assert moved[~inside].max() == 0 and moved[:, 1].max() == 0
    assert moved[inside, 0].max() > 0.1
    np.testing.assert_allclose(bone_lengths(b), bone_lengths(a), atol=1e-9)
    with pytest.raises(ValueError, match="ends"):
        Overlay(2.0, 1.0, lambda tau: {})


def test_catalog_entry():
    assert "\n" not in SyntheticSource.help and "\n" not in SyntheticSource.example
    assert len(read(SyntheticSource.example.replace("duration=60", "duration=0.5"))) == 15
