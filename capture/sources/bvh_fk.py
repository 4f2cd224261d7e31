"""Forward kinematics for BVH skeletons, vectorised over all frames.

Conventions (those of the BVH writers in use, and of ``bvhio``):
- Rotation channels are intrinsic rotations in the order written: channels
  ``Zrotation Xrotation Yrotation`` give ``R = Rz @ Rx @ Ry`` (degrees, right-handed).
- A joint's local translation is its OFFSET, except that position channels *replace* the offset
  component they name. Rigs that key every joint (Bandai writes all 6 channels on all joints)
  repeat the offset in the position channels, so adding them would double every bone.
- ``global = parent_global @ (T(local translation) R)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AXES = {"X": 0, "Y": 1, "Z": 2}
CHANNELS = tuple(f"{a}{kind}" for kind in ("position", "rotation") for a in "XYZ")


@dataclass(frozen=True)
class Skeleton:
    """A BVH hierarchy flattened depth-first (every parent before its children)."""
    names: tuple[str, ...]
    parents: tuple[int, ...]              # -1 for the root
    offsets: np.ndarray                   # [J, 3] file units
    channels: tuple[tuple[str, ...], ...]  # per joint, in file order

    def __post_init__(self) -> None:
        for name, chans in zip(self.names, self.channels):
            unknown = [c for c in chans if c not in CHANNELS]
            if unknown:
                raise ValueError(f"joint {name}: unknown channel(s) {unknown}; BVH channels are "
                                 + ", ".join(CHANNELS))
        if any(p >= j for j, p in enumerate(self.parents)):
            raise ValueError("joints must be ordered parents first")

    @property
    def num_channels(self) -> int:
        return sum(map(len, self.channels))


def axis_rotations(axis: str, degrees: np.ndarray) -> np.ndarray:
    """Rotation matrices about one axis: ``[F]`` degrees -> ``[F, 3, 3]``."""
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    m = np.zeros(a.shape + (3, 3))
    i = AXES[axis]
    j, k = (i + 1) % 3, (i + 2) % 3  # X: (y, z), Y: (z, x), Z: (x, y) keeps the rotation right-handed
    m[..., i, i] = 1.0
    m[..., j, j] = c
    m[..., j, k] = -s
    m[..., k, j] = s
    m[..., k, k] = c
    return m


def local_transforms(skel: Skeleton, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``motion [F, C]`` -> local translations ``[F, J, 3]`` and rotations ``[F, J, 3, 3]``."""
    frames = motion.shape[0]
    trans = np.broadcast_to(skel.offsets, (frames,) + skel.offsets.shape).copy()
    rots = np.broadcast_to(np.eye(3), (frames, len(skel.names), 3, 3)).copy()
    col = 0
    for j, chans in enumerate(skel.channels):
        for name in chans:
            axis, kind = name[0], name[1:]
            if kind == "position":
                trans[:, j, AXES[axis]] = motion[:, col]
            else:
                rots[:, j] = rots[:, j] @ axis_rotations(axis, motion[:, col])
            col += 1
    return trans, rots


def forward_kinematics(skel: Skeleton, motion: np.ndarray) -> np.ndarray:
    """Global joint positions ``[F, J, 3]`` (file units and axes) for ``motion [F, C]``."""
    trans, rots = local_transforms(skel, motion)
    pos = np.empty_like(trans)
    glob = np.empty_like(rots)
    for j, p in enumerate(skel.parents):
        if p < 0:
            pos[:, j], glob[:, j] = trans[:, j], rots[:, j]
        else:
            pos[:, j] = pos[:, p] + np.einsum("fab,fb->fa", glob[:, p], trans[:, j])
            glob[:, j] = glob[:, p] @ rots[:, j]
    return pos


def path_length(skel: Skeleton, bone_lengths: np.ndarray, a: int, b: int) -> float:
    """Sum of bone lengths ``[J]`` (joint -> its parent) on the tree path between joints a and b."""
    def chain(j: int) -> list[int]:
        out = [j]
        while skel.parents[out[-1]] >= 0:
            out.append(skel.parents[out[-1]])
        return out
    up_a, up_b = chain(a), chain(b)
    common = next(j for j in up_a if j in up_b)
    below = up_a[:up_a.index(common)] + up_b[:up_b.index(common)]
    return float(bone_lengths[below].sum())
