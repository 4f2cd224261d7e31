"""``osc://:PORT`` -- skeletons as OSC messages over UDP, one message per joint.

Each message's address matches a pattern with ``{body}`` and ``{joint}`` fields; its arguments
are ``x, y, z`` and optionally a confidence (a number in [0, 1]) or a Kinect tracking state
("Tracked", "Inferred", "NotTracked"). Options:

- ``pattern=/bodies/{body}/joints/{joint}`` (the default: KinectV2-OSC's addresses)
- ``layout=kinect_v2``: the registered layout whose joint names the ``{joint}`` field uses;
  positions are in that layout's units and axes (``Layout.to_canonical`` converts them)

A bundle is one frame. Unbundled messages are gathered until a (body, joint) repeats, which
starts the next frame (so such senders see one frame of latency). ``{body}`` may be any token
(a tracking id, a name); body ids stay put while it does. python-osc parses the packets.
Senders that go quiet while nobody is tracked (KinectV2-OSC does) show as "disconnected" until
someone steps in.
"""
from __future__ import annotations

import re

import numpy as np

from bodytalk.capture import layouts
from bodytalk.capture.source import Frame, SourceError
from bodytalk.capture.sources.live import BodyIds, LiveSource, Malformed, UdpSource, make_frame

DEFAULT_PORT = 9000
DEFAULT_PATTERN = "/bodies/{body}/joints/{joint}"
TRACKING_STATES = {"tracked": 1.0, "inferred": 0.5, "nottracked": 0.0}


def compile_pattern(pattern: str) -> re.Pattern:
    """``/a/{body}/b/{joint}`` -> a regex with named groups (every other character literal)."""
    if pattern.count("{body}") != 1 or pattern.count("{joint}") != 1:
        raise SourceError(f"osc: pattern {pattern!r} needs exactly one {{body}} and one {{joint}}")
    parts = re.split(r"(\{body\}|\{joint\})", pattern)
    return re.compile("".join(f"(?P<{p[1:-1]}>[^/]+)" if p in ("{body}", "{joint}") else re.escape(p)
                              for p in parts) + "$")


class OSCSource(UdpSource):
    scheme = "osc"
    help = ("OSC skeleton messages (UDP), one per joint: x y z [confidence|tracking state]; "
            f"options pattern={DEFAULT_PATTERN}, layout=kinect_v2; listens on PORT (default "
            f"{DEFAULT_PORT}); " + UdpSource.UDP_OPTIONS + "; " + LiveSource.LINK_OPTIONS)
    example = "osc://:9000?pattern=/bodies/{body}/joints/{joint}&layout=kinect_v2"
    default_port = DEFAULT_PORT

    def setup(self) -> None:
        try:
            from pythonosc.osc_packet import OscPacket, ParseError
        except ImportError:
            raise SourceError("osc: needs python-osc: pip install 'bodytalk[mocap]'") from None
        self._packet, self._parse_error = OscPacket, ParseError
        self._address = compile_pattern(self.option("pattern", DEFAULT_PATTERN))
        try:
            self.layout = layouts.get(self.option("layout", "kinect_v2"))
        except KeyError as err:
            raise SourceError(f"osc: {err.args[0]}") from None
        self._index = {name: i for i, name in enumerate(self.layout.joints)}
        self.fps = self.option("fps", 30.0, float)
        self._ids = BodyIds()
        self._pending: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # body -> [J, 3], [J]
        super().setup()

    def decode(self, packet: bytes) -> Frame | None:
        try:
            timed = self._packet(packet).messages
        except self._parse_error as err:
            raise Malformed("not OSC") from err
        joints = [self._joint(t.message.address, t.message.params) for t in timed]
        if len(timed) > 1 or packet.startswith(b"#bundle"):
            self._pending.clear()
            for joint in joints:
                self._add(*joint)
            return self._flush()
        (body, j, xyz, conf), = joints
        frame = None
        if body in self._pending and self._pending[body][1][j] > -1:
            frame = self._flush()
        self._add(body, j, xyz, conf)
        return frame

    def _joint(self, address: str, params: list) -> tuple[str, int, tuple, float]:
        match = self._address.match(address)
        if match is None:
            raise Malformed("address does not match the pattern")
        j = self._index.get(match["joint"])
        if j is None:
            raise Malformed("unknown joint name")
        if len(params) not in (3, 4):
            raise Malformed("need x y z [confidence]")
        xyz = tuple(float(v) for v in params[:3])
        conf = 1.0 if len(params) == 3 else params[3]
        conf = TRACKING_STATES[conf.lower()] if isinstance(conf, str) else float(conf)
        return match["body"], j, xyz, conf

    def _add(self, body: str, j: int, xyz: tuple, conf: float) -> None:
        if body not in self._pending:  # -1 marks "not received in this frame"
            self._pending[body] = (np.zeros((self.layout.num_joints, 3), np.float32),
                                   np.full(self.layout.num_joints, -1.0, np.float32))
        self._pending[body][0][j] = xyz
        self._pending[body][1][j] = conf

    def _flush(self) -> Frame:
        bodies = list(self._pending)  # an empty bundle is a frame with no bodies
        joints = np.zeros((len(bodies), self.layout.num_joints, 3), np.float32)  # [B, J, 3]
        conf = np.zeros((len(bodies), self.layout.num_joints), np.float32)       # [B, J]
        for i, body in enumerate(bodies):
            joints[i], conf[i] = self._pending[body]
        self._pending.clear()
        return make_frame(self._ids(bodies), self.layout.to_canonical(joints), np.maximum(conf, 0))
