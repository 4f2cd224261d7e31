"""``xsens://:PORT`` -- Xsens MVN (Analyze/Animate) network streamer, pose datagrams ``MXTP02``.

MVN pushes UDP datagrams to this machine (Network Streamer: protocol UDP, "Position +
Quaternion" data, Z-up; default port 9763). Each datagram is a 24-byte big-endian header::

    6s  "MXTP02"   I sample counter   B datagram counter (bit 7: last of the sample)
    B   items      I time code        B character id   B body segments  B props
    B   finger segments               H reserved       H payload size

then ``items`` 32-byte segments ``>I 3f 4f``: segment id (1..23 body, higher ids props and
fingers), position in centimetres, orientation quaternion w, x, y, z. Positions are segment
origins, i.e. joint positions, so no kinematics is needed; orientations are not used.

A sample may span several datagrams; segments are gathered per character until the datagram
flagged "last" arrives, then one frame with that character (body id = character id) is
yielded. Body segments the sample lacks get confidence 0. Other message types (Euler poses,
joint angles, centre of mass) are counted as malformed for this source: set the streamer to
"Position + Quaternion".
"""
from __future__ import annotations

import struct

import numpy as np

from bodytalk.capture.layouts_mocap import XSENS
from bodytalk.capture.source import Frame
from bodytalk.capture.sources.live import LiveSource, Malformed, UdpSource, make_frame

DEFAULT_PORT = 9763
HEADER = struct.Struct(">6sIBBIBBBBHH")          # 24 bytes
SEGMENT = np.dtype([("id", ">u4"), ("pos", ">f4", 3), ("quat", ">f4", 4)])  # 32 bytes
POSE_QUATERNION = b"MXTP02"
LAST_DATAGRAM = 0x80
BODY_SEGMENTS = len(XSENS.joints)               # ids 1..23


class XsensSource(UdpSource):
    scheme = "xsens"
    help = ("Xsens MVN network streamer (UDP, 'Position + Quaternion', Z-up); listens on PORT "
            f"(default {DEFAULT_PORT}); one body per MVN character; " + UdpSource.UDP_OPTIONS + "; " + LiveSource.LINK_OPTIONS)
    example = "xsens://:9763"
    default_port = DEFAULT_PORT

    def setup(self) -> None:
        super().setup()
        self.layout, self.fps = XSENS, self.option("fps", 60.0, float)  # MVN streams 60-240 Hz
        # character id -> (sample counter, joints [23, 3] cm, seen [23] bool) being gathered
        self._pending: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}

    def decode(self, packet: bytes) -> Frame | None:
        if len(packet) < HEADER.size:
            raise Malformed("short header")
        (magic, sample, datagram, items, _timecode, character, _body, _props, _fingers,
         _reserved, _size) = HEADER.unpack_from(packet)
        if magic[:4] != b"MXTP":
            raise Malformed("not MXTP")
        if magic != POSE_QUATERNION:
            raise Malformed(f"message type {magic[4:].decode('ascii', 'replace')} (want 02)")
        if len(packet) != HEADER.size + items * SEGMENT.itemsize:
            raise Malformed("length does not match item count")
        segments = np.frombuffer(packet, SEGMENT, count=items, offset=HEADER.size)

        if character not in self._pending or self._pending[character][0] != sample:
            self._pending[character] = (sample, np.zeros((BODY_SEGMENTS, 3), np.float32),
                                        np.zeros(BODY_SEGMENTS, bool))
        _, joints, seen = self._pending[character]
        body = segments[(segments["id"] >= 1) & (segments["id"] <= BODY_SEGMENTS)]
        joints[body["id"] - 1] = body["pos"]
        seen[body["id"] - 1] = True
        if not datagram & LAST_DATAGRAM:
            return None
        del self._pending[character]
        return make_frame(np.array([character]), self.layout.to_canonical(joints)[None],
                          seen.astype(np.float32)[None])

