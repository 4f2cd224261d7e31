"""Emotion styles of the synthetic motion generator: one row of movement parameters per style.

A ``Style`` conditions gait, posture and arm motion. The generator blends the numeric fields
over about a second when a body's emotion changes and draws activities with the style's
weights, so a new style (tired, proud, ...) is one more row in ``STYLES``. Angles are radians,
lengths metres, speeds m/s, rates Hz.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import numpy as np

# What a body does; the generator labels every frame with one of these.
ACTIVITIES: tuple[str, ...] = ("walking", "turning", "standing", "raising_arms", "waving", "pointing")
GESTURES: tuple[str, ...] = ACTIVITIES[3:]  # activities done standing with one or both arms


@dataclass(frozen=True)
class Style:
    speed: float          # walking speed, m/s (stride length = speed / cadence)
    cadence: float        # strides per second (a stride is two steps)
    arm_swing: float      # shoulder flexion amplitude while walking
    elbow: float          # resting elbow flexion
    abduction: float      # arms away from the body (negative: pressed against it)
    hands_inward: float   # upper-arm internal rotation: forearms across the body
    trunk_lean: float     # forward trunk pitch (negative: upright, chest out)
    hunch: float          # upper-spine flexion
    head_pitch: float     # neck and head flexion relative to the chest (positive: looking down)
    shrug: float          # shoulder elevation
    protraction: float    # shoulders rolled forward
    crouch: float         # pelvis lowered by bending the knees, m
    bounce: float         # vertical pelvis bob while walking, m
    jerk: float           # 0..1: sharpens arm swing and gesture onsets into abrupt moves
    agitation: float      # amplitude of abrupt arm, chest and head jolts
    tremor: float         # amplitude of a 7-11 Hz tremor of arms and head
    gesture_size: float   # scale of gesture amplitude (1 = full)
    tempo: float          # speed of gestures and turns (1 = neutral)
    look_around: float    # amplitude of head-yaw scanning
    activities: Mapping[str, float]  # relative weight of each activity when a new one is drawn

    def __post_init__(self) -> None:
        unknown = set(self.activities) - set(ACTIVITIES)
        if unknown:
            raise ValueError(f"style activities {sorted(unknown)} unknown; known: {ACTIVITIES}")
        if any(w < 0 for w in self.activities.values()) or sum(self.activities.values()) <= 0:
            raise ValueError("style activity weights must be >= 0 with a positive sum")
        for name in ("speed", "cadence", "gesture_size", "tempo"):
            if getattr(self, name) <= 0:
                raise ValueError(f"style {name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.jerk <= 1:
            raise ValueError(f"style jerk must be in [0, 1], got {self.jerk}")
        for name in ("bounce", "crouch", "agitation", "tremor", "look_around"):
            if getattr(self, name) < 0:
                raise ValueError(f"style {name} must be >= 0, got {getattr(self, name)}")
        object.__setattr__(self, "activities", MappingProxyType(dict(self.activities)))

    def vector(self) -> np.ndarray:
        """The numeric fields as ``[P]`` float64, in ``PARAMS`` order (what the generator blends)."""
        return np.array([getattr(self, name) for name in PARAMS], dtype=np.float64)

    def activity_weights(self) -> np.ndarray:
        """``[len(ACTIVITIES)]`` probabilities."""
        w = np.array([self.activities.get(a, 0.0) for a in ACTIVITIES], dtype=np.float64)
        return w / w.sum()


PARAMS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Style) if f.name != "activities")
P = {name: i for i, name in enumerate(PARAMS)}  # parameter name -> index in Style.vector()


def _acts(walking, turning, standing, raising_arms, waving, pointing) -> dict[str, float]:
    return dict(zip(ACTIVITIES, (walking, turning, standing, raising_arms, waving, pointing)))


# Values follow the body-movement emotion literature in direction (sad: slow, short strides,
# head down, collapsed chest; happy: fast, bouncy, upright, large swing; angry: fast, heavy,
# expansive, abrupt; fearful: contracted, arms close, raised shoulders, trembling, scanning)
# and are exaggerated enough that a window of movement alone tells them apart.
STYLES: dict[str, Style] = {
    "neutral": Style(
        speed=1.25, cadence=0.9, arm_swing=0.3, elbow=0.25, abduction=0.08, hands_inward=0.1,
        trunk_lean=0.03, hunch=0.0, head_pitch=0.03, shrug=0.0, protraction=0.0, crouch=0.0,
        bounce=0.012, jerk=0.0, agitation=0.0, tremor=0.0, gesture_size=1.0, tempo=1.0,
        look_around=0.15, activities=_acts(4, 1, 2, 1, 1, 1)),
    "happy": Style(
        speed=1.45, cadence=1.05, arm_swing=0.45, elbow=0.35, abduction=0.15, hands_inward=0.05,
        trunk_lean=-0.04, hunch=-0.06, head_pitch=-0.06, shrug=0.0, protraction=-0.08, crouch=0.0,
        bounce=0.045, jerk=0.0, agitation=0.0, tremor=0.0, gesture_size=1.15, tempo=1.25,
        look_around=0.2, activities=_acts(4, 1, 1, 2, 3, 1)),
    "sad": Style(
        speed=0.75, cadence=0.72, arm_swing=0.08, elbow=0.1, abduction=0.03, hands_inward=0.1,
        trunk_lean=0.12, hunch=0.15, head_pitch=0.2, shrug=-0.05, protraction=0.15, crouch=0.02,
        bounce=0.004, jerk=0.0, agitation=0.0, tremor=0.0, gesture_size=0.55, tempo=0.65,
        look_around=0.05, activities=_acts(3, 1, 4, 0.3, 0.2, 0.3)),
    "angry": Style(
        speed=1.6, cadence=1.05, arm_swing=0.45, elbow=0.7, abduction=0.3, hands_inward=0.0,
        trunk_lean=0.08, hunch=0.02, head_pitch=0.08, shrug=0.08, protraction=0.05, crouch=0.01,
        bounce=0.015, jerk=1.0, agitation=0.3, tremor=0.0, gesture_size=1.35, tempo=1.6,
        look_around=0.1, activities=_acts(5, 2, 1, 1.5, 0, 3)),
    "fearful": Style(
        speed=1.0, cadence=1.1, arm_swing=0.06, elbow=1.4, abduction=-0.05, hands_inward=0.5,
        trunk_lean=0.1, hunch=0.12, head_pitch=0.05, shrug=0.25, protraction=0.2, crouch=0.06,
        bounce=0.005, jerk=0.2, agitation=0.04, tremor=0.035, gesture_size=0.5, tempo=1.15,
        look_around=0.45, activities=_acts(2, 3, 4, 0.5, 0, 0.5)),
}
