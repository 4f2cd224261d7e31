"""Axis Neuron BVH broadcast fake: a TCP server streaming String-format frames ending in "||".

The rig is a CMU-named skeleton in centimetres with displacement (every joint keyed with
Xposition Yposition Zposition Yrotation Xrotation Zrotation, as Axis writes by default).
"""
from __future__ import annotations

import socket
import threading
from pathlib import Path

from tests.capture.fakes.outbox import Outbox

# (joint, parent, offset in cm)
RIG = [
    ("Hips", None, (0, 100, 0)), ("Spine", "Hips", (0, 10, 0)), ("Spine1", "Spine", (0, 10, 0)),
    ("Neck", "Spine1", (0, 30, 0)), ("Head", "Neck", (0, 10, 0)),
    ("LeftShoulder", "Spine1", (5, 25, 0)), ("LeftArm", "LeftShoulder", (12, 0, 0)),
    ("LeftForeArm", "LeftArm", (28, 0, 0)), ("LeftHand", "LeftForeArm", (25, 0, 0)),
    ("RightShoulder", "Spine1", (-5, 25, 0)), ("RightArm", "RightShoulder", (-12, 0, 0)),
    ("RightForeArm", "RightArm", (-28, 0, 0)), ("RightHand", "RightForeArm", (-25, 0, 0)),
    ("LeftUpLeg", "Hips", (10, 0, 0)), ("LeftLeg", "LeftUpLeg", (0, -45, 0)),
    ("LeftFoot", "LeftLeg", (0, -45, 0)), ("RightUpLeg", "Hips", (-10, 0, 0)),
    ("RightLeg", "RightUpLeg", (0, -45, 0)), ("RightFoot", "RightLeg", (0, -45, 0)),
]
CHANNELS = "CHANNELS 6 Xposition Yposition Zposition Yrotation Xrotation Zrotation"
OFFSETS = {name: off for name, _, off in RIG}
CHILDREN: dict = {}
for _name, _parent, _ in RIG:
    CHILDREN.setdefault(_parent, []).append(_name)


def write_rig(path: Path) -> Path:
    """The rig as a BVH file (hierarchy, and one motion frame as Axis exports it)."""
    lines: list[str] = ["HIERARCHY"]

    def emit(name: str, depth: int) -> None:
        pad = "  " * depth
        lines.append(f"{pad}{'ROOT' if depth == 0 else 'JOINT'} {name}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {' '.join(map(str, OFFSETS[name]))}")
        lines.append(f"{pad}  {CHANNELS}")
        for child in CHILDREN.get(name, []):
            emit(child, depth + 1)
        if name not in CHILDREN:
            lines.extend([f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET 0 5 0", pad + "  }"])
        lines.append(pad + "}")

    emit("Hips", 0)
    lines += ["MOTION", "Frames: 1", "Frame Time: 0.016667", frame_values(0)]
    path.write_text("\n".join(lines) + "\n")
    return path


def frame_values(frame: int) -> str:
    """Channel values in hierarchy (depth-first) order: rest pose, hips raised by frame % 10 cm."""
    order: list[str] = []
    stack = ["Hips"]
    while stack:
        name = stack.pop()
        order.append(name)
        stack.extend(reversed(CHILDREN.get(name, [])))
    values = []
    for name in order:
        x, y, z = OFFSETS[name]
        if name == "Hips":
            y += frame % 10
        values += [x, y, z, 0, 0, 0]
    return " ".join(f"{v:.2f}" for v in values)


class NeuronServer:
    """Accepts clients on 127.0.0.1:``port`` (0 = any free) and broadcasts frames to all."""

    def __init__(self, port: int = 0, rate: float = 100.0, avatar: int = 0) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen()
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.period, self.avatar = 1.0 / rate, avatar
        self.clients: list[socket.socket] = []
        self.extra = Outbox()                 # raw bytes to send before the next frame
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        frame = 0
        while not self._stop.is_set():
            try:
                self.clients.append(self.listener.accept()[0])
            except socket.timeout:
                pass
            data = b"".join(self.extra.take()) + f"{self.avatar} Avatar00 {frame_values(frame)} ||".encode()
            for c in list(self.clients):
                try:
                    c.sendall(data)
                except OSError:
                    self.clients.remove(c)
            frame += 1
            self._stop.wait(self.period)

    def stop(self) -> None:
        """The killed Axis: every connection closes and nothing listens."""
        self._stop.set()
        self._thread.join()
        for c in self.clients:
            c.close()
        self.listener.close()
