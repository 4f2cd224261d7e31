"""Seeded skeleton augmentations on unified windows: ``joints [T, 17, 3]``, ``confidence [T, 17]``.

Two families, as compared in the micro-gesture paper:

- ``standard`` (SkeletonCLR / AimCLR style): ``crop`` (random temporal crop resized back to T),
  ``shear`` (random 3x3 shear), ``rotate`` (turn about Y, tilt about X/Z), ``scale``.
- ``content`` for recognition across contents (a style must not depend on which hand waves or
  which way the body turns): ``mirror`` (left/right reflection: x negated, every left joint
  swapped with its right twin), ``rotate``, ``scale``.
- ``mg`` for micro-gestures -- small, brief, often repeated movements whose identity lives in
  a few centimetres and in their rhythm, so strong shear or crop would erase them:
  ``jitter`` (subtle pose jitter: every bone turned by a smooth random rotation of ~2 degrees),
  ``mg_rotate`` (small turn and tilt), ``speed`` (temporal crop / speed change 0.8-1.25x) and
  ``repeat`` (repetition-aware: repeat or drop one cycle of the movement, cut where the pose
  returns to itself, so the rhythm and continuity are kept).

Why the rotation about Y is a *turn over the window* rather than a constant yaw: the encoder's
``features.prepare`` faces every window forward from its first frame, which undoes a constant
yaw exactly; a yaw that grows over the window (the body turning a little) survives it.

Validity: ops marked ``rigid`` keep every bone length (rotations per frame, whole-frame copies,
or interpolation between neighbouring frames, which shortens a bone by well under 1 %);
``shear`` and ``scale`` deliberately change proportions. Every op keeps shapes, adds no NaN and
keeps each frame's confidence with its pose. All randomness comes from the ``rng`` passed in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from bodytalk.capture.layouts import U, UNIFIED_JOINTS, UNIFIED_PARENTS
from bodytalk.model.skeleton.features import resample
from bodytalk.train.config import strict

Arrays = tuple[np.ndarray, np.ndarray]  # joints [T, 17, 3], confidence [T, 17]
_PARENTS = np.array(UNIFIED_PARENTS)
_BONES = np.nonzero(_PARENTS >= 0)[0]  # child joints; parents precede children in the unified order
# Each joint's mirror twin: l_* <-> r_*, the midline joints stay.
MIRROR = np.array([U[n.replace("l_", "\0").replace("r_", "l_").replace("\0", "r_")] for n in UNIFIED_JOINTS])


def rotation(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues: unit ``axis [..., 3]``, ``angle [...]`` radians -> matrices ``[..., 3, 3]``."""
    k = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    kx = np.zeros(k.shape[:-1] + (3, 3))
    kx[..., 0, 1], kx[..., 0, 2], kx[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    kx = kx - np.swapaxes(kx, -1, -2)
    a = np.asarray(angle)[..., None, None]
    return np.eye(3) + np.sin(a) * kx + (1 - np.cos(a)) * kx @ kx


def _about_pelvis(joints: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Rotate each frame about its own pelvis (``rot [T, 3, 3]`` or ``[3, 3]``)."""
    pelvis = joints[:, U["pelvis"]][:, None, :]
    rot = np.broadcast_to(rot, (len(joints), 3, 3))
    return np.einsum("tij,tkj->tki", rot, joints - pelvis) + pelvis


def _turn(joints: np.ndarray, rng: np.random.Generator, yaw_deg: float, tilt_deg: float) -> np.ndarray:
    t = len(joints)
    yaw = np.deg2rad(rng.uniform(-yaw_deg, yaw_deg)) * np.linspace(0, 1, t)   # [T] a turn
    phi = rng.uniform(0, 2 * np.pi)                                             # tilt axis in the floor
    tilt = rotation(np.array([np.cos(phi), 0.0, np.sin(phi)]), np.deg2rad(rng.uniform(-tilt_deg, tilt_deg)))
    return _about_pelvis(joints, rotation(np.array([0.0, 1.0, 0.0]), yaw) @ tilt)


def _about_centre(joints: np.ndarray, m: np.ndarray) -> np.ndarray:
    centre = joints[:, U["pelvis"]].mean(0)
    return (joints - centre) @ m.T + centre


def shear(j, c, rng, beta: float = 0.5) -> Arrays:
    m = np.eye(3) + rng.uniform(-beta, beta, (3, 3)) * (1 - np.eye(3))
    return _about_centre(j, m), c


def scale(j, c, rng, lo: float = 0.85, hi: float = 1.15) -> Arrays:
    return _about_centre(j, np.eye(3) * rng.uniform(lo, hi)), c


def rotate(j, c, rng) -> Arrays:
    return _turn(j, rng, yaw_deg=30.0, tilt_deg=10.0), c


def mg_rotate(j, c, rng) -> Arrays:
    return _turn(j, rng, yaw_deg=5.0, tilt_deg=3.0), c


def mirror(j, c, rng) -> Arrays:
    """Left/right reflection about the window's mean pelvis x: a movement made with the left hand
    becomes the same movement made with the right one (the unified frame is right-handed, so
    negating x alone would leave "l_wrist" on the body's right)."""
    out = j[:, MIRROR].copy()
    out[..., 0] = 2 * j[:, U["pelvis"], 0].mean() - out[..., 0]
    return out, c[:, MIRROR]


def crop(j, c, rng, lo: float = 0.6) -> Arrays:
    """A random ``[lo, 1]`` share of the window, stretched back to T frames."""
    t = len(j)
    n = int(round(rng.uniform(lo, 1.0) * t))
    start = int(rng.integers(0, t - n + 1))
    return resample(j[start:start + n], t), resample(c[start:start + n], t)


def jitter(j, c, rng, deg: float = 2.0, smooth: int = 9) -> Arrays:
    """Turn every bone by a small rotation that drifts smoothly over time, then re-pose the
    skeleton from the pelvis down: bone lengths are kept exactly, and the drift is slow enough
    (moving average over ``smooth`` frames) not to fake fast motion."""
    t = len(j)
    noise = rng.normal(0, 1, (t + smooth - 1, len(_BONES), 3))
    # Moving sum over `smooth` frames / sqrt(smooth): smooth, and still unit variance.
    vec = sliding_window_view(noise, smooth, axis=0).sum(-1) / np.sqrt(smooth) * np.deg2rad(deg)  # [T, B, 3]
    angle = np.linalg.norm(vec, axis=-1)                                          # [T, B]
    rot = rotation(np.where(angle[..., None] > 0, vec, [1.0, 0, 0]), angle)       # [T, B, 3, 3]
    bones = j[:, _BONES] - j[:, _PARENTS[_BONES]]                                 # [T, B, 3]
    bones = np.einsum("tbij,tbj->tbi", rot, bones)
    out = j.copy()
    for b, child in enumerate(_BONES):  # parents first, so each child hangs off its moved parent
        out[:, child] = out[:, _PARENTS[child]] + bones[:, b]
    return out, c


def _positions(j: np.ndarray, c: np.ndarray, pos: np.ndarray) -> Arrays:
    """Linear interpolation at fractional frame positions ``pos [T']``."""
    lo = np.clip(np.floor(pos).astype(int), 0, len(j) - 1)
    hi = np.minimum(lo + 1, len(j) - 1)
    a = (pos - lo)[:, None, None]
    return (1 - a) * j[lo] + a * j[hi], (1 - a[..., 0]) * c[lo] + a[..., 0] * c[hi]


def _pose_distance(j: np.ndarray) -> np.ndarray:
    """``[T, T]`` mean joint distance between root-relative poses."""
    rel = (j - j[:, U["pelvis"]][:, None, :]).reshape(len(j), -1)
    sq = (rel ** 2).sum(1)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * rel @ rel.T, 0) / j.shape[1])


def _motion_distance(j: np.ndarray) -> np.ndarray:
    """``[T, T]`` distance between frames as motion, not just pose: pose distance averaged over
    the frame and its two neighbours (i-1, i, i+1 against k-1, k, k+1), so a swing is not
    matched with the same pose swinging the other way."""
    p = np.pad(_pose_distance(j), 1, mode="edge")
    return (p[:-2, :-2] + p[1:-1, 1:-1] + p[2:, 2:]) / 3


def _loop(j: np.ndarray, rng: np.random.Generator, lags: tuple[int, int]) -> tuple[int, int]:
    """A segment ``[i, i + lag)`` whose end pose is close to its start pose (one cycle of a
    repeated movement when there is one): drawn among the 5 best candidates."""
    d = _motion_distance(j)
    cand = [(d[i, i + lag], i, lag) for lag in range(lags[0], lags[1] + 1) for i in range(len(j) - lag)]
    cand.sort()
    _, i, lag = cand[int(rng.integers(min(5, len(cand))))]
    return i, lag


def _extend(j: np.ndarray, c: np.ndarray, n: int) -> Arrays:
    """Append ``n`` frames by looping back: after the last frame comes frame k, where frames
    k-2, k-1 are most like the last two (same pose, same direction of motion)."""
    if n <= 0:
        return j, c
    if len(j) < n + 3:  # too short to loop: hold the last frame
        return np.concatenate([j, j[-1:].repeat(n, 0)]), np.concatenate([c, c[-1:].repeat(n, 0)])
    d = _pose_distance(j)
    m = np.arange(1, len(j) - n - 1)                      # candidates for k - 1
    k = int(m[np.argmin(d[-1, m] + d[-2, m - 1])]) + 1
    return np.concatenate([j, j[k:k + n]]), np.concatenate([c, c[k:k + n]])


def repeat(j, c, rng, seconds: tuple[float, float] = (0.2, 0.7), fps: float = 30.0) -> Arrays:
    """Repeat or drop one cycle; every output frame is an input frame (nothing interpolated)."""
    t = len(j)
    lags = (max(2, int(seconds[0] * fps)), min(int(seconds[1] * fps), t // 3))
    if lags[0] > lags[1]:
        return j, c  # too short a window to hold a cycle
    i, lag = _loop(j, rng, lags)
    if rng.uniform() < 0.5:   # repeat: ... i .. i+lag, i .. i+lag ... then cut back to T frames
        order = np.concatenate([np.arange(i + lag), np.arange(i, t)])
        start = int(rng.integers(0, lag + 1))
        order = order[start:start + t]
        return j[order], c[order]
    keep = np.concatenate([np.arange(i), np.arange(i + lag, t)])  # drop, then loop at the end
    return _extend(j[keep], c[keep], lag)


def speed(j, c, rng, lo: float = 0.8, hi: float = 1.25) -> Arrays:
    """Play the window ``s`` times as fast; faster needs more frames, which come from looping."""
    t = len(j)
    s = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    need = int(np.ceil(s * (t - 1))) + 1
    if need > t:
        j, c = _extend(j, c, min(need - t, t // 2))
    span = min(s * (t - 1), len(j) - 1)
    start = rng.uniform(0, len(j) - 1 - span)
    return _positions(j, c, start + np.linspace(0, span, t))


@dataclass(frozen=True)
class Op:
    fn: Callable[..., Arrays]
    rigid: bool          # keeps bone lengths
    random: bool = True  # draws from the rng (False: one fixed transform)


OPS: dict[str, Op] = {
    "crop": Op(crop, True), "shear": Op(shear, False), "rotate": Op(rotate, True), "scale": Op(scale, False),
    "speed": Op(speed, True), "repeat": Op(repeat, True), "jitter": Op(jitter, True),
    "mg_rotate": Op(mg_rotate, True), "mirror": Op(mirror, True, random=False),
}
# Temporal ops first, so spatial ones act on the final frames.
POLICIES: dict[str, tuple[str, ...]] = {
    "none": (),
    "standard": ("crop", "shear", "rotate", "scale"),
    "mg": ("speed", "repeat", "jitter", "mg_rotate"),
    "content": ("mirror", "rotate", "scale"),
}


@strict
@dataclass(frozen=True)
class AugmentConfig:
    policy: Literal["none", "standard", "mg", "content"] = "none"
    ops: tuple[str, ...] | None = None  # an explicit op list instead of the policy's
    p: float = 0.8                      # chance that each op is applied

    def __post_init__(self) -> None:
        unknown = sorted(set(self.ops or ()) - set(OPS))
        if unknown:
            raise ValueError(f"unknown augmentation(s) {unknown}; known: {', '.join(OPS)}")
        if not 0 <= self.p <= 1:
            raise ValueError(f"augment.p is a probability, got {self.p}")

    @property
    def names(self) -> tuple[str, ...]:
        return POLICIES[self.policy] if self.ops is None else self.ops


class Augmenter:
    """Applies the configured ops in order, each with probability ``p``."""

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg
        self.ops = [OPS[name] for name in cfg.names]

    def __bool__(self) -> bool:
        return bool(self.ops)

    def variants(self) -> list[tuple[float, tuple[Op, ...]]] | None:
        """When every op draws nothing at random (``mirror``): each subset of the ops with its
        probability, in the order ``__call__`` applies them, so a dataset can compute every
        variant of a window once and draw among them; None when an op is random."""
        if any(op.random for op in self.ops):
            return None
        out = []
        for mask in range(2 ** len(self.ops)):
            on = [(mask >> i) & 1 for i in range(len(self.ops))]
            prob = float(np.prod([self.cfg.p if b else 1 - self.cfg.p for b in on]))
            out.append((prob, tuple(op for op, b in zip(self.ops, on) if b)))
        return out

    def apply(self, joints: np.ndarray, conf: np.ndarray, ops: tuple[Op, ...]) -> Arrays:
        """These (non-random) ops, in order."""
        j, c = joints.astype(np.float64), conf.astype(np.float64)
        for op in ops:
            j, c = op.fn(j, c, None)
        return j.astype(np.float32), np.clip(c, 0, 1).astype(np.float32)

    def __call__(self, joints: np.ndarray, conf: np.ndarray, rng: np.random.Generator) -> Arrays:
        j, c = joints.astype(np.float64), conf.astype(np.float64)
        for op in self.ops:
            if rng.uniform() < self.cfg.p:
                j, c = op.fn(j, c, rng)
        return j.astype(np.float32), np.clip(c, 0, 1).astype(np.float32)
