"""Kinematic body of the synthetic source: Kinect V2 bone offsets from body proportions, and
forward kinematics from joint-angle channels, so bone lengths are constant by construction.

Body frame: x = the person's left, y = up, z = forward (the facing direction); the heading yaw
turns it about y. Every bone (from a joint's parent to the joint) has a rotation ``Q`` in its
parent bone's frame, and a joint is its parent plus the bone's rotated rest offset:
    G[j] = G[parent] @ Q[j],    p[j] = p[parent] + G[j] @ offset[j]
Channels on both sides are mirrored: a positive ``l_sh_abd`` and ``r_sh_abd`` both lift the arm
away from the body, so one formula drives both arms.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bodytalk.capture.layouts_known import KINECT_V2

J = {name: i for i, name in enumerate(KINECT_V2.joints)}
PARENTS = np.array(KINECT_V2.parents)
ROOT = J["SpineBase"]
SIDES = (("l", "Left", 1.0), ("r", "Right", -1.0))  # channel prefix, layout suffix, +x sign

_ARM = ("clav_elev", "clav_prot", "sh_abd", "sh_flex", "sh_rot", "elbow", "wrist")
_LEG = ("hip_abd", "hip_flex", "knee")
# Joint-angle channels (radians), each relative to the parent bone; the pelvis (root) only
# carries the heading, so hip channels are relative to the heading frame.
CHANNELS: tuple[str, ...] = (
    "spine_twist", "spine_pitch", "chest_pitch", "chest_twist", "neck_pitch", "head_pitch",
    "head_yaw", *(f"{p}_{c}" for p, _, _ in SIDES for c in _ARM + _LEG))
C = {name: i for i, name in enumerate(CHANNELS)}  # channel name -> index


@dataclass(frozen=True)
class Proportions:
    """One body's size; segment lengths are anthropometric fractions of ``height``."""
    height: float          # m
    arm: float = 1.0       # arm length factor
    leg: float = 1.0       # leg length factor
    shoulders: float = 1.0  # shoulder width factor

    def __post_init__(self) -> None:
        if not 1.0 <= self.height <= 2.5:
            raise ValueError(f"body height {self.height} m is outside 1.0-2.5 m")
        for name in ("arm", "leg", "shoulders"):
            if not 0.7 <= getattr(self, name) <= 1.3:
                raise ValueError(f"body {name} factor {getattr(self, name)} is outside 0.7-1.3")

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "Proportions":
        factor = lambda sd: float(np.clip(rng.normal(1.0, sd), 1 - 2.5 * sd, 1 + 2.5 * sd))  # noqa: E731
        return cls(height=float(rng.uniform(1.5, 1.9)), arm=factor(0.04), leg=factor(0.03),
                   shoulders=factor(0.06))

    @property
    def thigh(self) -> float:
        return 0.245 * self.height * self.leg

    @property
    def shin(self) -> float:
        return 0.246 * self.height * self.leg

    @property
    def ankle_height(self) -> float:
        return 0.039 * self.height

    @property
    def hip_width(self) -> float:
        """Half the distance between the hip joints (feet are placed under them)."""
        return 0.055 * self.height

    @property
    def pelvis_above_hips(self) -> float:
        """SpineBase sits this far above the hip joints."""
        return 0.025 * self.height

    def offsets(self) -> np.ndarray:
        """Rest offset of every joint from its parent, ``[25, 3]`` metres, body frame (arms down)."""
        h, arm = self.height, self.height * self.arm
        off = np.zeros((len(J), 3))
        off[J["SpineMid"]] = (0, 0.13 * h, 0)
        off[J["SpineShoulder"]] = (0, 0.14 * h, 0)
        off[J["Neck"]] = (0, 0.05 * h, 0)
        off[J["Head"]] = (0, 0.065 * h, 0)
        for _, side, x in SIDES:
            off[J[f"Shoulder{side}"]] = (x * 0.1 * h * self.shoulders, -0.02 * h, 0)
            off[J[f"Elbow{side}"]] = (0, -0.186 * arm, 0)
            off[J[f"Wrist{side}"]] = (0, -0.146 * arm, 0)
            off[J[f"Hand{side}"]] = (0, -0.045 * arm, 0)
            off[J[f"HandTip{side}"]] = (0, -0.05 * arm, 0)
            off[J[f"Thumb{side}"]] = (-x * 0.005 * arm, -0.03 * arm, 0.025 * arm)
            off[J[f"Hip{side}"]] = (x * self.hip_width, -self.pelvis_above_hips, 0)
            off[J[f"Knee{side}"]] = (0, -self.thigh, 0)
            off[J[f"Ankle{side}"]] = (0, -self.shin, 0)
            off[J[f"Foot{side}"]] = (0, -(self.ankle_height - 0.015 * h), 0.08 * h)
        return off


