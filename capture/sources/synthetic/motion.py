"""Procedural motion of several bodies: who does what, where, in which emotion style.

Each body walks to points in an arena, turns, stands and gestures (raising arms, waving,
pointing), drawing a new activity every few seconds with its current style's weights. Its
emotion is fixed or changes every ``hold`` seconds (at multiples of ``hold``, the label switches
at once and the movement blends into the new style over about a second). Everything is drawn
from generators seeded by ``(seed, body)``, so a configuration always yields the same motion
and adding a body leaves the others unchanged.

``SyntheticMotion.advance(n)`` plans the next ``n`` frames step by step (cheap state updates per
frame) and poses them in one vectorised pass: ``joints [n, B, 25, 3]`` in the Kinect V2 layout,
metres, Y up with the floor at y = 0, right-handed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bodytalk.capture.sources.synthetic.body import forward_kinematics, rotation
from bodytalk.capture.sources.synthetic.pose import (DUTY, Overlay, Track, Traits,
                                                     apply_overlays, channels)
from bodytalk.capture.sources.synthetic.styles import ACTIVITIES, GESTURES, P, STYLES

EMOTIONS: tuple[str, ...] = tuple(STYLES)
_TABLE = np.stack([STYLES[e].vector() for e in EMOTIONS])                   # [E, P]
_ACTIVITY_WEIGHTS = [STYLES[e].activity_weights() for e in EMOTIONS]
_WALKING, _TURNING = ACTIVITIES.index("walking"), ACTIVITIES.index("turning")
_FEET = ((0.0, 1.0), (0.5, -1.0))  # gait-phase offset and side (+1 left) of each foot
_WALK_AMOUNT = [{"walking": 1.0, "turning": 0.3}.get(a, 0.0) for a in ACTIVITIES]
_DURATION = {"walking": (3.0, 7.0), "turning": (1.2, 2.5), "standing": (2.0, 5.0)}  # s
_GESTURE_DURATION = (2.0, 4.0)
_GOAL_DISTANCE = 2.0  # m, shortest walk to a new goal
_STYLE_TAU = 0.35   # s, time constant of style blending (about 1 s to settle)
_WALK_TAU = 0.3     # s, time constant of starting and stopping
_TURN_RATE = 1.6    # rad/s, fastest turn at tempo 1
_TURN_GAIN = 3.0    # 1/s, turn rate per radian of heading error (smooth approach)
_TURN_TAU = 0.15    # s, time constant of changes of the turn rate


# Bounds of the generator (README "Limits"): more bodies than any sensor tracks, frame rates of
# real rigs. Each body costs CPU and memory per frame, so the count is refused, not grown into.
MAX_BODIES = 64
MAX_FPS = 1000.0


@dataclass(frozen=True)
class MotionConfig:
    bodies: int = 2
    fps: float = 30.0
    seed: int = 0
    hold: float = 20.0                         # seconds between emotion changes
    emotions: tuple[str, ...] | None = None    # fixed emotion per body (one name: all bodies)
    activities: tuple[str, ...] | None = None  # draw only these (("standing",): micro-gesture clips)
    # Floor area the bodies walk in (x min, x max, z min, z max), metres: in view of a sensor
    # at the origin looking along +z.
    arena: tuple[float, float, float, float] = (-2.0, 2.0, 1.5, 5.0)

    def __post_init__(self) -> None:
        if not 1 <= self.bodies <= MAX_BODIES:
            raise ValueError(f"bodies must be 1-{MAX_BODIES}, got {self.bodies}")
        if not (0 < self.fps <= MAX_FPS and self.hold > 0):
            raise ValueError(f"need 0 < fps <= {MAX_FPS:g} and hold > 0, got fps={self.fps}, hold={self.hold}")
        if self.emotions is not None:
            unknown = [e for e in self.emotions if e not in STYLES]
            if unknown:
                raise ValueError(f"unknown emotion {', '.join(unknown)}; known: {', '.join(STYLES)}")
            if len(self.emotions) not in (1, self.bodies):
                raise ValueError(f"{len(self.emotions)} emotions for {self.bodies} bodies: give one "
                                 f"name for all bodies or one per body")
        if self.activities is not None:
            unknown = [a for a in self.activities if a not in ACTIVITIES]
            if unknown or not self.activities:
                raise ValueError(f"activities {', '.join(unknown) or '(none)'} unknown; "
                                 f"known: {', '.join(ACTIVITIES)}")
            weights = _weights(self.activities)
            never = [e for e in (self.emotions or EMOTIONS) if weights[EMOTIONS.index(e)].sum() == 0]
            if never:
                raise ValueError(f"emotion {', '.join(never)} never does {', '.join(self.activities)}")
        x0, x1, z0, z1 = self.arena
        if not (x1 - x0 >= _GOAL_DISTANCE and z1 - z0 >= _GOAL_DISTANCE):
            raise ValueError(f"arena {self.arena} must be at least {_GOAL_DISTANCE} m on each side")


def _weights(activities: tuple[str, ...] | None) -> list[np.ndarray]:
    """Per emotion, the probabilities of drawing each activity (restricted to ``activities``)."""
    if activities is None:
        return _ACTIVITY_WEIGHTS
    keep = np.array([a in activities for a in ACTIVITIES])
    return [w * keep / max((w * keep).sum(), 1e-12) for w in _ACTIVITY_WEIGHTS]


class _Body:
    """One body's plan: emotion, activity segments, heading, floor position and gait phase.

    Plain floats stepped frame by frame (cheap for a handful of bodies); separate generator
    streams for emotions and activities keep every draw independent of how frames are chunked.
    Each foot is planted on the floor at heel strike (world x, z) and stays there during stance.
    """

    def __init__(self, cfg: MotionConfig, index: int, rng_emotion: np.random.Generator,
                 rng: np.random.Generator, pace: float, hip_width: float) -> None:
        self.cfg, self.rng_emotion, self.rng = cfg, rng_emotion, rng
        self.tempo, self.hip_width = pace, hip_width
        self.weights = _weights(cfg.activities)
        fixed = cfg.emotions and cfg.emotions[index % len(cfg.emotions)]
        self.emotion = EMOTIONS.index(fixed) if fixed else int(self.rng_emotion.integers(len(EMOTIONS)))
        x0, x1, z0, z1 = cfg.arena
        self.x, self.z = float(self.rng.uniform(x0, x1)), float(self.rng.uniform(z0, z1))
        self.yaw, self.phase = float(self.rng.uniform(-np.pi, np.pi)), float(self.rng.uniform())
        self.walk = 0.0
        self.activity, self.side = 0, 0
        self.seg_start = self.seg_end = 0.0  # seg_end 0: draw an activity at frame 0
        self.goal = (self.x, self.z)         # walking goal
        self.turn_goal = self.yaw
        self.yaw_rate = 0.0
        self.plant = [self._foot(side, 0.0) for _, side in _FEET]   # world (x, z) per foot
        self.foot_u = [(self.phase + offset) % 1.0 for offset, _ in _FEET]

    def switch_emotion(self) -> None:
        others = [e for e in range(len(EMOTIONS)) if e != self.emotion]
        self.emotion = others[int(self.rng_emotion.integers(len(others)))]

    def steps(self, t: np.ndarray, style: np.ndarray, emotion: np.ndarray) -> list[tuple]:
        """Advance over the frames at times ``t [n]`` with blended ``style [n, P]`` and the
        label ``emotion [n]``; one row of Track fields per frame."""
        dt = 1.0 / self.cfg.fps
        a_walk = 1 - math.exp(-dt / _WALK_TAU)
        a_rate = 1 - math.exp(-dt / _TURN_TAU)
        pace = style[:, [P["tempo"], P["cadence"], P["speed"]]] * self.tempo
        rows = []
        for tk, (tempo, cadence, full_speed), ek in zip(t.tolist(), pace.tolist(), emotion.tolist()):
            if tk >= self.seg_end:
                self._start_activity(tk, ek)
            error = self._heading_error()
            # Turn rate eases toward a rate proportional to the error: no sudden swivels.
            rate = min(max(error * _TURN_GAIN, -_TURN_RATE), _TURN_RATE) * tempo
            self.yaw_rate += (rate - self.yaw_rate) * a_rate
            self.yaw += self.yaw_rate * dt
            # Slow down while facing away from the goal, so a walker never circles around it.
            slow = min(max(math.cos(error), 0.25), 1.0)
            self.walk += (_WALK_AMOUNT[self.activity] * slow - self.walk) * a_walk
            speed = self.walk * full_speed
            stride = speed / cadence
            for i, (offset, side) in enumerate(_FEET):
                u = (self.phase + offset) % 1.0
                if u < self.foot_u[i]:  # heel strike since the last frame
                    self.plant[i] = self._foot(side, stride * (DUTY / 2 - u))
                self.foot_u[i] = u
            rows.append((self.phase, stride, self.walk, self.yaw, (self.x, self.z), tuple(self.plant),
                         self.activity, tk - self.seg_start, self.seg_end - self.seg_start, self.side))
            self.phase += cadence * dt
            self.x += speed * dt * math.sin(self.yaw)
            self.z += speed * dt * math.cos(self.yaw)
        return rows

    def _foot(self, side: float, ahead: float) -> tuple[float, float]:
        """World (x, z) of a point ``ahead`` metres in front of the hip on ``side`` (+1 left)."""
        c, s, lateral = math.cos(self.yaw), math.sin(self.yaw), side * self.hip_width
        return self.x + c * lateral + s * ahead, self.z - s * lateral + c * ahead

    def _heading_error(self) -> float:
        """Signed angle from the heading to the walking or turning goal (0 otherwise), rad."""
        if self.activity == _WALKING:
            if math.hypot(self.goal[0] - self.x, self.goal[1] - self.z) < 0.5:
                self.goal = self._walk_goal()  # reached: keep walking somewhere else
            goal = math.atan2(self.goal[0] - self.x, self.goal[1] - self.z)
        elif self.activity == _TURNING:
            goal = self.turn_goal
        else:
            return 0.0
        return (goal - self.yaw + math.pi) % (2 * math.pi) - math.pi

    def _start_activity(self, t: float, emotion: int) -> None:
        rng = self.rng
        self.activity = int(rng.choice(len(ACTIVITIES), p=self.weights[emotion]))
        act = ACTIVITIES[self.activity]
        lo, hi = _DURATION.get(act, _GESTURE_DURATION)
        self.seg_start, self.seg_end = t, t + float(rng.uniform(lo, hi))
        if act == "walking":
            self.goal = self._walk_goal()
        elif act == "turning":
            self.turn_goal = self.yaw + float(rng.choice((-1, 1)) * rng.uniform(np.pi / 3, np.pi))
        elif act in GESTURES:
            both = act == "raising_arms" and rng.uniform() < 0.5
            self.side = 0 if both else int(rng.choice((-1, 1)))

    def _walk_goal(self) -> tuple[float, float]:
        """Of a few random points in the arena far enough away, the one most nearly ahead
        (people rarely walk off backwards); the farthest one if none is that far."""
        x0, x1, z0, z1 = self.cfg.arena
        goals = np.stack([self.rng.uniform(x0, x1, 8), self.rng.uniform(z0, z1, 8)], -1)
        dx, dz = goals[:, 0] - self.x, goals[:, 1] - self.z
        turn = np.abs(np.angle(np.exp(1j * (np.arctan2(dx, dz) - self.yaw))))
        far = np.hypot(dx, dz) >= _GOAL_DISTANCE
        x, z = goals[np.argmin(np.where(far, turn, np.inf))] if far.any() else goals[np.argmax(np.hypot(dx, dz))]
        return float(x), float(z)


class SyntheticMotion:
    """Several bodies: plans them frame by frame, poses them in one vectorised pass per call."""

    def __init__(self, cfg: MotionConfig) -> None:
        self.cfg = cfg
        streams = [[np.random.default_rng(s) for s in np.random.SeedSequence((cfg.seed, b)).spawn(3)]
                   for b in range(cfg.bodies)]  # traits, emotions, activities
        self.traits = Traits.draw([s[0] for s in streams], cfg.fps)
        self.bodies = [_Body(cfg, b, s[1], s[2], pace, props.hip_width) for b, (s, pace, props)
                       in enumerate(zip(streams, self.traits.pace, self.traits.props))]
        self.offsets = np.stack([p.offsets() for p in self.traits.props])      # [B, 25, 3]
        self.overlays: list[list[Overlay]] = [[] for _ in self.bodies]
        self.style = _TABLE[[body.emotion for body in self.bodies]]            # [B, P]
        self.frame = 0

    def add_overlay(self, body: int, overlay: Overlay) -> None:
        """Script channel offsets on one body over a time span (micro-gestures)."""
        self.overlays[body].append(overlay)

    def advance(self, n: int) -> tuple[Track, np.ndarray]:
        """The next ``n`` frames: the planned ``Track`` and ``joints [n, B, 25, 3]`` float64."""
        track = self._plan(n)
        root, ch = channels(track, self.traits)
        apply_overlays(ch, track.t, self.overlays)
        # Heading frame -> world: rotate by yaw about y, then move to the floor point.
        world = (rotation("y", track.yaw) @ root[..., None])[..., 0]
        world[..., 0] += track.pos[..., 0]
        world[..., 2] += track.pos[..., 1]
        return track, forward_kinematics(world, track.yaw, ch, self.offsets)

    def _plan(self, n: int) -> Track:
        cfg = self.cfg
        frames = self.frame + np.arange(n)
        t = frames / cfg.fps
        per_hold = cfg.hold * cfg.fps  # frames between emotion changes
        emotion = np.empty((n, len(self.bodies)), dtype=int)
        style = np.empty((n,) + self.style.shape)
        a_style = 1 - math.exp(-1.0 / (cfg.fps * _STYLE_TAU))
        for k, f in enumerate(frames.tolist()):
            if not cfg.emotions and f // per_hold > (f - 1) // per_hold >= 0:
                for body in self.bodies:
                    body.switch_emotion()
            emotion[k] = [body.emotion for body in self.bodies]
            self.style = self.style + (_TABLE[emotion[k]] - self.style) * a_style
            style[k] = self.style
        rows = [body.steps(t, style[:, b], emotion[:, b]) for b, body in enumerate(self.bodies)]
        cols = [np.array(col).swapaxes(0, 1) for col in zip(*(zip(*r) for r in rows))]
        phase, stride, walk, yaw, pos, plant, activity, seg_time, seg_len, side = cols
        self.frame += n
        return Track(t=t, phase=phase, stride=stride, walk=walk, style=style, yaw=yaw, pos=pos,
                     plant=plant, activity=activity, seg_time=seg_time, seg_len=seg_len, side=side,
                     emotion=emotion)
