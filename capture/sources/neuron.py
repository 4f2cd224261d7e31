"""``neuron://HOST:PORT`` -- Noitom Axis Neuron / Axis Studio BVH data broadcast over TCP.

In Axis: Settings -> Broadcasting -> BVH, TCP, format "String", on PORT (default 7001). Each
frame is text ending in ``||``: the avatar index, the avatar name, then one value per BVH
channel of the rig, in the order of the rig's hierarchy::

    0 Avatar00 0.00 91.34 -2.11 1.2 ... -0.5 ||

The stream carries no hierarchy, so the rig comes from a BVH file exported from Axis with the
same skeleton and output settings (displacement on/off, rotation order): ``?header=rig.bvh``
(its motion frames, if any, are ignored). Joint positions follow by forward kinematics
(``bvh_fk``); the rig must be a known BVH family (Axis names joints like CMU/Mixamo rigs).
Options: ``header=PATH`` (required), ``scale=METRES_PER_UNIT`` (default 0.01: Axis streams cm),
``fps=HZ`` (default 60). Body id = avatar index.
"""
from __future__ import annotations

import re
import socket
import tempfile
from pathlib import Path

import numpy as np

from bodytalk.capture.layouts_known import bvh_layout
from bodytalk.capture.source import Frame, SourceError
from bodytalk.capture.sources.bvh import _hierarchy
from bodytalk.capture.sources.bvh_fk import Skeleton, forward_kinematics
from bodytalk.capture.sources.live import LinkDown, LiveSource, Malformed, host_port, make_frame

DEFAULT_PORT = 7001
END = b"||"
MAX_FRAME_BYTES = 1 << 20   # a 200-joint rig is ~10 kB a frame; more without "||" is garbage
_MOTION = re.compile(r"^\s*MOTION\b", re.MULTILINE)


def rig_skeleton(path: Path) -> Skeleton:
    """The hierarchy of a BVH file, whatever its motion section holds (or lacks)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        raise SourceError(f"neuron: cannot read the rig header {path}: {err.strerror}") from None
    # bvhio needs a MOTION header; an empty one keeps it from reading (or missing) the frames.
    hierarchy = _MOTION.split(text, maxsplit=1)[0].rstrip() + "\nMOTION\nFrames: 0\nFrame Time: 0.01\n"
    with tempfile.TemporaryDirectory() as tmp:
        stub = Path(tmp) / path.name
        stub.write_text(hierarchy)
        return _hierarchy(stub)


class NeuronSource(LiveSource):
    scheme = "neuron"
    help = ("Axis Neuron / Axis Studio BVH broadcast (TCP, String format); header=RIG.bvh "
            "exported from Axis with the same settings; scale=METRES_PER_UNIT (default 0.01); "
            + LiveSource.LINK_OPTIONS)
    example = "neuron://127.0.0.1:7001?header=axis_rig.bvh"

    _sock: socket.socket | None = None

    def setup(self) -> None:
        self.host, self.port = host_port(self, DEFAULT_PORT, default_host="127.0.0.1")
        header = self.option("header", None)
        if header is None:
            raise SourceError("neuron: give the rig: ?header=RIG.bvh, a BVH file exported from Axis "
                              "with the same skeleton and broadcast settings")
        self._skel = rig_skeleton(Path(header))
        scale = self.option("scale", 0.01, float)
        if not scale > 0:
            raise SourceError(f"neuron: scale={scale} must be > 0 (metres per streamed unit)")
        try:
            self.layout = bvh_layout(self._skel.names, self._skel.parents, scale)
        except ValueError as err:
            raise SourceError(f"neuron: {header}: {err}") from None
        self.fps = self.option("fps", 60.0, float)
        self._buffer = b""

    def describe(self) -> str:
        return f"neuron://{self.host}:{self.port}"

    def connect(self) -> None:
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.link.timeout)
        except OSError as err:
            raise LinkDown(err.strerror or str(err)) from None
        self._buffer = b""

    def disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def receive(self, timeout: float) -> bytes | None:
        while END not in self._buffer:
            if len(self._buffer) > MAX_FRAME_BYTES:  # handed to decode, which counts it
                packet, self._buffer = self._buffer, b""
                return packet
            self._sock.settimeout(timeout)
            try:
                chunk = self._sock.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                raise LinkDown("closed by Axis")
            self._buffer += chunk
        packet, _, self._buffer = self._buffer.partition(END)
        return packet

    def decode(self, packet: bytes) -> Frame | None:
        tokens = packet.split()
        avatar = 0
        if len(tokens) >= 2 and tokens[0].isdigit() and not _is_number(tokens[1]):
            avatar, tokens = int(tokens[0]), tokens[2:]
        if len(tokens) != self._skel.num_channels:
            raise Malformed("value count does not match the rig")
        motion = np.array(tokens, dtype=np.float64)[None]               # [1, C]
        joints = self.layout.to_canonical(forward_kinematics(self._skel, motion))  # [1, J, 3] m
        return make_frame(np.array([avatar]), joints, np.ones(joints.shape[:2], np.float32))


def _is_number(token: bytes) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
