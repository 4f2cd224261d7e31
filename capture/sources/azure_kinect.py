"""``azure-kinect:INDEX`` -- Azure Kinect body tracking through ``pykinect_azure``.

Needs the Azure Kinect Sensor SDK 1.4 and Body Tracking SDK 1.1 (Windows, or Ubuntu with
Microsoft's packages) and ``pip install 'bodytalk[azure]'``. Up to ~6 bodies of 32 joints at
30 Hz (depth mode WFOV 2x2 binned), in millimetres with Y down; the ``azure_kinect`` layout
converts to metres, Y up. Joint confidence levels -> confidence: none 0, low (occluded,
predicted) 0.5, medium/high 1. Body ids are the tracker's ids, stable while a body is tracked.

The binding is imported when the source opens; it reports failures by printing and calling
``sys.exit`` and references ``numpy.object`` in its ``Body`` class, so skeletons are read
through the frame's ``get_body_id``/``get_body_skeleton`` and every failure -- import, library
load, device open, capture -- becomes a ``SourceError`` (setup) or a disconnect (afterwards).
"""
from __future__ import annotations

import numpy as np

from bodytalk.capture.layouts_known import AZURE_KINECT
from bodytalk.capture.source import Frame, SourceError
from bodytalk.capture.sources.live import LinkDown, LiveSource, import_sdk, make_frame

NEEDS = ("Azure Kinect needs the Azure Kinect Sensor SDK 1.4 and Body Tracking SDK 1.1 (Windows or "
         "Ubuntu) and pip install 'bodytalk[azure]'")
CONFIDENCE = np.array([0.0, 0.5, 1.0, 1.0], np.float32)  # K4ABT_JOINT_CONFIDENCE_NONE..HIGH


class AzureKinectSource(LiveSource):
    scheme = "azure-kinect"
    help = ("Azure Kinect body tracking (Sensor SDK 1.4 + Body Tracking SDK 1.1, pip install "
            "'bodytalk[azure]'); target = device index; 32 joints, 30 Hz; " + LiveSource.LINK_OPTIONS)
    example = "azure-kinect:0"

    _device = None
    _tracker = None

    def setup(self) -> None:
        (self._k4a,) = import_sdk(["pykinect_azure"], NEEDS)
        try:
            self._k4a.initialize_libraries(track_body=True)
        except (Exception, SystemExit) as err:  # the binding exits when a library is missing
            raise SourceError(f"{NEEDS} (the SDK libraries did not load: {type(err).__name__}: "
                              f"{err})") from None
        try:
            self.index = int(self.target or 0)
        except ValueError:
            raise SourceError(f"azure-kinect: {self.target!r} is not a device index; e.g. "
                              f"{self.example}") from None
        self.layout, self.fps = AZURE_KINECT, 30.0

    def describe(self) -> str:
        return f"Azure Kinect {self.index}"

    def connect(self) -> None:
        config = self._k4a.default_configuration
        config.color_resolution = self._k4a.K4A_COLOR_RESOLUTION_OFF
        config.depth_mode = self._k4a.K4A_DEPTH_MODE_WFOV_2X2BINNED
        try:
            self._device = self._k4a.start_device(device_index=self.index, config=config)
            self._tracker = self._k4a.start_body_tracker()
        except (Exception, SystemExit) as err:
            self.disconnect()
            raise LinkDown(f"cannot open the device: {type(err).__name__}: {err}") from None

    def disconnect(self) -> None:
        for handle in (self._tracker, self._device):
            if handle is not None:
                try:
                    handle.close() if hasattr(handle, "close") else handle.destroy()
                except (Exception, SystemExit):
                    pass  # an unplugged device cannot be closed cleanly; it is gone anyway
        self._device = self._tracker = None

    def receive(self, timeout: float):
        # The binding waits for the next capture (30 Hz) and exits on any failure, a time-out
        # included, so it gets the whole disconnect time-out: silence that long is a disconnect.
        wait_ms = int(self.link.timeout * 1000)
        try:
            self._device.update(timeout_in_ms=wait_ms)
            return self._tracker.update(timeout_in_ms=wait_ms)
        except (Exception, SystemExit) as err:
            raise LinkDown(f"capture failed: {type(err).__name__}: {err}") from None

    def decode(self, body_frame) -> Frame | None:
        n = body_frame.get_num_bodies()
        joints = np.zeros((n, AZURE_KINECT.num_joints, 3), np.float32)   # [B, 32, 3] mm, Y down
        conf = np.zeros((n, AZURE_KINECT.num_joints), np.float32)        # [B, 32]
        ids = np.zeros(n, np.int32)
        for b in range(n):
            ids[b] = body_frame.get_body_id(b)
            skeleton = body_frame.get_body_skeleton(b)
            for j in range(AZURE_KINECT.num_joints):
                joint = skeleton.joints[j]
                joints[b, j] = tuple(joint.position.v)
                conf[b, j] = CONFIDENCE[min(int(joint.confidence_level), 3)]
        return make_frame(ids, self.layout.to_canonical(joints), conf)
