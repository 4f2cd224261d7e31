"""``synthetic:`` - procedural bodies walking, turning, standing and gesturing in emotion styles.

The project's own data: the demo, the core tests and the training smoke runs use it. Frames are
in the Kinect V2 layout, canonical space (metres, Y up, floor at y = 0, right-handed; the layout's
"ShoulderLeft" is the person's left), at ``t = frame / fps``, and the same URI always yields the
same frames bit for bit. Each frame's ``labels`` give every visible body's emotion and activity.

Options (``synthetic:?bodies=3&emotion=sad,happy,angry&seed=7``):
  bodies=N       number of bodies (default 2), ids 1..N
  emotion=NAMES  fixed emotion, one for all bodies or a comma list per body
                 (default: each body draws a new one every ``hold`` seconds)
  hold=SECONDS   seconds between emotion changes (default 20)
  fps=HZ         frame rate (default 30)
  seed=N         random seed (default 0)
  duration=S     end after S seconds (default: endless)
  sensor=NAME    sensor name in topics (default synthetic)
  dropout=P      simulate tracking loss in about a fraction P of each body's frames: the body
                 vanishes for a moment, or a limb is reported inferred/untracked (confidence 0.5
                 or 0, jittered positions; never NaN). Default 0.
  activity=NAMES draw only these activities (e.g. standing); default: all, weighted by the style
  mg=NAMES       perform these micro-gestures while standing (comma list, or all; see
                 synthetic_mg.MG_NAMES): each label then has "mgs", a list of {name, t_start,
                 t_end, count} for the MGs begun by t that ended at most 10 s before it
  mg_rate=R      micro-gestures per second while standing (default 0.2)
Micro-gesture clips: ``synthetic:?bodies=1&emotion=neutral&activity=standing&mg=all&duration=60``.
"""
from __future__ import annotations

import math
from typing import Iterator
from urllib.parse import urlencode

import numpy as np

from bodytalk.capture.layouts_known import KINECT_V2
from bodytalk.capture.source import Frame, Source, SourceError
from bodytalk.capture.sources.synthetic.body import J
from bodytalk.capture.sources.synthetic.mg import MG_NAMES, MGPerformer, check as check_mgs
from bodytalk.capture.sources.synthetic.motion import EMOTIONS, MotionConfig, SyntheticMotion
from bodytalk.capture.sources.synthetic.styles import ACTIVITIES

_CHUNK = 30  # frames posed per vectorised pass (one second at 30 fps)
_OPTIONS = ("bodies", "emotion", "hold", "fps", "seed", "duration", "dropout", "sensor", "activity", "mg", "mg_rate")
# Joint groups a tracking glitch degrades together.
_LIMBS = [np.array([J[n] for n in names]) for names in (
    ("ShoulderLeft", "ElbowLeft", "WristLeft", "HandLeft", "HandTipLeft", "ThumbLeft"),
    ("ShoulderRight", "ElbowRight", "WristRight", "HandRight", "HandTipRight", "ThumbRight"),
    ("KneeLeft", "AnkleLeft", "FootLeft"), ("KneeRight", "AnkleRight", "FootRight"),
    ("ElbowLeft", "WristLeft", "HandLeft", "HandTipLeft", "ThumbLeft", "ElbowRight", "WristRight",
     "HandRight", "HandTipRight", "ThumbRight"))]


class Dropout:
    """Tracking-loss events per body, drawn from their own seeded generator.

    An event lasts 0.1-1.5 s; a third make the body vanish, the rest mark a limb inferred
    (confidence 0.5) or untracked (0) with a few centimetres of jitter on its joints."""

    def __init__(self, p: float, bodies: int, fps: float, seed: int) -> None:
        self.rng = np.random.default_rng((seed, 0xD0))  # apart from the motion's streams
        mean_len = 0.8 * fps                              # frames, mean of the length draw below
        self.start_p = p / ((1 - p) * mean_len)           # per frame, gives busy fraction ~ p
        self.fps = fps
        self.left = np.zeros(bodies, dtype=int)           # frames the current event still lasts
        self.missing = np.zeros(bodies, dtype=bool)
        self.limb = np.zeros(bodies, dtype=int)
        self.level = np.ones(bodies, dtype=np.float32)

    def apply(self, joints: np.ndarray, conf: np.ndarray) -> np.ndarray:
        """Degrade one frame in place (``joints [B, 25, 3]``, ``conf [B, 25]``); return the
        mask ``[B]`` of bodies still visible."""
        for b in np.nonzero((self.left == 0) & (self.rng.uniform(size=len(self.left)) < self.start_p))[0]:
            self.left[b] = self.rng.integers(int(0.1 * self.fps) + 1, int(1.5 * self.fps) + 2)
            self.missing[b] = self.rng.uniform() < 1 / 3
            self.limb[b] = self.rng.integers(len(_LIMBS))
            self.level[b] = self.rng.choice((0.0, 0.5))
        for b in np.nonzero((self.left > 0) & ~self.missing)[0]:
            idx = _LIMBS[self.limb[b]]
            conf[b, idx] = self.level[b]
            joints[b, idx] += self.rng.normal(0, 0.03, (len(idx), 3)).astype(np.float32)
        visible = ~((self.left > 0) & self.missing)
        self.left = np.maximum(self.left - 1, 0)
        return visible


