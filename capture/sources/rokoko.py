"""``rokoko://:PORT`` -- Rokoko Studio live stream, JSON v3 over UDP.

In Studio: Livestream -> Custom -> "JSON v3" (not the LZ4-compressed variant) to this machine's
address and PORT (default 14043). One datagram per frame::

    {"version": 3, "fps": 60, "scene": {"timestamp": ..., "actors": [
        {"name": "Actor1", "body": {"hip": {"position": {"x": .., "y": .., "z": ..},
                                            "rotation": {...}}, "spine": {...}, ...}}, ...]}}

Bone positions are world positions in metres in Studio's Unity axes (left-handed, Y up), so
no kinematics is needed; ``layouts_mocap.ROKOKO`` mirrors X into the canonical right-handed
frame. Each actor is a body; body ids follow actor names and stay put while Studio streams
them. Bones an actor lacks get confidence 0; finger and face data are ignored.
"""
from __future__ import annotations

import json

import numpy as np

from bodytalk.capture.layouts_mocap import ROKOKO
from bodytalk.capture.source import Frame
from bodytalk.capture.sources.live import BodyIds, LiveSource, Malformed, UdpSource, make_frame

DEFAULT_PORT = 14043
_INDEX = {name: i for i, name in enumerate(ROKOKO.joints)}


class RokokoSource(UdpSource):
    scheme = "rokoko"
    help = ("Rokoko Studio live stream (Custom, JSON v3, UDP); listens on PORT (default "
            f"{DEFAULT_PORT}); one body per actor; " + UdpSource.UDP_OPTIONS + "; " + LiveSource.LINK_OPTIONS)
    example = "rokoko://:14043"
    default_port = DEFAULT_PORT

    def setup(self) -> None:
        super().setup()
        self.layout, self.fps = ROKOKO, self.option("fps", 60.0, float)
        self._ids = BodyIds()

    def decode(self, packet: bytes) -> Frame | None:
        data = json.loads(packet)
        if not isinstance(data, dict) or "scene" not in data:
            raise Malformed("no scene (need JSON v3)")
        if int(data.get("version", 0)) < 3:
            raise Malformed("JSON version < 3")
        actors = data["scene"]["actors"]
        joints = np.zeros((len(actors), len(ROKOKO.joints), 3), np.float32)  # [B, 21, 3]
        conf = np.zeros(joints.shape[:2], np.float32)                         # [B, 21]
        for b, actor in enumerate(actors):
            for bone, pose in actor["body"].items():
                j = _INDEX.get(bone)
                if j is not None:
                    p = pose["position"]
                    joints[b, j] = (float(p["x"]), float(p["y"]), float(p["z"]))
                    conf[b, j] = 1.0
        names = [str(actor["name"]) for actor in actors]
        if len(set(names)) != len(names):
            raise Malformed("duplicate actor names")
        return make_frame(self._ids(names), self.layout.to_canonical(joints), conf)
