"""``webcam:INDEX`` and ``video:PATH`` -- MediaPipe Pose Landmarker 3D world landmarks (33 joints).

Choice of package: the current ``mediapipe`` wheels (Tasks API, NumPy 2) with a pose model the
user downloads -- ``pose_landmarker_lite.task``, ``_full`` or ``_heavy`` from Google's MediaPipe
models page -- given as ``?model=PATH``. (mediapipe 0.10.21 still bundles the legacy model but
needs NumPy < 2, which the rest of bodytalk does not run on.) Install with
``pip install 'bodytalk[webcam]'`` (mediapipe, opencv-python-headless).

World landmarks are metres with the origin between the hips, x right, y down, z away from the
camera; the ``mediapipe`` layout turns them canonical. Being hip-centred, they show posture and
gesture but not travel across the room. Confidence is the landmark's visibility. MediaPipe does
not track identities: with ``poses=1`` (default) the body id is 0; with more, ids follow
detection order and may swap when people cross.

Options: ``model=PATH`` (required), ``poses=N`` (default 1), ``min_confidence=F`` (detection,
presence and tracking thresholds, default 0.5). ``webcam:`` is live (reopened with back-off if
the camera goes away); ``video:`` is a file, paced by the capture loop at the file's rate.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import numpy as np

from bodytalk.capture.layouts_known import MEDIAPIPE
from bodytalk.capture.source import Frame, Source, SourceError
from bodytalk.capture.sources.live import LinkDown, LiveSource, import_sdk, make_frame, sanitize

NEEDS = "webcam/video sources need MediaPipe and OpenCV: pip install 'bodytalk[webcam]'"


class PoseEstimator:
    """A MediaPipe Pose Landmarker in video mode, from the source's options."""

    def __init__(self, src: Source) -> None:
        model = src.option("model", None)
        if model is None:
            raise SourceError(f"{src.scheme}: give a pose model: ?model=pose_landmarker_full.task "
                              "(download it from Google's MediaPipe Pose Landmarker models page)")
        if not Path(model).is_file():
            raise SourceError(f"{src.scheme}: model {model} not found")
        poses = src.option("poses", 1, int)
        threshold = src.option("min_confidence", 0.5, float)
        if poses < 1 or not 0 <= threshold <= 1:
            raise SourceError(f"{src.scheme}: need poses >= 1 and 0 <= min_confidence <= 1")
        self.mp, self.cv2 = import_sdk(["mediapipe", "cv2"], NEEDS)
        vision = self.mp.tasks.vision
        options = vision.PoseLandmarkerOptions(
            base_options=self.mp.tasks.BaseOptions(model_asset_path=str(model)),
            running_mode=vision.RunningMode.VIDEO, num_poses=poses,
            min_pose_detection_confidence=threshold, min_pose_presence_confidence=threshold,
            min_tracking_confidence=threshold)
        try:
            self.landmarker = vision.PoseLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as err:
            raise SourceError(f"{src.scheme}: cannot load the pose model {model}: {err}") from None
        self._last_ms = -1

    def estimate(self, bgr: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One BGR image at ``t`` seconds -> ids ``[B]``, joints ``[B, 33, 3]`` (MediaPipe
        axes), visibility ``[B, 33]``."""
        ms = max(int(t * 1000), self._last_ms + 1)  # video mode needs increasing timestamps
        self._last_ms = ms
        rgb = self.cv2.cvtColor(bgr, self.cv2.COLOR_BGR2RGB)
        result = self.landmarker.detect_for_video(
            self.mp.Image(image_format=self.mp.ImageFormat.SRGB, data=rgb), ms)
        poses = result.pose_world_landmarks or []
        joints = np.array([[(p.x, p.y, p.z) for p in pose] for pose in poses], np.float32).reshape(-1, 33, 3)
        conf = np.array([[p.visibility or 0.0 for p in pose] for pose in poses], np.float32).reshape(-1, 33)
        return np.arange(len(poses), dtype=np.int32), joints, conf

    def close(self) -> None:
        self.landmarker.close()


class WebcamSource(LiveSource):
    scheme = "webcam"
    help = ("camera INDEX through MediaPipe Pose (33 joints, hip-centred), model=PATH.task "
            "required, poses=N; pip install 'bodytalk[webcam]'; " + LiveSource.LINK_OPTIONS)
    example = "webcam:0?model=pose_landmarker_full.task"

    _camera = None
    _pose: PoseEstimator | None = None

    def setup(self) -> None:
        try:
            self.index = int(self.target or 0)
        except ValueError:
            raise SourceError(f"webcam: {self.target!r} is not a camera index; e.g. {self.example}") from None
        self._pose = PoseEstimator(self)
        self.layout, self.fps = MEDIAPIPE, self.option("fps", 30.0, float)

    def describe(self) -> str:
        return f"webcam {self.index}"

    def connect(self) -> None:
        self._camera = self._pose.cv2.VideoCapture(self.index)
        if not self._camera.isOpened():
            self.disconnect()
            raise LinkDown("the camera does not open")

    def disconnect(self) -> None:
        if self._camera is not None:
            self._camera.release()
            self._camera = None

    def receive(self, timeout: float):
        ok, image = self._camera.read()  # blocks for the next camera frame
        if not ok:
            raise LinkDown("the camera stopped delivering images")
        return image

    def decode(self, image: np.ndarray) -> Frame | None:
        ids, joints, conf = self._pose.estimate(image, time.monotonic())
        return make_frame(ids, self.layout.to_canonical(joints), conf)

    def close(self) -> None:
        super().close()
        if self._pose is not None:
            self._pose.close()
            self._pose = None


class VideoSource(Source):
    scheme = "video"
    help = "video file through MediaPipe Pose (33 joints, hip-centred), model=PATH.task required, poses=N"
    example = "video:talk.mp4?model=pose_landmarker_full.task"

    _pose: PoseEstimator | None = None

    def open(self) -> None:
        path = Path(self.target)
        if not path.is_file():
            raise SourceError(f"video: {path} not found")
        self._pose = PoseEstimator(self)
        self._video = self._pose.cv2.VideoCapture(str(path))
        if not self._video.isOpened():
            raise SourceError(f"video: OpenCV cannot read {path} (codec?)")
        self.layout = MEDIAPIPE
        self.fps = self._video.get(self._pose.cv2.CAP_PROP_FPS) or 30.0

    def frames(self) -> Iterator[Frame]:
        i = 0
        while True:
            ok, image = self._video.read()
            if not ok:
                return
            t = i / self.fps
            ids, joints, conf = self._pose.estimate(image, t)
            joints, conf = sanitize(self.layout.to_canonical(joints), conf)
            yield Frame(t=t, body_ids=ids, joints=joints, confidence=conf)
            i += 1

    def close(self) -> None:
        if self._pose is not None:
            self._video.release()
            self._pose.close()
            self._pose = None
