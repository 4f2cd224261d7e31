"""Synthetic micro-gestures (MGs): brief, small, often repeated movements performed by the
synthetic bodies on top of their ordinary motion, labelled with their time spans.

Each MG is a performance: arm poses reached and left again (touching the face twice, folding the
arms), trunk offsets (shrug, lean, twist) or a small oscillation (rubbing hands, fidgeting,
swaying), 0.5-3 s long with drawn timing, size and side. They are joint-angle channel offsets
added by one ``Overlay`` per body (``SyntheticMotion.add_overlay``); arm poses are targets, so the
offset is the target minus the body's own resting channels (measured over the last chunk).

Bodies perform MGs while standing: after each chunk ``MGPerformer.plan`` draws the MGs that
start in the next chunk for every standing body, about ``rate`` MGs per second of standing
(Poisson, at least ``MIN_GAP`` apart), each inside the standing segment and away from emotion
changes (one that does not fit is dropped, and the wait drawn again after the next chunk).
Everything comes from a generator seeded by ``(seed, body)``, so the same configuration always
performs the same MGs. The names match ``bodytalk.model.skeleton.microgestures`` (capture does not import
the model; a test keeps them equal).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bodytalk.capture.sources.synthetic.motion import MotionConfig, SyntheticMotion
from bodytalk.capture.sources.synthetic.pose import ARM, Overlay, Track, Traits, channels
from bodytalk.capture.sources.synthetic.body import C
from bodytalk.capture.sources.synthetic.styles import ACTIVITIES

MIN_GAP = 1.5          # s between one MG's end and the next one's start (they stay separate events)
LABEL_HORIZON = 10.0   # s: a frame's labels list the MGs that ended at most this long ago
_STANDING = ACTIVITIES.index("standing")
_SETTLE = 1.5          # s after an emotion change before an MG starts (the style blends meanwhile)
_MARGIN = 0.4          # s kept free before a standing segment ends (walking eases in)
_JITTER = 0.05         # rad, standard deviation of the drawn pose targets
# Arm targets, ARM order without the wrist (sh_abd, sh_flex, sh_rot, elbow): the wrist lands at
# the face, the top of the head, the neck, across the chest, on the hip, or in front of the belly.
_POSES = {
    "touch_face": (-0.9, 1.14, -1.3, 2.29), "cover_face": (-0.55, 1.23, -0.98, 2.3),
    "touch_head": (-0.69, 2.4, -1.04, 2.24), "touch_neck": (-0.11, 0.67, -0.98, 2.59),
    "fold_arms": (-0.2, 0.5, -1.7, 1.9), "hands_on_hips": (0.67, -0.53, -0.89, 1.64),
    "rub_hands": (0.06, 0.24, -0.63, 1.79), "cross_hands": (0.1, 0.07, -0.75, 1.5),
}
_BOTH_ARMS = ("cover_face", "fold_arms", "rub_hands", "cross_hands")
_TRUNK = {   # channel offsets at full envelope, (low, high) per channel, sign drawn for turn_away
    "shrug": {"l_clav_elev": (0.25, 0.4), "r_clav_elev": (0.25, 0.4)},   # arms kept hanging (below)
    "lean_forward": {"spine_pitch": (0.2, 0.3), "chest_pitch": (0.03, 0.1)},
    "lean_back": {"spine_pitch": (-0.28, -0.18), "chest_pitch": (-0.08, -0.03)},
    "turn_away": {"spine_twist": (0.22, 0.32), "chest_twist": (0.22, 0.32), "head_yaw": (0.2, 0.4)},
}
MG_NAMES: tuple[str, ...] = ("fold_arms", "hands_on_hips", "touch_face", "cover_face", "touch_head",
                             "touch_neck", "rub_hands", "cross_hands", "shrug", "lean_forward", "lean_back",
                             "sway", "fidget", "turn_away")
_REPEATED = ("touch_face", "touch_head", "touch_neck", "shrug")   # often done twice or three times


@dataclass(frozen=True)
class Performance:
    """One planned MG of one body: absolute times, repetitions, and its channel offsets."""
    name: str
    t_start: float
    t_end: float
    count: int
    offsets: Callable[[np.ndarray], dict[str, np.ndarray]]   # absolute times [n] -> {channel: [n]}

    def label(self) -> dict:
        return {"name": self.name, "t_start": round(self.t_start, 4), "t_end": round(self.t_end, 4),
                "count": self.count}


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _pulses(rng: np.random.Generator, count: int, reach: tuple[float, float], hold: tuple[float, float],
            longest: float = 3.0) -> tuple[Callable[[np.ndarray], np.ndarray], float, int]:
    """An envelope ``env(tau) in [0, 1]`` of ``count`` moves to a pose and back (smoothstep in and
    out, held between), with drawn timing; its duration; and the count that fit in ``longest`` s."""
    spans, t = [], 0.0
    for _ in range(count):
        r_in, h, r_out = rng.uniform(*reach), rng.uniform(*hold), rng.uniform(*reach)
        if spans and t + r_in + h + r_out > longest:
            break
        spans.append((t, r_in, h, r_out))
        t += r_in + h + r_out + rng.uniform(0.15, 0.45)       # pause, hand away, before the next
    end = spans[-1][0] + sum(spans[-1][1:])

    def env(tau: np.ndarray) -> np.ndarray:
        out = np.zeros_like(tau)
        for t0, r_in, h, r_out in spans:
            rise = _smoothstep((tau - t0) / r_in)
            fall = _smoothstep((t0 + r_in + h + r_out - tau) / r_out)
            out = np.maximum(out, np.minimum(rise, fall))
        return out
    return env, end, len(spans)


def _const(value: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda tau: np.full_like(tau, value)


def _plus(f: Callable[[np.ndarray], np.ndarray], g: Callable[[np.ndarray], np.ndarray]) -> Callable:
    return lambda tau: f(tau) + g(tau)


def _ramped(rng: np.random.Generator, length: tuple[float, float]) -> tuple[Callable, float]:
    """A 0.3 s fade in and out over a drawn length (for oscillations)."""
    end = rng.uniform(*length)
    return (lambda tau: _smoothstep(tau / 0.3) * _smoothstep((end - tau) / 0.3)), end


def perform(name: str, rng: np.random.Generator, start: float, rest: np.ndarray) -> Performance:
    """Draw one performance of ``name`` starting at ``start`` s; ``rest [C]`` are the body's own
    channels while standing (arm targets are reached from there)."""
    side = ("l", "r")[int(rng.integers(2))]
    offsets: dict[str, Callable[[np.ndarray], np.ndarray]] = {}   # channel -> f(tau), before the envelope
    count = 1
    if name in _POSES:
        count = int(rng.choice((1, 2, 3), p=(0.5, 0.35, 0.15))) if name in _REPEATED else 1
        env, end, count = _pulses(rng, count, (0.25, 0.4), (0.3, 0.7) if name in _REPEATED else (0.8, 1.8))
        target = np.array(_POSES[name]) + np.clip(rng.normal(0, _JITTER, 4), -2 * _JITTER, 2 * _JITTER)
        for p in ("l", "r") if name in _BOTH_ARMS else (side,):
            # From the rest pose to the target, the clavicle's own turn undone (a style's raised or
            # rolled shoulders would carry the arm elsewhere): elevation adds to abduction,
            # protraction to the arm's inward turn.
            undo = {"sh_abd": -rest[C[f"{p}_clav_elev"]], "sh_rot": rest[C[f"{p}_clav_prot"]]}
            for a, value in zip(ARM, target):
                offsets[f"{p}_{a}"] = _const(value + undo.get(a, 0.0) - rest[C[f"{p}_{a}"]])
        if name == "rub_hands":   # hands slide against each other: the arms swing in opposite phase
            amp, hz = rng.uniform(0.04, 0.08), rng.uniform(2.0, 3.5)
            offsets["l_sh_flex"] = _plus(offsets["l_sh_flex"], lambda tau: amp * np.sin(2 * np.pi * hz * tau))
            offsets["r_sh_flex"] = _plus(offsets["r_sh_flex"], lambda tau: -amp * np.sin(2 * np.pi * hz * tau))
    elif name in _TRUNK:
        count = int(rng.choice((1, 2), p=(0.6, 0.4))) if name in _REPEATED else 1
        env, end, count = _pulses(rng, count, (0.2, 0.35) if name == "shrug" else (0.4, 0.6),
                                  (0.15, 0.4) if name == "shrug" else (0.5, 1.4))
        sign = float(rng.choice((-1.0, 1.0))) if name == "turn_away" else 1.0
        for ch, (lo, hi) in _TRUNK[name].items():
            value = sign * rng.uniform(lo, hi)
            offsets[ch] = _const(value)
            if name == "shrug":   # the clavicle carries the arm: turn it back so the arm still hangs
                offsets[ch.replace("clav_elev", "sh_abd")] = _const(-value)
    elif name == "sway":      # rocking the trunk back and forth about the pelvis
        env, end = _ramped(rng, (2.0, 3.0))
        amp, hz, phase = rng.uniform(0.05, 0.09), rng.uniform(0.8, 1.2), rng.uniform(0, 2 * np.pi)
        offsets["spine_pitch"] = lambda tau: amp * np.sin(2 * np.pi * hz * tau + phase)
    elif name == "fidget":    # tapping a hand on the thigh, or bouncing a heel
        env, end = _ramped(rng, (1.5, 2.5))
        hz = rng.uniform(2.5, 4.0)
        if rng.uniform() < 0.5:
            amp = rng.uniform(0.12, 0.2)
            offsets[f"{side}_elbow"] = lambda tau: amp * (1 - np.cos(2 * np.pi * hz * tau))
        else:
            amp = rng.uniform(0.1, 0.16)
            offsets[f"{side}_knee"] = lambda tau: 2 * amp * (1 - np.cos(2 * np.pi * hz * tau))
            offsets[f"{side}_hip_flex"] = lambda tau: amp * (1 - np.cos(2 * np.pi * hz * tau))
    else:
        raise ValueError(f"unknown micro-gesture {name!r}; known: {', '.join(MG_NAMES)}")

    def at(t: np.ndarray) -> dict[str, np.ndarray]:
        tau = t - start
        e = env(tau)
        return {ch: e * f(tau) for ch, f in offsets.items()}
    return Performance(name, start, start + end, count, at)


def check(names: Sequence[str], rate: float) -> None:
    """Raise ValueError, naming what is known, for unknown MG names or a rate that is not > 0."""
    unknown = [n for n in names if n not in MG_NAMES]
    if unknown or not names:
        raise ValueError(f"unknown micro-gesture(s) {', '.join(unknown) or '(none)'}; "
                         f"known: {', '.join(MG_NAMES)} (or all)")
    if not rate > 0:
        raise ValueError(f"mg_rate must be > 0 micro-gestures per second, got {rate}")


class MGPerformer:
    """Plans and performs MGs on every body of a ``SyntheticMotion`` (see the module notes)."""

    def __init__(self, motion: SyntheticMotion, names: Sequence[str], rate: float) -> None:
        check(names, rate)
        self.cfg: MotionConfig = motion.cfg
        self.traits: Traits = motion.traits
        self.names, self.rate = tuple(names), rate
        bodies = len(motion.bodies)
        # Own generator streams, apart from the motion's; the first second measures the rest pose.
        self.rngs = [np.random.default_rng((self.cfg.seed, b, 0x36)) for b in range(bodies)]
        self.next_start: list[float | None] = [1.0 + float(r.exponential(1 / rate)) for r in self.rngs]
        self.planned: list[list[Performance]] = [[] for _ in range(bodies)]
        for b in range(bodies):
            motion.add_overlay(b, Overlay(0.0, math.inf, self._offsets(b)))

    def _offsets(self, body: int) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
        def at(t: np.ndarray) -> dict[str, np.ndarray]:
            out: dict[str, np.ndarray] = {}
            for p in self.planned[body]:
                inside = (t >= p.t_start) & (t < p.t_end)
                if inside.any():
                    for ch, v in p.offsets(t[inside]).items():
                        out.setdefault(ch, np.zeros_like(t))[inside] += v
            return out
        return at

    def plan(self, track: Track) -> None:
        """After a chunk (``track`` of ``SyntheticMotion.advance``): plan the next chunk's MGs."""
        t_next = float(track.t[-1]) + 1.0 / self.cfg.fps
        horizon = t_next + len(track.t) / self.cfg.fps
        standing = track.activity == _STANDING                                   # [n, B]
        rest = channels(track, self.traits)[1]                                   # [n, B, C] without MGs
        if self.cfg.emotions:                                                    # the emotion never changes
            settled, next_switch = -math.inf, math.inf
        else:
            last_switch = math.floor(t_next / self.cfg.hold) * self.cfg.hold
            settled, next_switch = last_switch + _SETTLE, last_switch + self.cfg.hold
        for b, rng in enumerate(self.rngs):
            self.planned[b] = [p for p in self.planned[b] if p.t_end > t_next - LABEL_HORIZON]
            if not standing[-1, b]:     # busy: the clock restarts when the body stands again
                self.next_start[b] = None
                continue
            seg_end = float(track.t[-1] - track.seg_time[-1, b] + track.seg_len[-1, b])
            until = min(next_switch, math.inf if self.cfg.activities == ("standing",) else seg_end - _MARGIN)
            resting = rest[standing[:, b], b].mean(axis=0)
            floor = max(t_next, settled)
            if self.next_start[b] is None or self.next_start[b] < floor:   # waits are memoryless:
                self.next_start[b] = floor + float(rng.exponential(1 / self.rate))   # draw from now
            while self.next_start[b] < horizon:
                start = self.next_start[b]
                p = perform(self.names[int(rng.integers(len(self.names)))], rng, start, resting)
                if p.t_end > until:                        # does not fit before the body moves on:
                    self.next_start[b] = None              # draw again after the next chunk
                    break
                self.planned[b].append(p)
                self.next_start[b] = p.t_end + MIN_GAP + float(rng.exponential(1 / self.rate))

    def labels(self, body: int, t: float) -> list[dict]:
        """The MGs of ``body`` begun by ``t`` and ended at most ``LABEL_HORIZON`` s before it."""
        return [p.label() for p in self.planned[body] if p.t_start <= t and p.t_end > t - LABEL_HORIZON]
