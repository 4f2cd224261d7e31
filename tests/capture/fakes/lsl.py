"""LSL fakes: a loopback-only liblsl configuration and a third-party skeleton outlet."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np


def loopback_config(directory: Path) -> Path:
    """An ``lsl_api.cfg`` that keeps LSL on this machine (no multicast beyond it, the only peer
    127.0.0.1) and in a session of its own, so parallel test runs never see each other's streams."""
    path = directory / "lsl_api.cfg"
    path.write_text("[ports]\nIPv6 = disable\n"
                    "[multicast]\nResolveScope = machine\nKnownPeers = {127.0.0.1}\n"
                    f"[lab]\nSessionID = bodytalk-test-{os.getpid()}\n")
    return path


class ThirdPartyOutlet:
    """A foreign mocap app's LSL stream: Azure Kinect joint names, millimetres, Y down, no
    bodytalk description; joint j at (frame, -10 j, 2000) mm. Runs until ``stop()``."""

    def __init__(self, name: str, joints: tuple[str, ...], rate: float = 100.0) -> None:
        import pylsl

        info = pylsl.StreamInfo(name, "MoCap", 3 * len(joints) + 1, rate, pylsl.cf_float32, name + "-src")
        info.set_channel_labels([f"{j}_{a}" for j in joints for a in "xyz"] + ["Trigger"])
        self.outlet = pylsl.StreamOutlet(info)
        self.n = len(joints)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(1.0 / rate,), daemon=True)
        self._thread.start()

    def _run(self, period: float) -> None:
        frame = 0
        while not self._stop.wait(period):
            xyz = np.stack([np.full(self.n, frame), -10.0 * np.arange(self.n), np.full(self.n, 2000.0)], -1)
            self.outlet.push_sample(np.append(xyz.reshape(-1), 0.0).astype(np.float32))
            frame += 1

    def stop(self) -> None:
        """The app quits: its outlet is destroyed."""
        self._stop.set()
        self._thread.join()
        self.outlet = None
