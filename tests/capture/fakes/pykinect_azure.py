"""A fake ``pykinect_azure`` in ``sys.modules``: the calls the source makes, with the binding's
habit of reporting failures through ``sys.exit``."""
from __future__ import annotations

import sys
import time
import types

K4A_COLOR_RESOLUTION_OFF, K4A_DEPTH_MODE_WFOV_2X2BINNED = 0, 3
BODY_IDS = (1, 2)


class _Float3:
    def __init__(self, v) -> None:
        self.v = tuple(v)


class _Joint:
    def __init__(self, position, confidence_level: int) -> None:
        self.position, self.confidence_level = _Float3(position), confidence_level


class _Skeleton:
    def __init__(self, frame: int) -> None:
        # Joint j at (frame, -10 j, 2000) mm (Y down); joints 28..31 (eyes, ears) low confidence.
        self.joints = [_Joint((frame, -10.0 * j, 2000.0), 1 if j >= 28 else 2) for j in range(32)]


class BodyFrame:
    def __init__(self, frame: int, ids) -> None:
        self.frame, self.ids = frame, ids

    def get_num_bodies(self) -> int:
        return len(self.ids)

    def get_body_id(self, index: int) -> int:
        return self.ids[index]

    def get_body_skeleton(self, index: int) -> _Skeleton:
        return _Skeleton(self.frame)


class Device:
    plugged = True
    opened = 0

    def __init__(self, device_index: int) -> None:
        if not Device.plugged:
            sys.exit(1)  # what the binding's VERIFY does
        Device.opened += 1
        self.frame = 0

    def update(self, timeout_in_ms: int = -1):
        if not Device.plugged:
            sys.exit(1)
        time.sleep(0.01)
        self.frame += 1
        Tracker.last = self.frame

    def close(self) -> None:
        pass


class Tracker:
    last = 0

    def update(self, timeout_in_ms: int = -1) -> BodyFrame:
        return BodyFrame(Tracker.last, BODY_IDS)

    def destroy(self) -> None:
        pass


def install(monkeypatch, libraries_load: bool = True):
    module = types.ModuleType("pykinect_azure")
    module.K4A_COLOR_RESOLUTION_OFF = K4A_COLOR_RESOLUTION_OFF
    module.K4A_DEPTH_MODE_WFOV_2X2BINNED = K4A_DEPTH_MODE_WFOV_2X2BINNED
    module.default_configuration = types.SimpleNamespace(color_resolution=1, depth_mode=2)

    def initialize_libraries(track_body: bool = False) -> None:
        if not libraries_load:
            sys.exit(1)

    def start_device(device_index: int = 0, config=None) -> Device:
        assert config.depth_mode == K4A_DEPTH_MODE_WFOV_2X2BINNED
        return Device(device_index)

    module.initialize_libraries = initialize_libraries
    module.start_device = start_device
    module.start_body_tracker = Tracker
    monkeypatch.setitem(sys.modules, "pykinect_azure", module)
    monkeypatch.setattr(Device, "plugged", True)
    monkeypatch.setattr(Device, "opened", 0)
    return Device
