"""Skeleton layouts (joint sets), the canonical space and the unified joint set.

Canonical space: metres, Y up, right-handed. Sources convert with ``Layout.to_canonical`` (scale
then rotate). Facing direction and root position are left as captured; the model normalises them.

The unified joint set (17 joints) is what windows carry and the model sees. Every layout maps
onto it with a weight matrix ``W [17, J]`` (a unified joint may be the mean of several source
joints, e.g. MediaPipe's pelvis = mean of the hips); its confidence is the minimum over the
source joints it uses, so one missing source joint marks the unified joint missing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

UNIFIED_JOINTS: tuple[str, ...] = (
    "pelvis", "spine", "thorax", "neck", "head",
    "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
    "l_hip", "l_knee", "l_ankle", "r_hip", "r_knee", "r_ankle",
)
UNIFIED_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 3, 2, 5, 6, 2, 8, 9, 0, 11, 12, 0, 14, 15)
U = {name: i for i, name in enumerate(UNIFIED_JOINTS)}  # name -> index
# Body parts for spatio-temporal tokens (model) and limb descriptors.
BODY_PARTS: dict[str, tuple[str, ...]] = {
    "torso": ("pelvis", "spine", "thorax"),
    "head": ("neck", "head"),
    "left_arm": ("l_shoulder", "l_elbow", "l_wrist"),
    "right_arm": ("r_shoulder", "r_elbow", "r_wrist"),
    "left_leg": ("l_hip", "l_knee", "l_ankle"),
    "right_leg": ("r_hip", "r_knee", "r_ankle"),
}

# Rotations into canonical axes (applied as ``p @ R.T``).
IDENTITY = np.eye(3, dtype=np.float32)
FLIP_XY = np.diag([-1.0, -1.0, 1.0]).astype(np.float32)   # x right, y down -> x left, y up (180° about Z)
Z_UP_TO_Y_UP = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float32)  # -90° about X


@dataclass(frozen=True)
class Layout:
    """A joint set as a source delivers it."""
    id: str
    joints: tuple[str, ...]
    parents: tuple[int, ...]                 # index of each joint's parent, -1 for the root
    units: str                               # source units, for documentation ("m", "mm", "cm")
    axes: str                                # source axes, for documentation
    unified: dict[str, dict[str, float]]     # unified joint -> {source joint: weight}
    scale: float = 1.0                       # source units -> metres
    rotation: np.ndarray = field(default_factory=lambda: IDENTITY)  # source -> canonical axes

    def __post_init__(self) -> None:
        if len(self.parents) != len(self.joints):
            raise ValueError(f"layout {self.id}: {len(self.joints)} joints but {len(self.parents)} parents")
        missing = set(UNIFIED_JOINTS) - set(self.unified)
        if missing:
            raise ValueError(f"layout {self.id}: no unified mapping for {sorted(missing)}")
        for uj, src in self.unified.items():
            unknown = set(src) - set(self.joints)
            if unknown:
                raise ValueError(f"layout {self.id}: {uj} maps to unknown joints {sorted(unknown)}")
            if abs(sum(src.values()) - 1.0) > 1e-6:
                raise ValueError(f"layout {self.id}: weights of {uj} do not sum to 1")

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index(self, name: str) -> int:
        return self.joints.index(name)

    @cached_property
    def weights(self) -> np.ndarray:
        """``W [17, J]``: unified = W @ source joints."""
        w = np.zeros((len(UNIFIED_JOINTS), len(self.joints)), dtype=np.float32)
        for uj, src in self.unified.items():
            for sj, weight in src.items():
                w[U[uj], self.index(sj)] = weight
        return w

    def to_canonical(self, points: np.ndarray) -> np.ndarray:
        """``[..., J, 3]`` in source units and axes -> metres, Y up, right-handed (float32)."""
        return (np.asarray(points, dtype=np.float32) * np.float32(self.scale)) @ self.rotation.T

    def to_unified(self, joints: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canonical ``joints [..., J, 3]``, ``confidence [..., J]`` -> ``[..., 17, 3]``, ``[..., 17]``."""
        w = self.weights
        uj = np.einsum("uj,...jc->...uc", w, joints).astype(np.float32)
        used = w > 0  # [17, J]
        conf = np.where(used, confidence[..., None, :], np.inf).min(axis=-1).astype(np.float32)
        return uj, conf


_REGISTRY: dict[str, Layout] = {}


def register(layout: Layout) -> Layout:
    _REGISTRY[layout.id] = layout
    return layout


def get(layout_id: str) -> Layout:
    try:
        return _REGISTRY[layout_id]
    except KeyError:
        raise KeyError(f"unknown layout {layout_id!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def known() -> list[str]:
    """Layout ids in registration order (the model's layout-embedding index)."""
    return list(_REGISTRY)


def one_to_one(pairs: dict[str, str]) -> dict[str, dict[str, float]]:
    return {uj: {sj: 1.0} for uj, sj in pairs.items()}


def mean_of(*joints: str) -> dict[str, float]:
    return {j: 1.0 / len(joints) for j in joints}


def parents_from(joints: tuple[str, ...], parent_names: dict[str, str | None]) -> tuple[int, ...]:
    return tuple(-1 if parent_names[j] is None else joints.index(parent_names[j]) for j in joints)


# The unified set itself is a layout (windows and the model use it directly).
UNIFIED = register(Layout(
    id="unified", joints=UNIFIED_JOINTS, parents=UNIFIED_PARENTS, units="m",
    axes="canonical: x left, y up, z forward", unified=one_to_one({j: j for j in UNIFIED_JOINTS})))

# The sensor and dataset layouts register themselves here on import.
from bodytalk.capture import layouts_known  # noqa: E402,F401
