"""Joint angles of the synthetic bodies: from the planned motion (``Track``) to channels.

Everything here is a pure function of the track and the bodies' traits, vectorised over
``[N frames, B bodies]``, so poses do not depend on how frames are chunked. Legs are placed by
two-link inverse kinematics on a gait pattern whose stance foot stays still on the floor; arms
swing against the legs, blend into gestures, and carry the style's jolts and tremor.
Micro-gestures (touching the face, folding arms, ...) plug in as ``Overlay``s: scripted channel
offsets over a time span, added before forward kinematics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from bodytalk.capture.sources.synthetic.body import CHANNELS, C, SIDES, Proportions
from bodytalk.capture.sources.synthetic.styles import ACTIVITIES, GESTURES, P

DUTY = 0.6          # fraction of a gait cycle a foot is on the floor
CLEARANCE = 0.08    # swing-foot lift per metre of stride
ARM = ("sh_abd", "sh_flex", "sh_rot", "elbow", "wrist")  # arm channels a gesture sets
# Gesture poses: target arm channels (ARM order), an oscillation (amplitude per ARM channel),
# and its frequency in Hz at tempo 1.
_GESTURE_POSES = {
    "raising_arms": ((0.3, 2.6, 0.0, 0.25, 0.0), (0.0, 0.12, 0.0, 0.1, 0.0), 1.6),
    "waving": ((1.35, 0.3, 1.4, 1.55, 0.0), (0.0, 0.0, 0.0, 0.45, 0.1), 2.2),
    "pointing": ((0.2, 1.45, 0.0, 0.05, 0.1), (0.0, 0.05, 0.0, 0.1, 0.0), 1.5),
}
_G_TARGET = np.array([_GESTURE_POSES[g][0] for g in GESTURES])  # [K, 5]
_G_OSC = np.array([_GESTURE_POSES[g][1] for g in GESTURES])     # [K, 5]
_G_FREQ = np.array([_GESTURE_POSES[g][2] for g in GESTURES])    # [K]
_SCALED = np.array([1.0, 1.0, 0.0, 0.0, 0.0])  # gesture_size scales elevation, not forearm pose
_REACH = np.array([2.6, 2.9, np.inf, np.inf, np.inf])  # joint limits the scaling may not pass


@dataclass
class Track:
    """Planned motion, ``[N, B]`` per field unless noted."""
    t: np.ndarray          # [N] seconds
    phase: np.ndarray      # gait cycles (left heel strike at integers)
    stride: np.ndarray     # stride length, m
    walk: np.ndarray       # 0..1 how much the body is walking (arm swing, pelvis motion)
    style: np.ndarray      # [N, B, P] blended style parameters
    yaw: np.ndarray        # heading, rad (0 = facing +z)
    pos: np.ndarray        # [N, B, 2] floor point under the body (x, z), m
    plant: np.ndarray      # [N, B, 2 feet, 2] where each foot last touched down (x, z), m
    activity: np.ndarray   # int index into ACTIVITIES
    seg_time: np.ndarray   # seconds since the activity started
    seg_len: np.ndarray    # planned length of the activity, s
    side: np.ndarray       # gesturing arm: +1 left, -1 right, 0 both
    emotion: np.ndarray    # int index into the style names


@dataclass(frozen=True)
class Traits:
    """Per-body constants, ``[B, ...]``: sizes, pace and the frequencies/phases of idle motion."""
    props: tuple[Proportions, ...]
    pace: np.ndarray       # [B] personal tempo factor
    tremor: np.ndarray     # [B, 4, 2, 2] (signal, component, freq Hz / phase)
    jolts: np.ndarray      # [B, 4, 3, 2] (signal, component, freq Hz / phase)
    idle: np.ndarray       # [B, 4, 2] breathing, sway, look-around x2 (freq Hz / phase)

    @classmethod
    def draw(cls, rngs: list[np.random.Generator], fps: float) -> "Traits":
        props, pace, tremor, jolts, idle = [], [], [], [], []
        top = min(11.0, 0.4 * fps)  # keep the tremor below Nyquist at low frame rates
        for rng in rngs:
            props.append(Proportions.draw(rng))
            pace.append(rng.uniform(0.92, 1.08))
            phase = lambda *shape: rng.uniform(0, 2 * np.pi, shape)  # noqa: E731
            tremor.append(np.stack([rng.uniform(0.65 * top, top, (4, 2)), phase(4, 2)], -1))
            jolts.append(np.stack([rng.uniform(0.6, 2.2, (4, 3)), phase(4, 3)], -1))
            idle.append(np.stack([rng.uniform((0.2, 0.1, 0.12, 0.25), (0.3, 0.18, 0.2, 0.4)), phase(4)], -1))
        return cls(tuple(props), np.array(pace), np.array(tremor), np.array(jolts), np.array(idle))

    def size(self, name: str) -> np.ndarray:
        """A ``Proportions`` property for every body, ``[B]``."""
        return np.array([getattr(p, name) for p in self.props])


@dataclass(frozen=True)
class Overlay:
    """Scripted channel offsets over ``[start, end)`` seconds (the micro-gesture hook).
    ``offsets(tau)`` gets the time since ``start`` for the frames in the span, ``[n]``, and
    returns ``{channel: [n] radians}`` added to the generated pose."""
    start: float
    end: float
    offsets: Callable[[np.ndarray], dict[str, np.ndarray]]

    def __post_init__(self) -> None:
        if not self.end > self.start:
            raise ValueError(f"overlay ends ({self.end}) before it starts ({self.start})")


def _warp(x: np.ndarray, jerk: np.ndarray) -> np.ndarray:
    """Sharpen a signal in [-1, 1] (ends fixed) as ``jerk`` goes 0 -> 1: up to 2.5x steeper
    through zero and flatter near the ends, i.e. quick moves between held poses."""
    a = 1.5 * jerk
    return x * (1 + a) / (1 + a * np.abs(x))


def _waves(spec: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Mean of sinusoids: ``spec [B, S, K, 2]`` (freq, phase), ``t [N]`` -> ``[N, B, S]``."""
    arg = 2 * np.pi * spec[..., 0] * t[:, None, None, None] + spec[..., 1]
    return np.sin(arg).mean(-1)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _softmin(x: np.ndarray, k: float) -> np.ndarray:
    """Smooth minimum over the last axis (within ``k * log(n)`` of the true one, never above)."""
    m = x.min(-1)
    return m - k * np.log(np.exp(-(x - m[..., None]) / k).sum(-1))


