"""Window -> encoder input: body-centred, facing-normalised joint features (numpy, no torch).

The encoder should see how a body moves, not where it stands or which way it faces, so each
window is expressed relative to the pelvis and rotated about Y so the body faces -z in its first
valid frame. The pelvis's own horizontal velocity is kept as a feature (walking speed matters for
emotion). Low-confidence joints keep their values and carry their confidence as a channel: the
encoder learns to discount them, nothing is silently zeroed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bodytalk.capture.layouts import U, UNIFIED_JOINTS

NUM_JOINTS = len(UNIFIED_JOINTS)
CHANNELS = 10  # position (3), velocity (3), pelvis velocity (3), confidence (1)
MIN_VALID_SHARE = 0.5  # a window needs half its frames with a confident pelvis, hips and shoulders
# A padded window (a stretch shorter than the window, reflected in time: capture.windowing) needs this
# much real motion: about one step or one gesture stroke. Below it the reflection would mostly repeat
# a pose, and speed, jerk and rhythm would describe the padding, not the body. (The shortest Bandai
# ds1 clips, 20-31 frames at 30 fps, are above it.)
MIN_REAL_SECONDS = 0.5
# Plausibility limits (README "Limits"): a window outside them is refused before any numeric step,
# whether it came from the bus or a file. Coordinates are metres from the sensor; a room-scale rig
# is tens of metres across. The frame rates of real sensors lie between 1 and 1000 Hz. Windows
# longer than MAX_WINDOW_SECONDS (the model reads 2 s) or MAX_FRAMES are refused, which bounds the
# memory one window can take.
MAX_COORDINATE_M = 100.0
MIN_FPS, MAX_FPS = 1.0, 1000.0
MAX_WINDOW_SECONDS = 20.0
MAX_FRAMES = 8192
_CORE = [U[j] for j in ("pelvis", "l_hip", "r_hip", "l_shoulder", "r_shoulder")]


class InsufficientData(ValueError):
    """The window cannot be read: wrong shape, all missing, too few valid frames."""


@dataclass(frozen=True)
class WindowInput:
    """One window of the unified joint set, as the model takes it."""
    joints: np.ndarray       # [T, 17, 3] metres, canonical space
    confidence: np.ndarray   # [T, 17] in [0, 1]
    fps: float = 30.0
    layout: str = "unified"  # source layout id (selects the layout embedding)
    real_frames: int | None = None  # padded window: its frames of real motion (None: all T)

    def check(self) -> None:
        j, c = self.joints, self.confidence
        if j.ndim != 3 or j.shape[1:] != (NUM_JOINTS, 3):
            raise InsufficientData(f"joints must be [T, {NUM_JOINTS}, 3] (unified joint set), got {j.shape}")
        if c.shape != j.shape[:2]:
            raise InsufficientData(f"confidence must be [T, {NUM_JOINTS}], got {c.shape}")
        check_limits(j, self.fps)
        n = self.real_frames
        if n is not None and n < min(MIN_REAL_SECONDS * self.fps, len(j)):
            raise InsufficientData(f"only {n} frames ({n / self.fps:.2f} s) of real motion in a padded window; "
                                   f"reading one needs at least {MIN_REAL_SECONDS} s")
        valid = _valid_frames(j, c)
        if valid.mean() < MIN_VALID_SHARE:
            raise InsufficientData(
                f"only {int(valid.sum())} of {len(valid)} frames have a confident pelvis, hips and shoulders")


def unified_arrays(joints: np.ndarray, confidence: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """``joints [T, 17, 3]`` and ``confidence [T, 17]`` of a unified window as float64, after checking
    their shapes and the frame rate (a ValueError that says what to do otherwise)."""
    x = np.asarray(joints, dtype=np.float64)
    c = np.asarray(confidence, dtype=np.float64)
    if x.ndim != 3 or x.shape[1:] != (len(UNIFIED_JOINTS), 3) or c.shape != x.shape[:2]:
        raise ValueError(f"expected unified joints [T, {len(UNIFIED_JOINTS)}, 3] and confidence [T, "
                         f"{len(UNIFIED_JOINTS)}], got {x.shape} and {c.shape}; map the layout with "
                         "Layout.to_unified first")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return x, c


def check_limits(joints: np.ndarray, fps: float) -> None:
    """InsufficientData when a window is outside the plausibility limits above."""
    if not MIN_FPS <= fps <= MAX_FPS:
        raise InsufficientData(f"implausible frame rate {fps:.4g} Hz (limits {MIN_FPS:g}-{MAX_FPS:g} Hz)")
    if not 2 <= len(joints) <= MAX_FRAMES or (len(joints) - 1) / fps > MAX_WINDOW_SECONDS:
        raise InsufficientData(f"window of {len(joints)} frames at {fps:.4g} Hz is outside the limits "
                               f"(2-{MAX_FRAMES} frames, at most {MAX_WINDOW_SECONDS:g} s)")
    with np.errstate(invalid="ignore"):
        far = np.nanmax(np.abs(np.where(np.isfinite(joints), joints, np.nan)), initial=0.0)
    if far > MAX_COORDINATE_M:
        raise InsufficientData(f"implausible coordinate {far:.3g} m (limit +-{MAX_COORDINATE_M:g} m)")


def _valid_frames(joints: np.ndarray, conf: np.ndarray) -> np.ndarray:
    finite = np.isfinite(joints).all(axis=(1, 2))
    return finite & (np.nan_to_num(conf[:, _CORE]) >= 0.5).all(axis=1)


def resample(x: np.ndarray, length: int) -> np.ndarray:
    """Linear resampling along axis 0 to ``length`` frames."""
    if len(x) == length:
        return x
    src = np.linspace(0, len(x) - 1, length)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, len(x) - 1)
    a = (src - lo).reshape(-1, *([1] * (x.ndim - 1)))
    return (1 - a) * x[lo] + a * x[hi]


def facing_yaw(joints: np.ndarray) -> float:
    """Yaw (radians about Y, 0 = +z) of the facing direction of one frame ``[17, 3]``.

    Facing = (left - right) x up in the canonical right-handed Y-up frame (a person facing a
    Kinect at the origin faces -z).
    """
    across = (joints[U["l_hip"]] - joints[U["r_hip"]]) + (joints[U["l_shoulder"]] - joints[U["r_shoulder"]])
    forward = np.cross(across, np.array([0.0, 1.0, 0.0]))
    return float(np.arctan2(forward[0], forward[2]))


def prepare(w: WindowInput, length: int = 60) -> np.ndarray:
    """``WindowInput`` -> features ``[length, 17, CHANNELS]`` float32 at ``length`` frames."""
    w.check()
    joints = np.nan_to_num(w.joints.astype(np.float64))
    conf = np.clip(np.nan_to_num(w.confidence.astype(np.float64)), 0, 1)
    valid = _valid_frames(w.joints, w.confidence)
    first = int(np.argmax(valid))
    yaw = facing_yaw(joints[first])
    c, s = np.cos(np.pi - yaw), np.sin(np.pi - yaw)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])  # rotates the facing direction onto -z
    duration = (len(joints) - 1) / w.fps
    joints = resample(joints, length) @ rot.T
    conf = resample(conf, length)
    dt = duration / max(length - 1, 1) if duration > 0 else 1 / 30
    # Root-relative: absolute height depends on where the sensor stands, not on the body.
    rel = joints - joints[:, U["pelvis"]][:, None, :]
    vel = np.gradient(joints, dt, axis=0) if length > 1 else np.zeros_like(joints)
    root_vel = np.repeat(vel[:, U["pelvis"]][:, None, :], NUM_JOINTS, axis=1)
    feats = np.concatenate([rel, vel, root_vel, conf[..., None]], axis=-1)
    return feats.astype(np.float32)
