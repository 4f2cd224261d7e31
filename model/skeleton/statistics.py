"""Per-window kinematic statistics: a richer description of a window than the 22 descriptors.

The descriptors are made to be cited in explanations (each has a plain-language band); these
statistics are made to be counted on. They summarise the heading-invariant, size-normalised local
representation (``features.prepare`` version 2) of one window:

- every joint's local position: mean and spread over the window (where the limbs are held);
- every joint's speed and acceleration: mean, spread and peak speed, mean acceleration
  (how much and how abruptly each limb moves);
- the root: mean and spread of its velocity in the body frame, horizontal speed, the pelvis's
  height and its spread (walking pace, bounce, crouch).

Baseline (a) reads them beside the descriptors (``train/baselines.py``), and the encoder's
statistics stream (``model/statistics_head.py``) reads them from its own version-2 input.
Explanations never cite them: they have no bands and no words.
"""
from __future__ import annotations

import numpy as np
import torch

from bodytalk.capture.layouts import UNIFIED_JOINTS
from bodytalk.model.skeleton.features import WindowInput, prepare

FRAMES = 60
SECONDS = 2.0        # the window length the acceleration's time step assumes (a constant scale)
_AXES = "xyz"
NAMES: tuple[str, ...] = (
    *(f"{j}_{stat}_{a}" for j in UNIFIED_JOINTS for stat in ("mean", "std") for a in _AXES),
    *(f"{j}_{stat}" for j in UNIFIED_JOINTS for stat in ("speed_mean", "speed_std", "speed_max", "acc_mean")),
    *(f"root_v{a}_{stat}" for stat in ("mean", "std") for a in _AXES),
    "root_hspeed_mean", "pelvis_height_mean", "pelvis_height_std",
)


def summarise(x: torch.Tensor) -> torch.Tensor:
    """Version-2 encoder input ``[B, T, 17, 14]`` -> statistics ``[B, len(NAMES)]`` (same dtype).

    Channels read: local position 0:3, velocity 3:6, the root's body-frame velocity 9:12 and the
    pelvis height 12 (on the root joint's row)."""
    b, t = x.shape[:2]
    local, vel = x[..., 0:3], x[..., 3:6]
    speed = vel.norm(dim=-1)                                                    # [B, T, 17]
    acc = torch.gradient(vel, spacing=SECONDS / (t - 1), dim=1)[0].norm(dim=-1)  # [B, T, 17]
    root, height = x[:, :, 0, 9:12], x[:, :, 0, 12]                             # [B, T, 3], [B, T]
    per_joint = torch.cat([local.mean(1), local.std(1, correction=0)], -1)      # [B, 17, 6]
    motion = torch.stack([speed.mean(1), speed.std(1, correction=0), speed.amax(1), acc.mean(1)], -1)  # [B, 17, 4]
    return torch.cat([per_joint.reshape(b, -1), motion.reshape(b, -1), root.mean(1), root.std(1, correction=0),
                      root[..., [0, 2]].norm(dim=-1).mean(1, keepdim=True), height.mean(1, keepdim=True),
                      height.std(1, correction=0, keepdim=True)], -1)


def compute(w: WindowInput) -> np.ndarray:
    """``[len(NAMES)]`` float32 for one window (raises ``InsufficientData`` as ``prepare`` does)."""
    x = torch.from_numpy(prepare(w, FRAMES, version=2).astype(np.float64))[None]   # [1, T, 17, 14]
    return summarise(x)[0].numpy().astype(np.float32)
