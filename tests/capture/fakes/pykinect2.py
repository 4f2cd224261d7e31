"""A fake ``pykinect2`` (modules ``pykinect2.PyKinectV2`` and ``pykinect2.PyKinectRuntime``) that
mimics the binding's API and its traps, installed into ``sys.modules`` by ``install``.

Like the real runtime (0.1.0, 2015), a thread fills body frames at 30 Hz (here faster) and
``has_new_body_frame`` compares times taken with ``time.clock()``; the frame holds a
``numpy.object`` array of 6 bodies; both happen inside a bare ``try/except`` so, without the
source's compatibility shims, frames silently never arrive. The constructor calls
``time.clock()`` too, and ``get_last_body_frame`` stores its access time in a local variable, so
``has_new_body_frame`` stays True after the first frame: the same bugs as the release.
"""
from __future__ import annotations

import sys
import threading
import time
import types

import numpy

FrameSourceTypes_Body = 0x20
JointType_Count = 25
TrackingState_NotTracked, TrackingState_Inferred, TrackingState_Tracked = 0, 1, 2
TRACKING_IDS = (72057594037931101, 72057594037931555)  # 64-bit ids as the SDK hands them out


class _Vector4:
    def __init__(self, x: float, y: float, z: float) -> None:
        self.x, self.y, self.z, self.w = x, y, z, 0.0


class _Joint:
    def __init__(self, joint_type: int, position: _Vector4, state: int) -> None:
        self.JointType, self.Position, self.TrackingState = joint_type, position, state


class KinectBodyData:
    def __init__(self, tracked: bool, tracking_id: int, frame: int) -> None:
        self.is_tracked, self.tracking_id = tracked, tracking_id
        # Joint j at (frame / 1000, j / 10, 2.5) m; the left thumb (22) inferred, right (24) lost.
        self.joints = [_Joint(j, _Vector4(frame / 1000, j / 10, 2.5),
                              {22: TrackingState_Inferred, 24: TrackingState_NotTracked}.get(j, TrackingState_Tracked))
                       for j in range(JointType_Count)]


class KinectBodyFrameData:
    def __init__(self, frame: int, tracked_ids) -> None:
        self.bodies = numpy.ndarray((6,), dtype=numpy.object)  # the real binding's trap
        for i in range(6):
            tid = tracked_ids[i] if i < len(tracked_ids) else 0
            self.bodies[i] = KinectBodyData(i < len(tracked_ids), tid, frame)


class PyKinectRuntime:
    """Mimics ``PyKinectRuntime.PyKinectRuntime``: a frame thread and the polling API."""
    sensor_present = True                  # tests unplug the sensor by clearing this
    tracked_ids = TRACKING_IDS
    opened = 0

    def __init__(self, frame_source_types: int) -> None:
        assert frame_source_types & FrameSourceTypes_Body
        type(self).opened += 1
        self._lock = threading.Lock()
        self._bodies = None
        self._last_body_frame_time = self._last_body_frame_access = time.clock()
        self._frame = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._frame_thread, daemon=True)
        self._thread.start()

    def _frame_thread(self) -> None:
        while not self._closed.wait(0.01):
            if not type(self).sensor_present:
                continue
            try:  # the binding swallows every error here
                with self._lock:
                    self._bodies = KinectBodyFrameData(self._frame, type(self).tracked_ids)
                    self._last_body_frame_time = time.clock()
                    self._frame += 1
            except:  # noqa: E722 -- mimics the real binding
                pass

    def has_new_body_frame(self) -> bool:
        return self._last_body_frame_time > self._last_body_frame_access

    def get_last_body_frame(self):
        with self._lock:
            if self._bodies is None:
                return None
            _last_body_frame_access = time.clock()  # noqa: F841 -- the release's bug, kept
            return self._bodies

    def close(self) -> None:
        self._closed.set()
        self._thread.join()


def install(monkeypatch) -> type:
    """Put the fake into ``sys.modules`` (undone by monkeypatch); returns the runtime class."""
    package = types.ModuleType("pykinect2")
    v2 = types.ModuleType("pykinect2.PyKinectV2")
    v2.FrameSourceTypes_Body, v2.JointType_Count = FrameSourceTypes_Body, JointType_Count
    runtime = types.ModuleType("pykinect2.PyKinectRuntime")
    runtime.PyKinectRuntime = type("PyKinectRuntime", (PyKinectRuntime,), {})  # fresh class state
    runtime.KinectBodyFrameData = KinectBodyFrameData
    package.PyKinectV2, package.PyKinectRuntime = v2, runtime
    for name, module in (("pykinect2", package), ("pykinect2.PyKinectV2", v2),
                         ("pykinect2.PyKinectRuntime", runtime)):
        monkeypatch.setitem(sys.modules, name, module)
    return runtime.PyKinectRuntime


def install_broken(monkeypatch, error: Exception) -> None:
    """A ``pykinect2`` whose import fails the way it does off Windows."""
    class Finder:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "pykinect2":
                raise error
            return None
    for name in ("pykinect2", "pykinect2.PyKinectV2", "pykinect2.PyKinectRuntime"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
