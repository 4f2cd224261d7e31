"""Movement descriptors: interpretable features of one window of unified joints, in physical units.

``compute(joints [T,17,3] m, confidence [T,17], fps)`` -> ``Descriptors`` (name -> Descriptor with
value, unit and phrase). Explanations cite these, and the grounding check holds them to it.

Conventions:
- Input is canonical (metres, Y up, right-handed); the facing direction is derived per frame from
  the hips and shoulders (forward = left-vector x up), so every descriptor is unchanged when the
  whole motion is rotated about Y.
- A joint sample counts when its confidence is >= 0.5 and its coordinates are finite. A descriptor
  whose joints are all valid in fewer than half the frames, or that has too few samples, is NaN
  with the phrase "<label>: insufficient data" -- never a guess.
- Velocity, acceleration and jerk are central differences of positions smoothed by a 5-tap
  binomial kernel (removes sensor jitter; exact for constant-velocity motion), kept only where
  every frame the filter reads is valid. Limb speeds are relative to the pelvis (gesture, not
  travel).
- Tempo and tremor (``spectral``) need evenly spaced samples: invalid frames are bridged by linear
  interpolation, which adds no rhythm and no high-frequency energy, so a gap can only lower them.
- "Change" descriptors are the second-half mean minus the first-half mean.
Pure numpy (no torch): this runs on every window, also in light installs.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from bodytalk.capture.layouts import U, UNIFIED_JOINTS
from bodytalk.model.skeleton import spectral
from bodytalk.model.skeleton.descriptor_bands import NAMES, SPECS, phrase
from bodytalk.model.skeleton.features import unified_arrays

__all__ = ["NAMES", "FEATURE_DIM", "Descriptor", "Descriptors", "compute", "as_vector", "as_features"]

MIN_CONFIDENCE = 0.5
MIN_VALID_SHARE = 0.5        # of frames in which a descriptor's joints must all be valid
MIN_SAMPLES = 3              # per statistic (and per half for changes)
SMOOTH = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0   # binomial, ~Gaussian with sigma 1 frame
STILL_SPEED = 0.15           # m/s; a frame is still when every key joint is slower than this
# Window means above this are not human movement (a sprinter peaks near 12 m/s) but a sensor
# glitch or a forged window: such a window is refused, never labelled (README "Limits").
MAX_MEAN_SPEED = 15.0        # m/s
SPEEDS = ("speed", "activity", "hand_speed", "foot_speed", "head_speed")

P, TH, NK, HD = U["pelvis"], U["thorax"], U["neck"], U["head"]
WRISTS = [U["l_wrist"], U["r_wrist"]]
SHOULDERS = [U["l_shoulder"], U["r_shoulder"]]
ANKLES = [U["l_ankle"], U["r_ankle"]]
HIPS = [U["l_hip"], U["r_hip"]]
KEY = [P, TH, HD, *WRISTS, *ANKLES]          # joints whose motion stands for the whole body
FACING = [*HIPS, *SHOULDERS]
ALL = list(range(len(UNIFIED_JOINTS)))
NAN = math.nan


@dataclass(frozen=True)
class Descriptor:
    name: str
    value: float      # NaN = insufficient data

    @property
    def valid(self) -> bool:
        return math.isfinite(self.value)

    @property
    def unit(self) -> str:
        return SPECS[self.name].unit

    @property
    def phrase(self) -> str:          # worded on demand: most windows only need the numbers
        return phrase(self.name, self.value)


class Descriptors(Mapping[str, Descriptor]):
    """Read-only ``name -> Descriptor`` in ``NAMES`` order, plus the share of fully valid frames."""

    def __init__(self, values: Mapping[str, float], valid_share: float) -> None:
        unknown = set(values) - set(NAMES)
        if unknown:
            raise KeyError(f"unknown descriptors {sorted(unknown)}; known: {', '.join(NAMES)}")
        self._values = {n: float(values.get(n, NAN)) for n in NAMES}
        self.valid_share = valid_share

    def __getitem__(self, name: str) -> Descriptor:
        return Descriptor(name, self._values[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return "Descriptors(" + "; ".join(d.phrase for d in self.values()) + ")"

    def to_jsonable(self) -> dict[str, dict]:
        """For messages and JSON output: NaN becomes None."""
        return {n: {"value": d.value if d.valid else None, "unit": d.unit, "phrase": d.phrase}
                for n, d in self.items()}


def as_vector(descriptors: Mapping[str, Descriptor], fill: float | None = None) -> np.ndarray:
    """``[len(NAMES)]`` float32 in ``NAMES`` order; NaN for insufficient data unless ``fill`` is given."""
    v = np.array([descriptors[n].value for n in NAMES], dtype=np.float32)
    return v if fill is None else np.nan_to_num(v, nan=fill)


# Model input from the descriptors: a standardised value and a validity flag per descriptor.
FEATURE_DIM = 2 * len(NAMES)
FEATURE_CLIP = 5.0   # spreads from the neutral value; beyond that a value says nothing more


def as_features(descriptors: Mapping[str, Descriptor]) -> np.ndarray:
    """``[FEATURE_DIM]`` float32 for the projector's evidence tokens: ``(value - neutral) / scale``
    per descriptor (the bands table's typical calm value and spread, so no statistics are fitted and
    every checkpoint reads the same numbers), clipped to +-FEATURE_CLIP, then one 0/1 validity flag
    per descriptor; an insufficient-data descriptor is 0 with flag 0, never a guess."""
    v = as_vector(descriptors)
    neutral = np.array([SPECS[n].neutral for n in NAMES], dtype=np.float32)
    scale = np.array([SPECS[n].scale for n in NAMES], dtype=np.float32)
    valid = np.isfinite(v)
    z = np.clip(np.where(valid, (v - neutral) / scale, 0.0), -FEATURE_CLIP, FEATURE_CLIP)
    return np.concatenate([z, valid]).astype(np.float32)


def compute(joints: np.ndarray, confidence: np.ndarray, fps: float = 30.0) -> Descriptors:
    """Descriptors of one window: ``joints [T, 17, 3]`` metres canonical, ``confidence [T, 17]``."""
    x, c = unified_arrays(joints, confidence, fps)
    ok = (c >= MIN_CONFIDENCE) & np.isfinite(x).all(axis=-1)     # [T, 17]
    x = np.where(ok[..., None], x, 0.0)                          # invalid samples never enter a sum
    values: dict[str, float] = {}
    if len(x):
        valid = _Validity(ok)
        _kinematics(x, ok, valid, fps, values)
        _posture(x, ok, valid, values)
        _rhythm(x, ok, valid, fps, values)
    return Descriptors(values, float(ok.all(axis=1).mean()) if len(x) else 0.0)


def implausible(d: Descriptors) -> str | None:
    """Why a window's movement cannot be a person's (a mean speed above MAX_MEAN_SPEED), or None."""
    for name in SPEEDS:
        if d[name].valid and d[name].value > MAX_MEAN_SPEED:
            return f"implausible movement: mean {name} {d[name].value:.3g} m/s > {MAX_MEAN_SPEED:g} m/s"
    return None


def _norm(v: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("...i,...i->...", v, v))


class _Validity:
    """Which joint groups are valid in enough frames: each frame's valid joints as one bit mask."""

    def __init__(self, ok: np.ndarray) -> None:
        self.bits = ok.astype(np.int64) @ (1 << np.arange(ok.shape[1], dtype=np.int64))   # [T]
        self.needed = MIN_VALID_SHARE * len(ok)

    def enough(self, joints: list[int]) -> bool:
        mask = sum(1 << j for j in set(joints))
        return np.count_nonzero(self.bits & mask == mask) >= self.needed


