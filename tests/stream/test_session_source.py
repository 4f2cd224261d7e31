"""``session:FILE`` yields the recorded skeleton frames of one sensor, exactly."""
from __future__ import annotations

import numpy as np
import pytest

from bodytalk.capture import source as sources
from bodytalk.stream import schema
from bodytalk.stream.session_file import SessionWriter

J = 25  # kinect_v2


def frame_message(sensor: str, seq: int, fps: float = 30.0) -> schema.SkeletonFrame:
    rng = np.random.default_rng(seq)
    bodies = np.array([1, 2] if seq % 2 else [1], np.int32)  # body 2 comes and goes
    return schema.SkeletonFrame(
        sensor=sensor, seq=seq, t_capture=100.0 + seq / fps, layout="kinect_v2", body_ids=bodies,
        joints=rng.normal(size=(len(bodies), J, 3)).astype(np.float32),
        confidence=rng.uniform(size=(len(bodies), J)).astype(np.float32))


@pytest.fixture
def session(tmp_path):
    """Frames of two sensors interleaved (k1 at 30 fps, k2 at 15), plus a heartbeat."""
    path = tmp_path / "two.mcap"
    k1 = [frame_message("k1", i) for i in range(40)]
    k2 = [frame_message("k2", i, fps=15.0) for i in range(20)]
    with SessionWriter(path) as w:
        w.write(schema.encode(schema.Status(component="capture_k1", state="running")), log_time=1)
        for i, msg in enumerate(k1):
            w.write(schema.encode(msg), log_time=10 + 2 * i)
            if i % 2 == 0:
                w.write(schema.encode(k2[i // 2]), log_time=11 + 2 * i)
    return path, k1, k2


def read_all(uri: str) -> tuple[sources.Source, list[sources.Frame]]:
    with sources.create(uri) as src:
        return src, list(src.frames())


def assert_same(frames: list[sources.Frame], messages: list[schema.SkeletonFrame]) -> None:
    assert len(frames) == len(messages)
    for f, m in zip(frames, messages):
        assert f.t == m.t_capture
        np.testing.assert_array_equal(f.body_ids, m.body_ids)
        np.testing.assert_array_equal(f.joints, m.joints)
        np.testing.assert_array_equal(f.confidence, m.confidence)


def test_default_is_the_first_sensor_recorded(session):
    path, k1, _ = session
    src, frames = read_all(f"session:{path}")
    assert src.sensor == "k1" and src.layout.id == "kinect_v2"
    assert src.fps == pytest.approx(30.0)
    assert_same(frames, k1)


def test_sensor_option_picks_one(session):
    path, _, k2 = session
    src, frames = read_all(f"session:{path}?sensor=k2")
    assert src.sensor == "k2" and src.fps == pytest.approx(15.0)
    assert_same(frames, k2)


def test_unknown_sensor_lists_the_recorded_ones(session):
    path, _, _ = session
    with pytest.raises(sources.SourceError, match="k1, k2"):
        read_all(f"session:{path}?sensor=nope")


def test_session_without_frames_or_file_is_a_clear_error(tmp_path):
    path = tmp_path / "status_only.mcap"
    with SessionWriter(path) as w:
        w.write(schema.encode(schema.Status(component="x", state="running")))
    with pytest.raises(sources.SourceError, match="no skeleton.frame"):
        read_all(f"session:{path}")
    with pytest.raises(sources.SourceError, match="no session file"):
        read_all(f"session:{tmp_path / 'missing.mcap'}")


def test_unknown_layout_says_what_to_do(tmp_path):
    path = tmp_path / "rig.mcap"
    msg = frame_message("k1", 0)
    with SessionWriter(path) as w:
        # A layout id this process has never registered (a BVH rig's).
        w.write(schema.encode(schema.SkeletonFrame(
            sensor="k1", seq=0, t_capture=0.0, layout="bvh-unseen", body_ids=msg.body_ids,
            joints=msg.joints, confidence=msg.confidence)))
    with pytest.raises(sources.SourceError, match="unknown layout 'bvh-unseen'"):
        read_all(f"session:{path}")
