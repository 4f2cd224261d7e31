"""Synthetic unified-skeleton motions with known speeds, angles and frequencies (for descriptor tests).

Body frame of the rest pose: x = the person's left, y = up, z = forward (metres). A motion is built
in that frame and may then be turned about Y and moved, as a real recording would be.
"""
from __future__ import annotations

import numpy as np

from bodytalk.capture.layouts import U, UNIFIED_JOINTS

FPS = 30.0
_REST = {
    "pelvis": (0.0, 0.95, 0.0), "spine": (0.0, 1.15, 0.0), "thorax": (0.0, 1.40, 0.0),
    "neck": (0.0, 1.50, 0.0), "head": (0.0, 1.62, 0.0),
    "l_shoulder": (0.18, 1.42, 0.0), "l_elbow": (0.20, 1.14, 0.0), "l_wrist": (0.21, 0.90, 0.0),
    "l_hip": (0.10, 0.92, 0.0), "l_knee": (0.10, 0.50, 0.0), "l_ankle": (0.10, 0.08, 0.0),
}
_REST.update({k.replace("l_", "r_"): (-x, y, z) for k, (x, y, z) in list(_REST.items()) if k.startswith("l_")})
REST = np.array([_REST[j] for j in UNIFIED_JOINTS])            # [17, 3]
UPPER = [U[j] for j in ("spine", "thorax", "neck", "head", "l_shoulder", "l_elbow", "l_wrist",
                        "r_shoulder", "r_elbow", "r_wrist")]   # moves with the trunk


def still(T: int = 60) -> np.ndarray:
    """``[T, 17, 3]`` rest pose held still."""
    return np.repeat(REST[None], T, axis=0).copy()


def time(T: int = 60) -> np.ndarray:
    return np.arange(T) / FPS


def rot_x(deg: float) -> np.ndarray:
    """Rotation about the person's left axis; positive tips up (+y) towards forward (+z)."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def pivot(x: np.ndarray, joints: list[int], about: int, rotation: np.ndarray) -> np.ndarray:
    """Rotate ``joints`` of every frame about joint ``about`` (returns a copy)."""
    out = x.copy()
    centre = x[:, about:about + 1]
    out[:, joints] = (x[:, joints] - centre) @ rotation.T + centre
    return out


def head_pitch(x: np.ndarray, deg: float) -> np.ndarray:
    return pivot(x, [U["head"]], U["neck"], rot_x(deg))


def trunk_lean(x: np.ndarray, deg: float) -> np.ndarray:
    return pivot(x, UPPER, U["pelvis"], rot_x(deg))


def oscillate(x: np.ndarray, joints: list[int], hz: float, amplitude: float, axis: int = 1) -> np.ndarray:
    out = x.copy()
    out[:, joints, axis] += amplitude * np.sin(2 * np.pi * hz * time(len(x)))[:, None]
    return out


def walk(x: np.ndarray, speed: float) -> np.ndarray:
    """Translate forward (+z of the body frame) at ``speed`` m/s."""
    out = x.copy()
    out[..., 2] += speed * time(len(x))[:, None]
    return out


def place(x: np.ndarray, yaw: float, offset=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Turn the whole motion about Y by ``yaw`` degrees and move it (world placement)."""
    return x @ rot_y(yaw).T + np.asarray(offset)


def confidence(x: np.ndarray, value: float = 1.0) -> np.ndarray:
    return np.full(x.shape[:2], value, dtype=np.float32)


def random_motion(rng: np.random.Generator, T: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """A random mix of the motions above, placed anywhere, with occasional low-confidence joints."""
    x = still(T)
    x = trunk_lean(x, rng.uniform(-15, 25))
    x = head_pitch(x, rng.uniform(-25, 45))
    if rng.random() < 0.5:
        x[:, [U["l_wrist"], U["r_wrist"]]] += rng.uniform(-0.1, 0.5) * np.array([[1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]])
    for joint in ("l_wrist", "r_wrist", "l_ankle", "head"):
        if rng.random() < 0.5:
            x = oscillate(x, [U[joint]], rng.uniform(0.5, 3.5), rng.uniform(0.0, 0.25), axis=int(rng.integers(3)))
    if rng.random() < 0.3:
        x = oscillate(x, [U["l_wrist"], U["r_wrist"]], rng.uniform(6, 11), rng.uniform(0.001, 0.006))
    x = oscillate(x, list(range(17)), rng.uniform(1.0, 2.5), rng.uniform(0.0, 0.06))    # bounce
    x = walk(x, rng.choice([0.0, rng.uniform(0.0, 3.0)]))
    x = place(x, rng.uniform(0, 360), rng.uniform(-3, 3, size=3) * [1, 0, 1])
    x += rng.normal(0.0, 0.002, size=x.shape)                                       # sensor noise
    c = confidence(x)
    c[rng.random(c.shape) < rng.uniform(0.0, 0.15)] = 0.3                            # dropouts
    return x.astype(np.float32), c