def rotation(axis: str, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` about ``axis`` ('x', 'y' or 'z') by ``angle [...]``."""
    c, s = np.cos(angle), np.sin(angle)
    R = np.zeros(np.shape(angle) + (3, 3))
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    k = 3 - i - j
    R[..., k, k] = 1.0
    R[..., i, i], R[..., i, j], R[..., j, i], R[..., j, j] = c, -s, s, c
    return R


def _bone_angles() -> np.ndarray:
    """``M [C, 25, 3]``: every bone's rotation is ``Rz(a0) @ Rx(a1) @ Ry(a2)`` with the angles
    ``a = channels @ M``, a fixed linear map (mirror signs, the foot kept level)."""
    rows = [("SpineMid", "x", "spine_pitch", 1), ("SpineMid", "y", "spine_twist", 1),
            ("SpineShoulder", "x", "chest_pitch", 1), ("SpineShoulder", "y", "chest_twist", 1),
            ("Neck", "x", "neck_pitch", 1), ("Head", "x", "head_pitch", 1), ("Head", "y", "head_yaw", 1)]
    for p, side, x in SIDES:
        rows += [(f"Shoulder{side}", "z", f"{p}_clav_elev", x), (f"Shoulder{side}", "y", f"{p}_clav_prot", -x),
                 (f"Elbow{side}", "z", f"{p}_sh_abd", x), (f"Elbow{side}", "x", f"{p}_sh_flex", -1),
                 (f"Elbow{side}", "y", f"{p}_sh_rot", x), (f"Wrist{side}", "x", f"{p}_elbow", -1),
                 (f"Hand{side}", "x", f"{p}_wrist", -1), (f"Thumb{side}", "x", f"{p}_wrist", -1),
                 (f"Knee{side}", "z", f"{p}_hip_abd", x), (f"Knee{side}", "x", f"{p}_hip_flex", -1),
                 (f"Ankle{side}", "x", f"{p}_knee", 1),
                 # The foot stays parallel to the floor: undo the sagittal thigh and shin angles.
                 (f"Foot{side}", "x", f"{p}_hip_flex", 1), (f"Foot{side}", "x", f"{p}_knee", -1)]
    M = np.zeros((len(CHANNELS), len(J), 3))
    for bone, axis, channel, sign in rows:
        M[C[channel], J[bone], "zxy".index(axis)] += sign
    return M


_M = _bone_angles().reshape(len(CHANNELS), -1)


def _levels(parents: np.ndarray) -> list[np.ndarray]:
    """Joint indices grouped by depth below the root (parents always in an earlier group)."""
    depth = np.zeros(len(parents), dtype=int)
    for _ in parents:
        depth = np.where(parents < 0, 0, depth[parents] + 1)
    return [np.nonzero(depth == d)[0] for d in range(1, depth.max() + 1)]


LEVELS = _levels(PARENTS)


def bone_rotations(ch: np.ndarray) -> np.ndarray:
    """Channels ``[..., C]`` -> bone rotations ``Q [..., 25, 3, 3]`` (the root's is identity).
    ``Rz(a) @ Rx(b) @ Ry(c)`` written out: three stacked matrix products cost far more."""
    a = (ch @ _M).reshape(ch.shape[:-1] + (len(J), 3))
    (ca, cb, cc), (sa, sb, sc) = np.moveaxis(np.cos(a), -1, 0), np.moveaxis(np.sin(a), -1, 0)
    sa_sb, ca_sb = sa * sb, ca * sb
    return np.stack([ca * cc - sa_sb * sc, -sa * cb, ca * sc + sa_sb * cc,
                     sa * cc + ca_sb * sc, ca * cb, sa * sc - ca_sb * cc,
                     -cb * sc, sb, cb * cc], -1).reshape(a.shape[:-1] + (3, 3))


def forward_kinematics(root: np.ndarray, yaw: np.ndarray, ch: np.ndarray,
                       offsets: np.ndarray) -> np.ndarray:
    """Joint positions ``[..., 25, 3]`` from the SpineBase position ``root [..., 3]``, the
    heading ``yaw [...]``, channels ``ch [..., C]`` and rest offsets ``[..., 25, 3]``."""
    G = bone_rotations(ch)                              # becomes world rotations, level by level
    G[..., ROOT, :, :] = rotation("y", yaw)
    pos = np.empty(G.shape[:-1])
    pos[..., ROOT, :] = root
    for idx in LEVELS:
        G[..., idx, :, :] = G[..., PARENTS[idx], :, :] @ G[..., idx, :, :]
        pos[..., idx, :] = pos[..., PARENTS[idx], :] + (G[..., idx, :, :] @ offsets[..., idx, :, None])[..., 0]
    return pos
