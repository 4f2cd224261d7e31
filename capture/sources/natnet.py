"""``natnet://HOST`` -- OptiTrack Motive skeletons over NatNet (UDP).

Motive (Streaming -> NatNet: on, Skeletons: on) answers a connect request on its command port
(1510) with its server info, describes the skeletons on request and streams frames of data to
the multicast group 239.255.42.99 on the data port (1511), or straight back to the client in
unicast mode. The ``natnet`` package parses the packets (its ``DataFrame``/``DataDescriptions``
follow the protocol version the server announces); the sockets, retries and counting are ours,
so a bad packet is dropped and counted instead of killing a reader thread.

Skeleton bones arrive as rigid-body poses (position, quaternion x, y, z, w). With Motive's
default "Skeleton Coordinates: Local" each pose is relative to the parent bone, so joint
positions come from forward kinematics over the bone tree of the data description;
``?coords=global`` takes them as they are. A bone's position is its joint origin (the
"LUArm" bone starts at the shoulder). Bone names map onto ``layouts_mocap.OPTITRACK`` (Motive
naming, or FBX naming via ``FBX_NAMES``); the body id is the skeleton's asset id.

Options: ``multicast=0`` (unicast: data comes back to our command socket; send keep-alives),
``group=239.255.42.99``, ``command_port=1510``, ``data_port=1511``, ``local=IP`` (interface for
the multicast join), ``coords=local|global``, ``fps=HZ`` (default 120), ``allow=IP,IP`` (senders
accepted; default: command-socket datagrams only from the server asked, multicast from any).
"""
from __future__ import annotations

import select
import socket
import struct
import time

import numpy as np

from bodytalk.capture.layouts_mocap import OPTITRACK
from bodytalk.capture.source import Frame, SourceError
from bodytalk.capture.sources.live import (DECODE_ERRORS, LinkDown, LiveSource, Malformed, allowed_senders,
                                           host_port, make_frame)

# NatNet message ids (NatNet SDK, NatNetTypes.h)
NAT_CONNECT, NAT_SERVERINFO, NAT_REQUEST_MODELDEF, NAT_MODELDEF = 0, 1, 4, 5
NAT_FRAMEOFDATA, NAT_KEEPALIVE = 7, 10
HEAD = struct.Struct("<HH")  # message id, payload bytes
KEEPALIVE_PERIOD = 1.0       # seconds between unicast keep-alives
MODELDEF_PERIOD = 1.0        # seconds between requests for a description of unknown skeletons
# Motive's "FBX" bone naming -> the Motive names of the layout.
FBX_NAMES = {
    "Hips": "Hip", "Spine": "Ab", "Spine1": "Chest", "LeftShoulder": "LShoulder",
    "LeftArm": "LUArm", "LeftForeArm": "LFArm", "LeftHand": "LHand", "RightShoulder": "RShoulder",
    "RightArm": "RUArm", "RightForeArm": "RFArm", "RightHand": "RHand", "LeftUpLeg": "LThigh",
    "LeftLeg": "LShin", "LeftFoot": "LFoot", "LeftToeBase": "LToe", "RightUpLeg": "RThigh",
    "RightLeg": "RShin", "RightFoot": "RFoot", "RightToeBase": "RToe",
}
_INDEX = {name: i for i, name in enumerate(OPTITRACK.joints)}


def request(message_id: int, text: str = "") -> bytes:
    payload = text.encode() + b"\0"
    return HEAD.pack(message_id, len(payload)) + payload


def joint_index(bone: str, skeleton: str) -> int | None:
    """Layout index of a bone named ``Skeleton1_LUArm``, ``LUArm`` or ``LeftArm``."""
    name = bone[len(skeleton) + 1:] if bone.startswith(skeleton + "_") else bone
    return _INDEX.get(FBX_NAMES.get(name, name))