class SyntheticSource(Source):
    scheme = "synthetic"
    help = "procedural bodies walking, turning and gesturing in emotion styles, with labels"
    example = "synthetic:?bodies=3&emotion=sad&seed=7&duration=60"

    def endless(self) -> str | None:
        if "duration" in self.options:
            return None
        bounded = urlencode({**self.options, "duration": 60})
        return f"give it a duration in seconds, e.g. synthetic:{self.target}?{bounded}"

    def open(self) -> None:
        unknown = sorted(set(self.options) - set(_OPTIONS))
        if unknown:
            raise SourceError(f"synthetic: unknown option(s) {', '.join(unknown)}; "
                              f"known: {', '.join(_OPTIONS)}")
        emotion, activity = self.option("emotion", ""), self.option("activity", "")
        mg = self.option("mg", "")
        self.mgs = MG_NAMES if mg == "all" else tuple(n.strip() for n in mg.split(",")) if mg else ()
        self.mg_rate = self.option("mg_rate", 0.2, float)
        self.duration = self.option("duration", None, float)
        self.dropout = self.option("dropout", 0.0, float)
        if self.duration is not None and not self.duration > 0:
            raise SourceError(f"synthetic: duration must be > 0 seconds, got {self.duration}")
        if not 0 <= self.dropout < 1:
            raise SourceError(f"synthetic: dropout is a fraction in [0, 1), got {self.dropout}")
        try:
            self.config = MotionConfig(
                bodies=self.option("bodies", 2, int), fps=self.option("fps", 30.0, float),
                seed=self.option("seed", 0, int), hold=self.option("hold", 20.0, float),
                emotions=tuple(e.strip() for e in emotion.split(",")) if emotion else None,
                activities=tuple(a.strip() for a in activity.split(",")) if activity else None)
            if self.mgs:
                check_mgs(self.mgs, self.mg_rate)
        except ValueError as err:
            raise SourceError(f"synthetic: {err}") from None
        self.layout = KINECT_V2
        self.fps = self.config.fps

    def frames(self) -> Iterator[Frame]:
        cfg = self.config
        motion = SyntheticMotion(cfg)
        performer = MGPerformer(motion, self.mgs, self.mg_rate) if self.mgs else None
        dropout = Dropout(self.dropout, cfg.bodies, cfg.fps, cfg.seed) if self.dropout else None
        ids = np.arange(1, cfg.bodies + 1, dtype=np.int32)
        total = math.inf if self.duration is None else round(self.duration * cfg.fps)
        done = 0
        while done < total:
            track, joints = motion.advance(int(min(_CHUNK, total - done)))
            if performer:
                performer.plan(track)                                    # MGs of the next chunk
            joints = joints.astype(np.float32)                          # [n, B, 25, 3]
            conf = np.ones(joints.shape[:-1], dtype=np.float32)          # [n, B, 25]
            keep = np.ones(joints.shape[:2], dtype=bool)                 # [n, B] visible
            for i in range(len(track.t)):
                if dropout:
                    keep[i] = dropout.apply(joints[i], conf[i])
                labels = {int(b): {"emotion": EMOTIONS[e], "activity": ACTIVITIES[a]} for b, e, a
                          in zip(ids[keep[i]], track.emotion[i][keep[i]], track.activity[i][keep[i]])}
                if performer:
                    for b in labels:
                        labels[b]["mgs"] = performer.labels(b - 1, float(track.t[i]))
                yield Frame(t=(done + i) / cfg.fps, body_ids=ids[keep[i]], joints=joints[i][keep[i]],
                            confidence=conf[i][keep[i]], labels=labels)
            done += len(track.t)