def _mean(v: np.ndarray, m: np.ndarray) -> float:
    n = np.count_nonzero(m)
    return float(v[m].sum() / n) if n >= MIN_SAMPLES else NAN


def _change(v: np.ndarray, m: np.ndarray, frames: np.ndarray, T: int) -> float:
    """Second-half minus first-half mean of ``v [N]`` (valid ``m [N]``, frame numbers ``frames [N]``)."""
    late = frames >= T / 2
    return _mean(v, m & late) - _mean(v, m & ~late)


def _pad(left: int, right: int) -> np.ndarray:
    return np.concatenate([np.zeros(left), SMOOTH, np.zeros(right)])


@lru_cache(maxsize=64)
def _kernels(fps: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Velocity, acceleration and jerk as short kernels over positions: central differences of the
    binomial-smoothed positions (``v``, ``a``: 7 taps, output frame = window start + 3; ``j``: 9
    taps, + 4), each with the taps it actually reads (the jerk kernel's centre tap is 0). Kernels,
    not T x T matrices: memory is O(T) whatever the window length."""
    kernels = {"v": (_pad(2, 0) - _pad(0, 2)) * (fps / 2),
               "a": (_pad(2, 0) - 2 * _pad(1, 1) + _pad(0, 2)) * fps ** 2,
               "j": (_pad(4, 0) - 2 * _pad(3, 1) + 2 * _pad(1, 3) - _pad(0, 4)) * (fps ** 3 / 2)}
    return {name: (k, np.flatnonzero(np.abs(k) > 1e-9 * np.abs(k).max())) for name, k in kernels.items()}


def _apply(kernels: dict, name: str, x: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Filter ``x [T, K, C]`` -> ``[rows, K, C]`` (rows = T - taps + 1), valid ``[rows, K]`` where
    every frame read was valid (``bad [T, K]`` True where invalid)."""
    k, reads = kernels[name]
    rows = len(x) - len(k) + 1
    out = sum(k[t] * x[t:t + rows] for t in reads)
    return out, ~np.logical_or.reduce([bad[t:t + rows] for t in reads])


def _kinematics(x: np.ndarray, ok: np.ndarray, valid: _Validity, fps: float, out: dict[str, float]) -> None:
    T = len(x)
    if T < 9:                                                    # jerk reads 9 frames
        return
    filters, bad = _kernels(float(fps)), ~ok
    v, mv = _apply(filters, "v", x, bad)                         # [T-6, 17, 3], [T-6, 17]
    frames = np.arange(len(v)) + 3

    if valid.enough([P]):
        mp = mv[:, P]
        body = _norm(v[:, P, ::2])                               # pelvis, horizontal (x, z)
        a, ma = _apply(filters, "a", x[:, P:P + 1, ::2], bad[:, P:P + 1])
        out["speed"] = _mean(body, mp)
        out["acceleration"] = _mean(_norm(a[:, 0]), ma[:, 0])
        out["speed_change"] = _change(body, mp, frames, T)
    rel = _norm(v - v[:, P:P + 1])                               # [T-6, 17] speed relative to the pelvis
    mrel = mv & mv[:, P:P + 1]
    if valid.enough(ALL):
        full = mrel.all(axis=1)
        per_frame = rel[:, 1:].mean(axis=1)                      # [T-6] mean over the non-pelvis joints
        out["activity"] = _mean(per_frame, full)
        out["activity_change"] = _change(per_frame, full, frames, T)
    for name, joints in (("hand_speed", WRISTS), ("foot_speed", ANKLES), ("head_speed", [HD])):
        if valid.enough([P, *joints]):
            out[name] = _mean(rel[:, joints], mrel[:, joints])
    if valid.enough([P, *WRISTS]):
        both = mrel[:, WRISTS].all(axis=1)
        left, right = _mean(rel[:, WRISTS[0]], both), _mean(rel[:, WRISTS[1]], both)
        out["arm_asymmetry"] = (right - left) / (right + left + 0.3)   # +0.3 m/s: still arms are equal
    if valid.enough(KEY):
        jerk, mj = _apply(filters, "j", x[:, KEY], bad[:, KEY])   # [T-8, 7, 3]
        out["jerk"] = _mean(_norm(jerk), mj)
        still = _norm(v[:, KEY]).max(axis=1) < STILL_SPEED
        out["stillness"] = 100.0 * _mean(still.astype(float), mv[:, KEY].all(axis=1))


def _unit(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norm = _norm(v)
    return v / np.maximum(norm, 1e-9)[..., None], norm


def _posture(x: np.ndarray, ok: np.ndarray, valid: _Validity, out: dict[str, float]) -> None:
    T = len(x)
    frames = np.arange(T)
    left = (x[:, HIPS[0]] - x[:, HIPS[1]]) + (x[:, SHOULDERS[0]] - x[:, SHOULDERS[1]])
    left[:, 1] = 0.0
    left, width = _unit(left)                                    # [T, 3] horizontal, person's left
    forward = np.stack([-left[:, 2], left[:, 1], left[:, 0]], axis=-1)   # left x up
    mf = ok[:, FACING].all(axis=1) & (width > 0.05)              # facing known (not edge-on)
    trunk, _ = _unit(x[:, TH] - x[:, P])                         # [T, 3] trunk axis
    mt = ok[:, P] & ok[:, TH]

    if valid.enough([P, TH, *FACING]):
        lean = np.degrees(np.arctan2((trunk * forward).sum(-1), trunk[:, 1]))
        out["trunk_lean"] = _mean(lean, mt & mf)
    if valid.enough([P, TH, NK, HD, *FACING]):
        # Sagittal plane of the thorax: trunk axis and the forward direction made orthogonal to it.
        fwd_t, _ = _unit(forward - (forward * trunk).sum(-1, keepdims=True) * trunk)
        head = x[:, HD] - x[:, NK]
        pitch = np.degrees(np.arctan2((head * fwd_t).sum(-1), (head * trunk).sum(-1)))
        mp = mt & mf & ok[:, NK] & ok[:, HD]
        out["head_pitch"] = _mean(pitch, mp)
        out["head_pitch_change"] = _change(pitch, mp, frames, T)
    if valid.enough([P, TH, *WRISTS]):
        r = x[:, WRISTS] - x[:, P:P + 1]                         # [T, 2, 3]
        radial = r - (r * trunk[:, None]).sum(-1, keepdims=True) * trunk[:, None]
        spread = _norm(radial).mean(axis=1)                      # [T] wrist distance from the trunk axis
        me = mt & ok[:, WRISTS].all(axis=1)
        out["expansion"] = _mean(spread, me)
        out["expansion_change"] = _change(spread, me, frames, T)
    if valid.enough([*WRISTS, *SHOULDERS]):
        height = (x[:, WRISTS, 1] - x[:, SHOULDERS, 1]).max(axis=1)   # the higher hand
        out["arm_height"] = _mean(height, ok[:, [*WRISTS, *SHOULDERS]].all(axis=1))
    if valid.enough(ALL):
        axes = np.stack([left, forward], axis=2)                 # [T, 3, 2] body's own horizontal axes
        flat = x @ axes                                          # [T, 17, 2]
        extent = np.concatenate([flat.max(1) - flat.min(1), np.ptp(x[..., 1:2], axis=1)], axis=1)
        out["volume"] = _mean(extent.prod(axis=1), ok.all(axis=1) & mf)


def _rhythm(x: np.ndarray, ok: np.ndarray, valid: _Validity, fps: float, out: dict[str, float]) -> None:
    T = len(x)
    if T < fps or T < 8:                                         # rhythm needs at least one second
        return
    if valid.enough([P, *WRISTS, *ANKLES]):
        limbs = spectral.filled(x[:, [P, *WRISTS, *ANKLES]], ok[:, [P, *WRISTS, *ANKLES]])
        rel = (limbs[:, 1:] - limbs[:, :1]).reshape(T, -1)       # [T, 12] limbs relative to the pelvis
        s = spectral.detrended(np.concatenate([limbs[:, :1, 1], rel], axis=1))   # + pelvis height: [T, 13]
        out["tempo"], out["tempo_confidence"] = spectral.tempo(s, fps)
        bounce = np.sort(s[:, 0])                                # detrended pelvis height
        out["bounce"] = 100.0 * float(bounce[int(0.95 * (T - 1))] - bounce[int(0.05 * (T - 1))])
    if valid.enough(WRISTS) and fps / 2 > spectral.TREMOR_BAND_HZ[0]:   # the band must be below Nyquist
        out["tremor"] = 1000.0 * spectral.tremor(spectral.filled(x[:, WRISTS], ok[:, WRISTS]), fps)