def quat_matrices(q: np.ndarray) -> np.ndarray:
    """Quaternions ``[N, 4]`` (x, y, z, w) -> rotation matrices ``[N, 3, 3]``."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)


class SkeletonModel:
    """One skeleton's bone tree from the data description, ordered parents first."""

    def __init__(self, desc) -> None:
        bones = {rb.id_num: rb for rb in desc.rigid_body_descriptions}
        self.order: list[int] = []  # bone ids, every parent before its children
        pending = list(bones)
        while pending:
            ready = [b for b in pending
                     if bones[b].parent_id not in bones or bones[b].parent_id in self.order]
            if not ready:
                raise Malformed("skeleton description has a bone cycle")
            self.order += ready
            pending = [b for b in pending if b not in ready]
        self.parent = {b: bones[b].parent_id for b in bones}
        self.joint = {b: joint_index(bones[b].name or "", desc.name) for b in bones}

    def pose(self, rigid_bodies, local: bool) -> tuple[np.ndarray, np.ndarray]:
        """Bone poses -> ``joints [J, 3]`` and ``confidence [J]`` in the OPTITRACK layout."""
        poses = {rb.id_num & 0xFFFF: rb for rb in rigid_bodies}  # id = skeleton << 16 | bone
        joints = np.zeros((OPTITRACK.num_joints, 3), np.float32)
        conf = np.zeros(OPTITRACK.num_joints, np.float32)
        pos: dict[int, np.ndarray] = {}
        rot: dict[int, np.ndarray] = {}
        for b in self.order:
            rb = poses.get(b)
            if rb is None:
                continue
            p, r = np.asarray(rb.pos, np.float64), quat_matrices(np.asarray([rb.rot], np.float64))[0]
            parent = self.parent[b]
            if local and parent in pos:
                p, r = pos[parent] + rot[parent] @ p, rot[parent] @ r
            pos[b], rot[b] = p, r
            j = self.joint[b]
            if j is not None:
                joints[j] = p
                conf[j] = 0.0 if rb.tracking_valid is False else 1.0
        return joints, conf


