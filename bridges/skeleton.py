"""Skeleton geometry and colours every bridge draws with: joint names and bones of a frame's
layout, the Z-up axes of ROS and Foxglove, and one colour per emotion label."""
from __future__ import annotations

import hashlib

import numpy as np

from bodytalk.capture import layouts
from bodytalk.stream import schema

# RGB in [0, 1]; a label not listed gets a colour derived from its name (stable across runs).
LABEL_COLORS = {"neutral": (0.62, 0.65, 0.70), "happy": (0.98, 0.78, 0.18), "sad": (0.26, 0.52, 0.96),
                "angry": (0.92, 0.26, 0.21), "fearful": (0.61, 0.35, 0.85), "surprised": (0.10, 0.74, 0.61),
                "disgusted": (0.45, 0.64, 0.20)}
UNKNOWN = (0.85, 0.85, 0.85)  # before the first reading


def label_color(label: str | None) -> tuple[float, float, float]:
    if label is None:
        return UNKNOWN
    if label in LABEL_COLORS:
        return LABEL_COLORS[label]
    h = hashlib.sha1(label.encode()).digest()
    return (0.3 + 0.6 * h[0] / 255, 0.3 + 0.6 * h[1] / 255, 0.3 + 0.6 * h[2] / 255)


def body_id(sensor: str, body: str) -> str:
    """The body's id outside the bus (ROS4HRI ids, TF frames ``body_<id>``, Foxglove entities):
    ``<sensor>_<body>``; '-' is not allowed in ROS names, and a name token must not start with a
    digit."""
    rid = f"{sensor}_{body}".replace("-", "_")
    return rid if not rid[0].isdigit() else "b" + rid


def joint_names(frame: schema.SkeletonFrame) -> list[str]:
    """The layout's joint names, or j0, j1, ... for a layout this install does not know."""
    layout = _layout(frame)
    n = frame.joints.shape[1]
    return list(layout.joints) if layout else [f"j{i}" for i in range(n)]


def bones(frame: schema.SkeletonFrame) -> list[tuple[int, int]]:
    """(parent, child) joint index pairs; none for an unknown layout (joints are drawn alone)."""
    layout = _layout(frame)
    return [(p, c) for c, p in enumerate(layout.parents) if p >= 0] if layout else []


def _layout(frame: schema.SkeletonFrame):
    try:
        layout = layouts.get(frame.layout)
    except KeyError:
        return None
    return layout if layout.num_joints == frame.joints.shape[1] else None


def to_z_up(joints: np.ndarray) -> np.ndarray:
    """Canonical (Y up) -> REP-103 / Foxglove (Z up): (x, y, z) -> (z, x, y), a rotation.
    ``[..., 3]`` -> ``[..., 3]``."""
    return np.asarray(joints, dtype=np.float64)[..., [2, 0, 1]]
