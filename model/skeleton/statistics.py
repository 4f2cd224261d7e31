"""Per-window kinematic statistics: a richer description of a window than the 22 descriptors.

The descriptors are made to be cited in explanations (each has a plain-language band); these
statistics are made to be counted on. They summarise the heading-invariant, size-normalised local
representation (``features.prepare`` version 2) of one window:

- every joint's local position: mean and spread over the window (where the limbs are held);
- every joint's speed and acceleration: mean, spread and peak speed, mean acceleration
  (how much and how abruptly each limb moves);
- the root: mean and spread of its velocity in the body frame, horizontal speed, the pelvis's
  height and its spread (walking pace, bounce, crouch).

Baseline (a) reads them beside the descriptors (``train/baselines.py``). Explanations never cite
them: they have no bands and no words.
"""
from __future__ import annotations

import numpy as np

from bodytalk.capture.layouts import UNIFIED_JOINTS
from bodytalk.model.skeleton.features import WindowInput, prepare

FRAMES = 60
_AXES = "xyz"
NAMES: tuple[str, ...] = (
    *(f"{j}_{stat}_{a}" for j in UNIFIED_JOINTS for stat in ("mean", "std") for a in _AXES),
    *(f"{j}_{stat}" for j in UNIFIED_JOINTS for stat in ("speed_mean", "speed_std", "speed_max", "acc_mean")),
    *(f"root_v{a}_{stat}" for stat in ("mean", "std") for a in _AXES),
    "root_hspeed_mean", "pelvis_height_mean", "pelvis_height_std",
)


def compute(w: WindowInput) -> np.ndarray:
    """``[len(NAMES)]`` float32 for one window (raises ``InsufficientData`` as ``prepare`` does)."""
    x = prepare(w, FRAMES, version=2).astype(np.float64)             # [T, 17, 14]
    dt = (len(w.joints) - 1) / w.fps / (FRAMES - 1)
    local, vel = x[..., 0:3], x[..., 3:6]
    speed = np.linalg.norm(vel, axis=-1)                              # [T, 17]
    acc = np.linalg.norm(np.gradient(vel, dt, axis=0), axis=-1)       # [T, 17]
    root, height = x[:, 0, 9:12], x[:, 0, 12]                         # [T, 3], [T]
    per_joint = np.concatenate([local.mean(0), local.std(0)], axis=1)  # [17, 6]: mean xyz, std xyz
    motion = np.stack([speed.mean(0), speed.std(0), speed.max(0), acc.mean(0)], axis=1)   # [17, 4]
    out = np.concatenate([per_joint.ravel(), motion.ravel(), root.mean(0), root.std(0),
                          [np.linalg.norm(root[:, [0, 2]], axis=1).mean(), height.mean(), height.std()]])
    return out.astype(np.float32)
