"""Window -> encoder input: body-centred, facing-normalised joint features (numpy, no torch).

The encoder should see how a body moves, not where it stands or which way it faces. Two
representations, selected by the checkpoint's ``EncoderConfig.features`` (old checkpoints carry no
key and get version 1, the one they were trained on):

- version 1: the window relative to the pelvis, turned about Y *once*, so the body faces -z in its
  first valid frame; the pelvis's velocity in that frame. In a turning movement (a walk along a
  curve, a bow to the side) every joint's coordinates then change with the path, not the style.
- version 2: every frame turned by the body's own heading in that frame (heading-invariant local
  pose), the root's motion given in the body frame (forward / lateral / vertical speed), bone
  vectors, the pelvis's height above the window's lowest ankle, and all lengths divided by the
  body's size (the sum of its median bone lengths), so a tall and a short actor give the same
  pose. The turn rate itself is left out: a movement walked along a curve gives exactly the
  input of the same movement walked straight.

Low-confidence joints keep their values and carry their confidence as a channel: the
encoder learns to discount them, nothing is silently zeroed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bodytalk.capture.layouts import U, UNIFIED_JOINTS, UNIFIED_PARENTS

NUM_JOINTS = len(UNIFIED_JOINTS)
CHANNELS = 10  # version 1: position (3), velocity (3), pelvis velocity (3), confidence (1)
# version 2: local position (3), velocity (3), bone (3), root velocity in the body frame (3), pelvis
# height (1), confidence (1)
FEATURE_CHANNELS = {1: CHANNELS, 2: 14}
REFERENCE_SIZE = 3.6  # sum of the 16 unified bone lengths of a ~1.7 m adult, metres: v2 stays near metres
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


def prepare(w: WindowInput, length: int = 60, version: int = 1) -> np.ndarray:
    """``WindowInput`` -> features ``[length, 17, FEATURE_CHANNELS[version]]`` float32 at ``length`` frames."""
    if version == 2:
        return prepare_local(w, length)
    if version != 1:
        raise ValueError(f"feature version {version}: known versions are {sorted(FEATURE_CHANNELS)}")
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


def _rotate_y(v: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Turn ``v [T, ..., 3]`` about +Y by ``-yaw[T]``: a body facing ``yaw`` ends up facing +z."""
    c = np.cos(yaw).reshape((-1,) + (1,) * (v.ndim - 2))
    s = np.sin(yaw).reshape(c.shape)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([c * x - s * z, y, s * x + c * z], axis=-1)


def headings(joints: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Unwrapped facing yaw per frame ``[T]`` (``facing_yaw`` of each frame); frames without a
    confident core take the heading of the nearest valid frame."""
    across = (joints[:, U["l_hip"]] - joints[:, U["r_hip"]]) + (joints[:, U["l_shoulder"]] - joints[:, U["r_shoulder"]])
    yaw = np.arctan2(-across[:, 2], across[:, 0])   # forward = across x up = (-a_z, 0, a_x)
    idx = np.arange(len(yaw))
    good = idx[valid]
    nearest = good[np.clip(np.searchsorted(good, idx), 0, len(good) - 1)]
    earlier = good[np.clip(np.searchsorted(good, idx) - 1, 0, len(good) - 1)]
    nearest = np.where(np.abs(earlier - idx) < np.abs(nearest - idx), earlier, nearest)
    return np.unwrap(yaw[nearest])


def body_size(joints: np.ndarray, valid: np.ndarray) -> float:
    """Sum of the median bone lengths over the valid frames (pose-independent), metres."""
    parents = np.array(UNIFIED_PARENTS)
    child = np.nonzero(parents >= 0)[0]
    bones = np.linalg.norm(joints[valid][:, child] - joints[valid][:, parents[child]], axis=-1)  # [T', 16]
    return float(np.median(bones, axis=0).sum())


def _body_velocity(pelvis: np.ndarray, yaw: np.ndarray, dt: float) -> np.ndarray:
    """Root velocity in the body frame ``[T, 3]``: each step ``t -> t+1`` turned by the heading at
    its end, then the two steps around a frame averaged (``np.gradient``'s central difference). A
    body that turns as it walks steps along its own forward axis, whatever the path's curvature."""
    steps = _rotate_y(np.diff(pelvis, axis=0), yaw[1:]) / dt                          # [T-1, 3]
    return np.concatenate([steps[:1], (steps[:-1] + steps[1:]) / 2, steps[-1:]])


def prepare_local(w: WindowInput, length: int = 60) -> np.ndarray:
    """Version 2 (module doc): ``[length, 17, 14]`` float32."""
    w.check()
    valid = _valid_frames(w.joints, w.confidence)
    joints = np.nan_to_num(w.joints.astype(np.float64))
    conf = np.clip(np.nan_to_num(w.confidence.astype(np.float64)), 0, 1)
    size = body_size(joints, valid)
    scale = REFERENCE_SIZE / size if size > 1e-3 else 1.0
    duration = (len(joints) - 1) / w.fps
    yaw = resample(headings(joints, valid), length)                                   # [T]
    joints, conf = resample(joints, length) * scale, resample(conf, length)
    dt = duration / max(length - 1, 1) if duration > 0 else 1 / 30
    pelvis = joints[:, U["pelvis"]]                                                   # [T, 3]
    local = _rotate_y(joints - pelvis[:, None, :], yaw)                               # [T, 17, 3]
    grad = (lambda x: np.gradient(x, dt, axis=0)) if length > 1 else np.zeros_like
    parents = np.array([max(p, 0) for p in UNIFIED_PARENTS])
    bone = local - local[:, parents]                                                  # pelvis: 0
    root = _body_velocity(pelvis, yaw, dt) if length > 1 else np.zeros_like(pelvis)  # [T, 3] body frame
    floor = joints[:, [U["l_ankle"], U["r_ankle"]], 1].min()
    height = pelvis[:, 1] - floor                                                     # [T]
    per_body = np.concatenate([root, height[:, None]], axis=-1)                       # [T, 4]
    feats = np.concatenate([local, grad(local), bone, np.repeat(per_body[:, None], NUM_JOINTS, axis=1),
                            conf[..., None]], axis=-1)
    return feats.astype(np.float32)