class NatNetSource(LiveSource):
    scheme = "natnet"
    help = ("OptiTrack Motive skeletons over NatNet (UDP 1510/1511, multicast 239.255.42.99 or "
            "multicast=0 for unicast); coords=local|global; " + LiveSource.LINK_OPTIONS)
    example = "natnet://192.168.1.20?multicast=0"

    _cmd: socket.socket | None = None
    _data: socket.socket | None = None

    def setup(self) -> None:
        try:
            from natnet import DataDescriptions, DataFrame, NatNetError, ServerInfo
            from natnet.packet_buffer import PacketBuffer
        except ImportError:
            raise SourceError("natnet: needs the natnet package: pip install 'bodytalk[mocap]'") from None
        self._parsers = (PacketBuffer, ServerInfo, DataDescriptions, DataFrame)
        self._protocol_error = NatNetError
        self.host, _ = host_port(self, 0, default_host="127.0.0.1")
        self.command_port = self.option("command_port", 1510, int)
        self.data_port = self.option("data_port", 1511, int)
        self.multicast = self.option("multicast", "1") not in ("0", "false", "no")
        self.group = self.option("group", "239.255.42.99")
        self.local = self.option("local", "0.0.0.0")
        coords = self.option("coords", "local")
        if coords not in ("local", "global"):
            raise SourceError(f"natnet: coords={coords!r}: expected local or global (Motive's "
                              "Skeleton Coordinates setting)")
        self.local_coords = coords == "local"
        self.layout, self.fps = OPTITRACK, self.option("fps", 120.0, float)
        self.allow = allowed_senders(self)
        self.version = None
        self.skeletons: dict[int, SkeletonModel] = {}

    def describe(self) -> str:
        return f"natnet://{self.host}:{self.command_port}"

    def connect(self) -> None:
        self._server_ip = socket.gethostbyname(self.host)   # replies on the command socket come from it
        self._cmd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._cmd.bind(("127.0.0.1" if self.host.startswith("127.") else "", 0))
        if self.multicast:
            self._data = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._data.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # several clients
            self._data.bind(("", self.data_port))
            self._data.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                                  socket.inet_aton(self.group) + socket.inet_aton(self.local))
        self.version, self.skeletons = None, {}
        self._send(NAT_CONNECT, "Ping")
        deadline = time.monotonic() + min(self.link.timeout, 2.0)
        while self.version is None:
            left = deadline - time.monotonic()
            packet = self.receive(left) if left > 0 else None
            if packet is None:
                raise LinkDown("no answer to the connect request (is NatNet streaming on?)")
            if packet[:2] == HEAD.pack(NAT_SERVERINFO, 0)[:2]:
                try:
                    self.decode(packet)
                except (Malformed, *DECODE_ERRORS) as err:
                    raise LinkDown(f"unreadable server info ({type(err).__name__})") from None
        self._request_modeldef()

    def disconnect(self) -> None:
        for sock in (self._cmd, self._data):
            if sock is not None:
                sock.close()
        self._cmd = self._data = None

    def _request_modeldef(self) -> None:
        self._send(NAT_REQUEST_MODELDEF)
        self._modeldef_asked = time.monotonic()

    def _send(self, message_id: int, text: str = "") -> None:
        self._cmd.sendto(request(message_id, text), (self.host, self.command_port))
        self._last_send = time.monotonic()

    def receive(self, timeout: float) -> bytes | None:
        if not self.multicast and time.monotonic() - self._last_send > KEEPALIVE_PERIOD:
            self._send(NAT_KEEPALIVE)  # Motive drops unicast clients that stay silent
        socks = [s for s in (self._cmd, self._data) if s is not None]
        ready, _, _ = select.select(socks, [], [], timeout)
        if not ready:
            return None
        packet, (sender, _) = ready[0].recvfrom(65536)
        # Only Motive may feed us: the server we asked (command socket) or ?allow= senders.
        allowed = self.allow if self.allow is not None else ({self._server_ip} if ready[0] is self._cmd else None)
        if allowed is not None and sender not in allowed:
            self.counters["refused_sender"] += 1
            return None
        return packet

    def decode(self, packet: bytes) -> Frame | None:
        try:
            return self._decode(packet)
        except self._protocol_error as err:
            raise Malformed("NatNet protocol error") from err

    def _decode(self, packet: bytes) -> Frame | None:
        if len(packet) < HEAD.size:
            raise Malformed("short packet")
        message_id, _ = HEAD.unpack_from(packet)
        packet_buffer, server_info, data_descriptions, data_frame = self._parsers
        buffer = packet_buffer(packet)
        buffer.pointer = HEAD.size
        if message_id == NAT_SERVERINFO:
            self.version = server_info.read_from_buffer(buffer, self.version).nat_net_protocol_version
            return None
        if self.version is None:
            return None  # multicast from a server we have not heard from yet
        if message_id == NAT_MODELDEF:
            descs = data_descriptions.read_from_buffer(buffer, self.version)
            self.skeletons = {d.id_num: SkeletonModel(d) for d in descs.skeletons}
            return None
        if message_id != NAT_FRAMEOFDATA:
            return None
        data = data_frame.read_from_buffer(buffer, self.version)
        known = [s for s in data.skeletons or () if s.id_num in self.skeletons]
        unknown = len(data.skeletons or ()) > len(known)
        if unknown and time.monotonic() - self._modeldef_asked > MODELDEF_PERIOD:
            self._request_modeldef()  # a skeleton was added in Motive (or the answer got lost)
        poses = [self.skeletons[s.id_num].pose(s.rigid_bodies, self.local_coords) for s in known]
        joints = np.stack([p[0] for p in poses]) if poses else np.zeros((0, OPTITRACK.num_joints, 3))
        conf = np.stack([p[1] for p in poses]) if poses else np.zeros((0, OPTITRACK.num_joints))
        return make_frame(np.array([s.id_num for s in known]), self.layout.to_canonical(joints), conf)