def legs(tr: Track, traits: Traits) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Pelvis position in the heading frame ``[N, B, 3]`` and leg channels ``[N, B, 2]`` (l, r)."""
    s = tr.style
    w, S = tr.walk, tr.stride
    u = (tr.phase[..., None] + (0.0, 0.5)) % 1.0                       # [N, B, 2]
    us = np.clip((u - DUTY) / (1 - DUTY), 0.0, 1.0)                     # swing progress, 0 in stance
    x = np.array([s_ for _, _, s_ in SIDES])                              # [2] +1 left, -1 right
    hw = traits.size("hip_width")[:, None]
    # Stance: the foot stays where it was planted (world), seen from the moving heading frame.
    # Swing: from there to the next landing point ahead, which straight walking puts at
    # (x * hw, S * (DUTY / 2 + 1 - u)); both ends are still on the floor, so the foot leaves
    # and lands with zero velocity.
    c, s_ = np.cos(tr.yaw)[..., None], np.sin(tr.yaw)[..., None]
    d = tr.plant - tr.pos[..., None, :]
    start = np.stack([c * d[..., 0] - s_ * d[..., 1], s_ * d[..., 0] + c * d[..., 1]], -1)
    Sx = S[..., None]
    end = np.stack([np.broadcast_to(x * hw, u.shape), Sx * (DUTY / 2 + 1 - u)], -1)
    foot = start + _smoothstep(us)[..., None] * (end - start)          # [N, B, 2, 2] (x, z)
    lift = CLEARANCE * Sx * np.sin(np.pi * us) ** 2

    thigh, shin, ankle = traits.size("thigh"), traits.size("shin"), traits.size("ankle_height")
    above = traits.size("pelvis_above_hips")
    L = thigh + shin
    b = s[..., P["bounce"]] * w
    half = DUTY / 2 * S
    idle = traits.idle[:, 1]
    sway = (0.02 * w * np.cos(2 * np.pi * (tr.phase - DUTY / 2))
            + (1 - w) * 0.012 * np.sin(2 * np.pi * idle[:, 0] * tr.t[:, None] + idle[:, 1]))
    # Pelvis height: the highest that reaches both feet in straight walking, bobbing by the
    # style's bounce (peaks at mid-stance), then softly capped so the legs reach where the
    # feet really are (turns, starts and stops): no knee snapping straight.
    base = np.minimum(0.985 * L - b, np.sqrt(np.maximum((0.995 * L) ** 2 - half**2, 0.0)) + b)
    hip_y = ankle + base - s[..., P["crouch"]] + b * np.cos(4 * np.pi * (tr.phase - DUTY / 2))
    level = np.stack([foot[..., 0] - sway[..., None] - x * hw, foot[..., 1]], -1)  # hip -> foot
    reach = 0.999 * L[:, None]
    cap = ankle[:, None] + lift + np.sqrt(np.maximum(reach**2 - (level**2).sum(-1), (0.8 * reach) ** 2))
    hip_y = _softmin(np.concatenate([hip_y[..., None], cap], -1), 0.01)

    # Hip joint -> ankle target, [N, B, 2, 3].
    v = np.stack([level[..., 0], ankle[:, None] + lift - hip_y[..., None], level[..., 1]], -1)
    l1, l2 = thigh[:, None], shin[:, None]
    D = np.clip(np.linalg.norm(v, axis=-1), np.abs(l1 - l2) + 1e-3, 0.9999 * (l1 + l2))
    beta = np.arccos(np.clip((l1**2 + D**2 - l2**2) / (2 * l1 * D), -1, 1))   # thigh vs hip->ankle
    kappa = np.arccos(np.clip((l1**2 + l2**2 - D**2) / (2 * l1 * l2), -1, 1))  # inner knee angle
    r = np.hypot(v[..., 0], v[..., 1])
    channels = {"hip_abd": x * np.arctan2(v[..., 0], -v[..., 1]),
                "hip_flex": np.arctan2(v[..., 2], r) + beta, "knee": np.pi - kappa}
    root = np.stack([sway, hip_y + above, np.zeros_like(sway)], -1)
    return root, channels


def _arms(tr: Track, par: Callable[[str], np.ndarray], tremor: np.ndarray,
          jolt: np.ndarray) -> np.ndarray:
    """Arm channels ``[N, B, 2 sides, 5]`` (ARM order): swing against the same-side leg, blend
    into the gesture, then add the style's jolts and tremor."""
    w, jerk = tr.walk, par("jerk")
    swing = (par("arm_swing") * w * _warp(np.cos(2 * np.pi * tr.phase), jerk))[..., None] * (-1.0, 1.0)
    base = np.stack(np.broadcast_arrays(
        par("abduction")[..., None], 0.05 + swing, -par("hands_inward")[..., None],
        par("elbow")[..., None] + 0.25 * (swing + (par("arm_swing") * w)[..., None]),  # bent more in front
        np.full_like(swing, 0.1)), -1)
    gesturing = tr.activity >= ACTIVITIES.index(GESTURES[0])
    k = np.where(gesturing, tr.activity - ACTIVITIES.index(GESTURES[0]), 0)          # [N, B]
    size, tempo = par("gesture_size")[..., None], par("tempo")
    rise = 0.8 / tempo  # s to raise or lower the arm
    env = _smoothstep(tr.seg_time / rise) * _smoothstep((tr.seg_len - tr.seg_time) / rise) * gesturing
    osc = _warp(np.sin(2 * np.pi * _G_FREQ[k] * tempo * tr.seg_time), jerk)
    gesture = _G_TARGET[k][..., None, :] + osc[..., None, None] * (_G_OSC[k] * size)[..., None, :]
    gesture = np.where(_SCALED > 0, np.minimum(base + size[..., None] * (gesture - base), _REACH), gesture)
    mix = (np.stack([tr.side >= 0, tr.side <= 0], -1) * env[..., None])[..., None]  # [N, B, 2, 1]
    arm = (1 - mix) * base + mix * gesture
    arm[..., ARM.index("sh_flex")] += jolt[..., :2]
    arm[..., ARM.index("elbow")] += 0.8 * jolt[..., 2:] + tremor[..., :2]
    arm[..., ARM.index("wrist")] += 1.5 * tremor[..., 2:]
    arm[..., ARM.index("sh_abd")] += 0.5 * tremor[..., 1::-1]
    arm[..., ARM.index("elbow")] = np.clip(arm[..., ARM.index("elbow")], 0.0, 2.6)
    return arm


