"""``kinect2:`` -- Kinect for Windows V2 through ``pykinect2`` (Windows, Kinect SDK 2.0, comtypes).

Up to 6 bodies of 25 joints at 30 Hz, in camera space metres (the ``kinect_v2`` layout is
already canonical). Joint tracking state -> confidence (tracked 1, inferred 0.5, not tracked 0);
the 64-bit tracking id -> a small body id that stays put while the body is tracked.

The binding is unmaintained and fails in ways that look like other problems, so:

- the platform is checked first: off Windows ``import pykinect2.PyKinectV2`` raises
  ``SyntaxError: unknown encoding: mbcs`` and comtypes an ImportError;
- it is imported when the source opens, and every import failure becomes one error that says
  what is needed (``NEEDS``);
- the 2015 release calls ``time.clock()`` (gone since Python 3.8) and both releases build
  ``numpy.object`` arrays (gone since NumPy 1.24) inside a bare ``try/except`` in the frame
  thread, so body frames would silently never arrive: ``compat_shims`` restores both names
  before the runtime starts;
- its ``get_last_body_frame`` stores the access time in a local variable, so
  ``has_new_body_frame`` stays True once a frame came: new frames are told apart by the
  runtime's own frame time stamp instead.

A sensor unplugged (or the Kinect service stopped) shows as silence: "disconnected", then the
runtime is reopened with back-off until frames flow again.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from bodytalk.capture.layouts_known import KINECT_V2
from bodytalk.capture.source import Frame, SourceError
from bodytalk.capture.sources.live import BodyIds, LinkDown, LiveSource, import_sdk, make_frame

NEEDS = ("Kinect V2 needs Windows with Kinect SDK 2.0 and pip install 'bodytalk[kinect]'; on Linux, "
         "run capture on the Windows machine and publish over the network")
PLATFORM = sys.platform  # read by setup(); the tests stand in for Windows through it
POLL = 0.004  # seconds between polls of the runtime (its own thread fills the frames at 30 Hz)


def compat_shims() -> None:
    """Names pykinect2 uses that current Python and NumPy removed (see the module docstring)."""
    if not hasattr(time, "clock"):
        time.clock = time.perf_counter
    if "object" not in np.__dict__:
        np.object = object


class KinectV2Source(LiveSource):
    scheme = "kinect2"
    help = ("Kinect V2 body tracking (Windows + Kinect SDK 2.0, pip install 'bodytalk[kinect]'): "
            "up to 6 bodies, 25 joints, 30 Hz; " + LiveSource.LINK_OPTIONS)
    example = "kinect2:"

    _kinect = None

    def setup(self) -> None:
        if PLATFORM != "win32":
            raise SourceError(f"{NEEDS} (this machine runs {PLATFORM})")
        compat_shims()
        self._v2, self._runtime = import_sdk(["pykinect2.PyKinectV2", "pykinect2.PyKinectRuntime"], NEEDS)
        self.layout, self.fps = KINECT_V2, 30.0
        self._ids = BodyIds()

    def describe(self) -> str:
        return "Kinect V2"

    def connect(self) -> None:
        try:
            self._kinect = self._runtime.PyKinectRuntime(self._v2.FrameSourceTypes_Body)
        except Exception as err:  # COMError when the runtime or service is missing
            raise LinkDown(f"cannot start the Kinect runtime: {err}") from None
        self._stamp = self._kinect._last_body_frame_time

    def disconnect(self) -> None:
        if self._kinect is not None:
            self._kinect.close()
            self._kinect = None

    def receive(self, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            stamp = self._kinect._last_body_frame_time  # set by the runtime's frame thread
            if stamp != self._stamp and self._kinect.has_new_body_frame():
                self._stamp = stamp
                return self._kinect.get_last_body_frame()
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL)

    def decode(self, body_frame) -> Frame | None:
        if body_frame is None or body_frame.bodies is None:
            return None
        tracked = [body for body in body_frame.bodies if body is not None and body.is_tracked]
        n = KINECT_V2.num_joints
        joints = np.zeros((len(tracked), n, 3), np.float32)  # [B, 25, 3] metres
        conf = np.zeros((len(tracked), n), np.float32)       # [B, 25]
        for b, body in enumerate(tracked):
            for j in range(n):
                joint = body.joints[j]
                p = joint.Position
                joints[b, j] = (p.x, p.y, p.z)
                conf[b, j] = joint.TrackingState / 2.0   # NotTracked 0, Inferred 1, Tracked 2
        return make_frame(self._ids(body.tracking_id for body in tracked), joints, conf)
