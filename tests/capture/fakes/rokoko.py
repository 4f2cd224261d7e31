"""Rokoko Studio live fake: JSON v3 datagrams with named actors."""
from __future__ import annotations

import json

from bodytalk.capture.layouts_mocap import ROKOKO_JOINTS


def scene(frame: int, actors=("Ana", "Ben")) -> bytes:
    """Bone k of every actor at (0.1 * actor index, k / 100, frame / 1000) metres, Unity axes."""
    return json.dumps({
        "version": 3, "fps": 60,
        "scene": {"timestamp": frame / 60, "props": [], "actors": [
            {"name": name, "meta": {"hasFace": False, "hasGloves": False},
             "body": {bone: {"position": {"x": 0.1 * a, "y": k / 100, "z": frame / 1000},
                             "rotation": {"x": 0, "y": 0, "z": 0, "w": 1}}
                      for k, bone in enumerate(ROKOKO_JOINTS)}}
            for a, name in enumerate(actors)]},
    }).encode()