def channels(tr: Track, traits: Traits) -> tuple[np.ndarray, np.ndarray]:
    """Pelvis position in the heading frame ``[N, B, 3]`` and channels ``[N, B, C]``."""
    par = lambda name: tr.style[..., P[name]]  # noqa: E731
    ch = np.zeros(tr.walk.shape + (len(CHANNELS),))

    def put(name: str, value: np.ndarray) -> None:
        ch[..., C[name]] = value

    tremor = _waves(traits.tremor, tr.t) * par("tremor")[..., None]                    # [N, B, 4]
    jolt = _warp(np.clip(_waves(traits.jolts, tr.t), -1, 1), 1.0) * par("agitation")[..., None]
    idle = _waves(traits.idle[:, :, None], tr.t)                                       # [N, B, 4]
    twist = tr.stride / 1.4 * np.cos(2 * np.pi * tr.phase)
    put("spine_twist", -0.1 * twist)                     # the pelvis turns with the forward leg,
    put("chest_twist", 0.2 * twist + 0.3 * jolt[..., 2])  # the chest against it
    put("spine_pitch", par("trunk_lean") / 2 + 0.03 * tr.walk)
    put("chest_pitch", par("trunk_lean") / 2 + par("hunch") + 0.012 * idle[..., 0])  # breathing
    put("neck_pitch", par("head_pitch") / 2)
    put("head_pitch", par("head_pitch") / 2 + 0.5 * tremor[..., 2])
    put("head_yaw", par("look_around") * (idle[..., 2] + idle[..., 3]) / 2 + 0.5 * jolt[..., 3])
    arm = _arms(tr, par, tremor, jolt)
    root, leg = legs(tr, traits)
    for i, (p, _, _) in enumerate(SIDES):
        for j, name in enumerate(ARM):
            put(f"{p}_{name}", arm[..., i, j])
        for name, value in leg.items():
            put(f"{p}_{name}", value[..., i])
        put(f"{p}_clav_elev", par("shrug"))
        put(f"{p}_clav_prot", par("protraction"))
    return root, ch


def apply_overlays(ch: np.ndarray, t: np.ndarray, overlays: list[list[Overlay]]) -> None:
    """Add each body's overlays to ``ch [N, B, C]`` in place over the frames ``t [N]`` they span."""
    for b, body in enumerate(overlays):
        for ov in body:
            inside = (t >= ov.start) & (t < ov.end)
            if inside.any():
                for name, val in ov.offsets(t[inside] - ov.start).items():
                    ch[inside, b, C[name]] += val
