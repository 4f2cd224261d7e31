"""``webcam:`` / ``video:``: option and install errors, the pose path on fake mediapipe/cv2 modules,
and the real package when it and a model are present."""
import importlib.util
import os

import numpy as np
import pytest

from bodytalk.capture import source as sources
from bodytalk.capture.layouts_known import MEDIAPIPE
from bodytalk.capture.source import SourceError
from bodytalk.capture.sources.mediapipe_pose import NEEDS
from tests.capture.fakes import mediapipe as fake
from tests.capture.fakes.mediapipe import _Landmarker
from tests.capture.fakes.reader import SourceReader


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "pose_landmarker_lite.task"
    path.write_bytes(b"not a real model: the fake landmarker ignores it")
    return path


def test_a_model_is_required():
    with pytest.raises(SourceError, match=r"model=pose_landmarker_full.task"):
        sources.create("webcam:0").open()
    with pytest.raises(SourceError, match="not found"):
        sources.create("webcam:0?model=/nonexistent.task").open()


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is not None, reason="mediapipe is installed")
def test_without_mediapipe_the_error_says_what_to_install(model):
    with pytest.raises(SourceError) as err:
        sources.create(f"video:{model}?model={model}").open()
    assert NEEDS in str(err.value)


def test_video_frames_in_canonical_space(monkeypatch, model, tmp_path):
    fake.install(monkeypatch, frames=10)
    video = tmp_path / "talk.mp4"
    video.write_bytes(b"")
    src = sources.create(f"video:{video}?model={model}")
    with src:
        frames = list(src.frames())
    assert len(frames) == 10 and src.fps == 25.0 and src.layout is MEDIAPIPE and not src.live
    assert [f.t for f in frames[:3]] == [0.0, 0.04, 0.08]
    assert _Landmarker.timestamps[:3] == [0, 40, 80]
    f = frames[-1]
    assert f.joints.shape == (1, 33, 3) and f.body_ids.tolist() == [0]
    np.testing.assert_allclose(f.joints[0, :, 1], np.arange(33) / 100, atol=1e-6)  # y down -> up
    assert f.confidence[0, 32] == pytest.approx(0.1) and f.confidence[0, 0] == pytest.approx(0.9)


def test_webcam_unplugged_and_back(monkeypatch, model):
    camera = fake.install(monkeypatch, frames=5)
    reader = SourceReader(f"webcam:0?model={model}")
    try:
        assert len(reader.take(5)) == 5
        assert "stopped delivering" in reader.wait_status("disconnected")
        camera.frames_left = 1000   # plugged back in
        reader.wait_status("running")
        assert reader.take(2)[-1].joints.shape == (1, 33, 3)
    finally:
        reader.close()
    assert camera.opened >= 2


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None or "BODYTALK_POSE_MODEL" not in os.environ,
                    reason="needs mediapipe (pip install 'bodytalk[webcam]') and a model in BODYTALK_POSE_MODEL")
def test_real_mediapipe_on_a_blank_video(tmp_path):
    import cv2

    path = str(tmp_path / "blank.avi")
    out = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    for _ in range(5):
        out.write(np.zeros((64, 64, 3), np.uint8))
    out.release()
    with sources.create(f"video:{path}?model={os.environ['BODYTALK_POSE_MODEL']}") as src:
        frames = list(src.frames())
    assert len(frames) == 5 and all(f.joints.shape[1:] == (33, 3) for f in frames)
