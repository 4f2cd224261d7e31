"""Fake ``mediapipe`` (the Pose Landmarker calls the source makes) and ``cv2`` (VideoCapture)
in ``sys.modules``, for the webcam/video sources without the 100 MB wheels or a model file.

Landmark j of every frame is at (0, -j / 100, 0.5) m in MediaPipe axes (y down) with
visibility 0.9, except the right foot index (32), visibility 0.1.
"""
from __future__ import annotations

import sys
import types

import numpy as np


class _Camera:
    frames_left = 1000     # per capture object; a test sets 0 to unplug the camera
    opened = 0

    def __init__(self, target) -> None:
        type(self).opened += 1
        self.target = target

    def isOpened(self) -> bool:
        return True

    def read(self):
        if type(self).frames_left <= 0:
            return False, None
        type(self).frames_left -= 1
        return True, np.zeros((4, 4, 3), np.uint8)

    def get(self, prop: int) -> float:
        return 25.0

    def release(self) -> None:
        pass


class _Landmarker:
    timestamps: list = []

    def detect_for_video(self, image, ms: int):
        assert image.data.shape == (4, 4, 3)
        type(self).timestamps.append(ms)
        pose = [types.SimpleNamespace(x=0.0, y=-j / 100, z=0.5, visibility=0.1 if j == 32 else 0.9)
                for j in range(33)]
        return types.SimpleNamespace(pose_world_landmarks=[pose])

    def close(self) -> None:
        pass


def install(monkeypatch, frames: int = 1000):
    mp = types.ModuleType("mediapipe")
    vision = types.SimpleNamespace(
        PoseLandmarkerOptions=lambda **kw: kw, RunningMode=types.SimpleNamespace(VIDEO="video"),
        PoseLandmarker=types.SimpleNamespace(create_from_options=lambda options: _Landmarker()))
    mp.tasks = types.SimpleNamespace(vision=vision, BaseOptions=lambda **kw: kw)
    mp.Image = lambda image_format, data: types.SimpleNamespace(data=data)
    mp.ImageFormat = types.SimpleNamespace(SRGB="srgb")
    cv2 = types.ModuleType("cv2")
    camera = type("VideoCapture", (_Camera,), {"frames_left": frames, "opened": 0})
    cv2.VideoCapture, cv2.CAP_PROP_FPS, cv2.COLOR_BGR2RGB = camera, 5, 4
    cv2.cvtColor = lambda image, code: image
    monkeypatch.setitem(sys.modules, "mediapipe", mp)
    monkeypatch.setitem(sys.modules, "cv2", cv2)
    monkeypatch.setattr(_Landmarker, "timestamps", [])
    return camera
