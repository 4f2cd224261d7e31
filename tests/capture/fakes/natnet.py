"""A loopback NatNet server (Motive stand-in), unicast: it answers the connect request with its
server info, describes one or more skeletons on request and streams frames of data (NatNet 3.1
layout, as the ``natnet`` package reads it) to every client that connected.

Skeleton bones are posed in Motive's default local coordinates: each bone's position is its
offset in the parent bone's frame; the hip carries a yaw of 90° so forward kinematics matters.
"""
from __future__ import annotations

import math
import socket
import struct
import threading

from tests.capture.fakes.outbox import Outbox

NAT_CONNECT, NAT_SERVERINFO, NAT_REQUEST_MODELDEF, NAT_MODELDEF, NAT_FRAMEOFDATA = 0, 1, 4, 5, 7
VERSION = (3, 1, 0, 0)
# (bone id, name, parent id, offset in metres): a Motive "Baseline" skeleton, parents first.
BONES = [
    (1, "Hip", 0, (0, 1.0, 0)), (2, "Ab", 1, (0, 0.1, 0)), (3, "Chest", 2, (0, 0.2, 0)),
    (4, "Neck", 3, (0, 0.25, 0)), (5, "Head", 4, (0, 0.1, 0)),
    (6, "LShoulder", 3, (0.05, 0.2, 0)), (7, "LUArm", 6, (0.12, 0, 0)), (8, "LFArm", 7, (0.28, 0, 0)),
    (9, "LHand", 8, (0.25, 0, 0)), (10, "RShoulder", 3, (-0.05, 0.2, 0)),
    (11, "RUArm", 10, (-0.12, 0, 0)), (12, "RFArm", 11, (-0.28, 0, 0)), (13, "RHand", 12, (-0.25, 0, 0)),
    (14, "LThigh", 1, (0.1, 0, 0)), (15, "LShin", 14, (0, -0.45, 0)), (16, "LFoot", 15, (0, -0.45, 0)),
    (17, "LToe", 16, (0, -0.05, 0.1)), (18, "RThigh", 1, (-0.1, 0, 0)), (19, "RShin", 18, (0, -0.45, 0)),
    (20, "RFoot", 19, (0, -0.45, 0)), (21, "RToe", 20, (0, -0.05, 0.1)),
]
HIP_YAW = (0.0, math.sin(math.pi / 4), 0.0, math.cos(math.pi / 4))  # x, y, z, w: 90° about Y


def _string(s: str) -> bytes:
    return s.encode() + b"\0"


def packet(message_id: int, payload: bytes) -> bytes:
    return struct.pack("<HH", message_id, len(payload)) + payload


def server_info() -> bytes:
    return packet(NAT_SERVERINFO, b"Motive".ljust(256, b"\0") + bytes((3, 0, 0, 0)) + bytes(VERSION))


def model_def(skeletons: dict[int, str]) -> bytes:
    out = struct.pack("<I", len(skeletons))
    for sid, name in skeletons.items():
        out += struct.pack("<I", 2) + _string(name) + struct.pack("<II", sid, len(BONES))
        for bone, bone_name, parent, offset in BONES:
            out += (_string(f"{name}_{bone_name}") + struct.pack("<II3f", bone, parent, *offset)
                    + struct.pack("<I", 0))  # no markers
    return packet(NAT_MODELDEF, out)


def frame(number: int, skeletons: dict[int, str], untracked: frozenset = frozenset()) -> bytes:
    out = struct.pack("<IIII", number, 0, 0, 0)   # frame, marker sets, unlabeled, rigid bodies
    out += struct.pack("<I", len(skeletons))
    for sid in skeletons:
        out += struct.pack("<II", sid, len(BONES))
        for bone, _, _, offset in BONES:
            pos = (offset[0] + number * 0.001, offset[1], offset[2]) if bone == 1 else offset
            rot = HIP_YAW if bone == 1 else (0.0, 0.0, 0.0, 1.0)
            valid = 0 if bone in untracked else 1
            out += struct.pack("<I3f4ffH", (sid << 16) | bone, *pos, *rot, 0.0, valid)
    out += struct.pack("<III", 0, 0, 0)            # labeled markers, force plates, devices
    out += struct.pack("<IId", 0, 0, number / 120) + struct.pack("<QQQ", 0, 0, 0) + struct.pack("<H", 0)
    return packet(NAT_FRAMEOFDATA, out)


class NatNetServer:
    """Command socket on 127.0.0.1:``port``; streams to every client that sent NAT_CONNECT."""

    def __init__(self, port: int = 0, rate: float = 120.0, skeletons: dict[int, str] | None = None,
                 untracked: frozenset = frozenset()) -> None:
        self.skeletons = skeletons or {1: "Skeleton1"}
        self.untracked = untracked
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(1.0 / rate)
        self.port = self.sock.getsockname()[1]
        self.clients: set = set()
        self.requests: list[int] = []
        self.extra = Outbox()                 # raw datagrams to send to clients next
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        number = 0
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65536)
                message_id = struct.unpack_from("<H", data)[0]
                self.requests.append(message_id)
                if message_id == NAT_CONNECT:
                    self.clients.add(addr)
                    self.sock.sendto(server_info(), addr)
                elif message_id == NAT_REQUEST_MODELDEF:
                    self.sock.sendto(model_def(self.skeletons), addr)
                continue
            except socket.timeout:
                pass
            extra = self.extra.take() if self.clients else []   # kept until someone listens
            for addr in self.clients:
                for data in extra + [frame(number, self.skeletons, self.untracked)]:
                    self.sock.sendto(data, addr)
            number += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
