"""Geometric micro-gesture detector: hand-written rules on the unified skeleton (pure numpy).

``RuleDetector().detect(joints [T,17,3], confidence [T,17], fps) -> MGResult`` (``microgestures``).

Body frame, per frame: up = canonical +Y; left = horizontal part of (l_shoulder - r_shoulder),
plus (l_hip - r_hip) where the hips are valid; forward = left x up. Lengths are divided by the
window's median shoulder width ("sw", about 0.34 m for a 1.7 m adult), so every threshold holds
for any body size. Zones were set on the Kinect V2 geometry (Head = centre of the head, Neck =
top of the spine); the wrist stands for the hand (the unified set has no hand tips).

The rules (threshold names are ``Thresholds`` fields, where each value is documented):
- touch_head / touch_face / touch_neck, either wrist: near the head and not below it (head); near
  the head, below it and in front of it (face); near the neck and lower than the face zone (neck).
- cover_face: both wrists in the face zone at once (then it is not also a touch_face).
- fold_arms: each wrist across the shoulder midline, both elbows bent, wrists at chest height.
- hands_on_hips, either side: wrist near the same-side hip, elbow out beyond the shoulder, bent.
- hands together in front (both wrists close, in front of the pelvis, between hips and chest):
  rub_hands while the wrists move against each other repeatedly, cross_hands while held still.
- shrug: shoulders rise above their window baseline relative to the neck (not while an arm is
  raised: lifting an arm lifts the shoulder joint in most rigs).
- lean_forward / lean_back: trunk pitch (pelvis -> thorax) moves away from the window's rest
  level (the pitch at its start or end, whichever is nearer the window's median) and is clearly
  forward / back in absolute terms; a lean held through the whole window is posture (the
  trunk_lean descriptor), not an MG.
- turn_away: shoulder line twisted against the hip line.
- sway: the thorax swings repeatedly relative to the ankles (0.4-1.4 Hz), feet planted; fidget: a
  low wrist (relative to its shoulder) or an ankle (relative to its hip) repeats a small movement
  (1.4-6 Hz). Both only while the body is not travelling (walking swings everything).
Frames that satisfy a rule become events by ``microgestures.EventRules`` (held postures need
``hold_s``). A frame's score is the mean confidence of the MG's joints, times, for repeated
movements, their regularity (normalised autocorrelation one period apart, mapped to 0.5-1).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np

from bodytalk.capture.layouts import U, UNIFIED_JOINTS
from bodytalk.model.skeleton import spectral
from bodytalk.model.skeleton.features import unified_arrays
from bodytalk.model.skeleton.microgestures import (NAMES, VOCABULARY, EventRules, MGResult, assemble, observability,
                                          valid_joints)

P, TH, NK, HD = U["pelvis"], U["thorax"], U["neck"], U["head"]
SH, EL, WR = [U["l_shoulder"], U["r_shoulder"]], [U["l_elbow"], U["r_elbow"]], [U["l_wrist"], U["r_wrist"]]
HIP, ANK = [U["l_hip"], U["r_hip"]], [U["l_ankle"], U["r_ankle"]]
SIDE = np.array([1.0, -1.0])   # +1: the person's left (the +left axis), per (l, r)
HELD = ("fold_arms", "hands_on_hips", "cross_hands")
_MEAN_CONF = np.stack([np.isin(np.arange(len(UNIFIED_JOINTS)), [U[j] for j in VOCABULARY[n].joints])
                       / len(set(VOCABULARY[n].joints)) for n in NAMES], axis=1)   # [17, MGs]: scores an MG
_MIN_FRAMES = 3        # a window shorter than this shows no movement: every MG is not observable
_SMOOTH = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0   # binomial, ~Gaussian with sigma 1 frame


@dataclass(frozen=True)
class Repeat:
    """A repeated movement: at least ``swings`` half-cycles in a row, each of peak-to-peak ``swing``
    (sw) lasting ``half_period`` (s); the span must be valid in ``min_valid`` of its frames and
    correlate with itself one period later by ``min_regularity`` (a repeat, not a wobble)."""
    swing: tuple[float, float]
    half_period: tuple[float, float]
    swings: int
    min_regularity: float = 0.2
    min_valid: float = 0.8

    def __post_init__(self) -> None:
        if not (0 < self.swing[0] < self.swing[1] and 0 < self.half_period[0] < self.half_period[1]
                and self.swings >= 2 and -1 <= self.min_regularity <= 1 and 0 <= self.min_valid <= 1):
            raise ValueError(f"bad Repeat {self}: need 0 < low < high, swings >= 2, fractions in range")


@dataclass(frozen=True)
class Thresholds:
    """Every rule's numbers. Lengths in shoulder widths (sw), angles in degrees, times in seconds.
    Pairs are (low, high)."""
    min_confidence: float = 0.5    # a joint counts in a frame at or above this confidence
    head_radius: float = 0.75      # head zone: wrist within this of the head centre,
    head_min_up: float = -0.15     #   and no lower than this relative to it (up axis)
    face_radius: float = 0.9       # face zone: wrist within this of the head,
    face_min_up: float = -0.5      #   between this height and head_min_up relative to it,
    face_min_forward: float = 0.15  #  and at least this far in front of it
    neck_radius: float = 0.7       # neck zone: wrist within this of the neck, below the face zone,
    neck_min_up: float = -0.6      #   and no lower than this relative to the neck (not the chest)
    fold_cross: float = 0.1        # fold: each wrist this far past the shoulder midline,
    fold_elbow_max: float = 105.0  #   elbow angle (shoulder-elbow-wrist) below this,
    fold_height: tuple[float, float] = (-1.1, -0.1)   # wrist height relative to its shoulder
    hip_radius: float = 0.7        # akimbo: wrist within this of the same-side hip,
    elbow_out: float = 0.3         #   elbow this far outside its shoulder,
    akimbo_elbow_max: float = 125.0  # and its angle below this
    together_radius: float = 0.45  # hands together: wrists closer than this,
    together_forward: float = 0.3  #   their midpoint this far in front of the pelvis,
    together_height: tuple[float, float] = (-0.6, -0.5)  # above pelvis + low, below neck + high
    still_hands: float = 0.6       # held together (cross_hands): wrist-to-wrist speed below this, sw/s
    still_s: float = 0.35          # speeds of "still" hands and feet are averaged over this long
    rub: Repeat = Repeat((0.04, 0.5), (0.08, 0.35), 4)   # rubbing: the wrist-to-wrist vector, 1.4-6 Hz
    shrug_rise: float = 0.08       # shoulders above their baseline (the window's 20th percentile)
    lean_change: float = 8.0       # trunk pitch away from the rest level by this ...
    lean_forward_min: float = 6.0  # ... and forward of this (lean_forward)
    lean_back_max: float = -4.0    # ... or back of this (lean_back)
    lean_rest_s: float = 0.3       # rest levels: mean pitch over this long at each end
    turn_twist: float = 20.0       # shoulder line twisted against the hip line by this
    sway: Repeat = Repeat((0.08, 0.5), (0.35, 1.25), 3)  # thorax vs ankles, 0.4-1.4 Hz; 3 half-cycles:
    #                                                      there, back, there again (a lean is only two)
    fidget: Repeat = Repeat((0.1, 0.45), (0.08, 0.35), 4)  # a limb end, 1.4-6 Hz (larger: a gesture)
    fidget_max_height: float = -0.5  # fidgeting hands are low: wrist below its shoulder by this
    feet_still: float = 0.5        # sway: both ankles slower than this, sw/s (stepping is not swaying)
    travel_speed: float = 1.0      # sw/s of the pelvis above which the body is travelling
    hold_s: float = 0.4            # shortest run of a held posture (fold, akimbo, hands together)
    events: EventRules = field(default_factory=EventRules)   # frames -> events (min run 0.2 s, ...)

    def __post_init__(self) -> None:
        pairs = [n for n in ("fold_height", "together_height") if not getattr(self, n)[0] < getattr(self, n)[1]]
        if pairs or not 0 < self.min_confidence <= 1:
            raise ValueError(f"Thresholds: need low < high for {pairs} and min_confidence in (0, 1]")


class RuleDetector:
    """The geometric detector (a ``microgestures.Detector``); stateless, one window per call."""

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.th = thresholds or Thresholds()

    def detect(self, joints: np.ndarray, confidence: np.ndarray, fps: float) -> MGResult:
        x, c = unified_arrays(joints, confidence, fps)
        ok = valid_joints(x, c, self.th.min_confidence) & (len(x) >= _MIN_FRAMES)   # too short: nothing seen
        rules = _Rules(np.where(ok[..., None], x, 0.0), ok, fps, self.th)
        alive = observability(rules.ok)                                  # joints usable in the body frame
        if not any(map(any, alive.values())):
            return MGResult(not_observable=NAMES)
        masks = rules.masks(alive)
        joint_conf = c @ _MEAN_CONF                                      # [T, MGs] mean over each MG's joints
        decisions = {name: (mask, joint_conf[:, NAMES.index(name)] * (1.0 if regular is None else regular))
                     for name, (mask, regular) in masks.items()}
        return assemble(decisions, alive, fps, self.th.events, {name: self.th.hold_s for name in HELD})


def detect(joints: np.ndarray, confidence: np.ndarray, fps: float = 30.0) -> MGResult:
    """The geometric detector with the default thresholds."""
    return _DEFAULT.detect(joints, confidence, fps)


def _quantile(v: np.ndarray, q: float) -> float:
    """The ``q`` quantile of ``v [N]`` as its nearest-rank element (np.percentile costs 10x more)."""
    k = int(round(q * (len(v) - 1)))
    return float(np.partition(v, k)[k])


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between vectors ``a`` and ``b`` ``[..., 3]``."""
    cos = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-9)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


@lru_cache(maxsize=64)
def _edge_index(T: int, before: int, after: int) -> np.ndarray:
    """Indices that pad a length-``T`` axis by repeating its ends."""
    return np.clip(np.arange(-before, T + after), 0, T - 1)


def _zigzag(y: np.ndarray, min_swing: float) -> list[int]:
    """Frames of alternating extremes of ``y [T]`` at least ``min_swing`` apart (smaller wiggles
    never make an extreme). Only the local extrema of ``y`` are visited."""
    d = np.diff(y)
    points = [0, *(np.nonzero(d[:-1] * d[1:] < 0)[0] + 1).tolist(), len(y) - 1]
    lo = hi = 0                                      # before the first swing: running min and max
    ext: list[int] = []
    for i in points:
        if not ext:
            lo, hi = (i, hi) if y[i] < y[lo] else (lo, i) if y[i] > y[hi] else (lo, hi)
            if y[hi] - y[lo] >= min_swing:
                ext = sorted((lo, hi))
        elif (y[i] - y[ext[-1]]) * (y[ext[-1]] - y[ext[-2]]) > 0:
            ext[-1] = i                              # the swing goes on: move its extreme
        elif abs(y[i] - y[ext[-1]]) >= min_swing:
            ext.append(i)                            # a reversal big enough: a new swing
    return ext


def repeats(signals: np.ndarray, valid: np.ndarray, fps: float, rep: Repeat) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``signals [S, T, D]`` (sw; ``valid [S, T]``) repeats a movement as ``rep``
    says. Returns masks ``[S, T]`` and the regularity of each span's frames ``[S, T]`` (the
    normalised autocorrelation one period apart, mapped to 0.5-1).

    Each signal is gap-filled and projected on the main axis of its fast part (the signal minus
    its centred moving average over the longest period: a reach to a new place must not choose
    the axis), then smoothed; half-cycles are the swings between alternating extremes at least
    ``swing[0]`` apart. The projection itself is not high-passed: a filter would ring, turning one
    step into a down-up-down that looks like a repeat."""
    S, T, _ = signals.shape
    mask, regular = np.zeros((S, T), dtype=bool), np.zeros((S, T))
    if T < 8:
        return mask, regular
    k = min(2 * round(rep.half_period[1] * fps) + 1, T - 1 + T % 2)     # odd, at most T
    (lo, hi), (h_lo, h_hi) = rep.swing, rep.half_period
    moving = np.nonzero((valid.sum(axis=1) >= 8) & (np.linalg.norm(np.ptp(signals, axis=1), axis=-1) >= lo))[0]
    if not len(moving):                                              # nothing could swing that far
        return mask, regular
    s = spectral.filled(signals[moving].transpose(1, 0, 2), valid[moving].T).transpose(1, 0, 2)   # gaps bridged
    c = np.cumsum(s[:, _edge_index(T, k // 2 + 1, k // 2)], axis=1)
    fast = s - (c[:, k:] - c[:, :-k]) / k                            # [S, T, D] high-passed
    axis = np.linalg.eigh(np.einsum("std,ste->sde", fast, fast))[1][..., -1]   # [S, D] main direction
    y_pad = (s @ axis[..., None])[..., 0][:, _edge_index(T, 2, 2)]   # the unfiltered signal along it
    y = np.zeros((S, T))
    y[moving] = sum(w * y_pad[:, j:j + T] for j, w in enumerate(_SMOOTH))   # [S, T] smoothed
    for i in moving[np.ptp(y[moving], axis=1) >= lo]:
        ext = _zigzag(y[i], lo)
        good = np.array([lo <= abs(y[i, b] - y[i, a]) <= hi and h_lo <= (b - a) / fps <= h_hi
                         for a, b in zip(ext, ext[1:])])
        d = np.diff(np.concatenate([[0], good.astype(np.int8), [0]]))
        for first, end in zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]):
            a, b = ext[first], ext[end]
            lag = max(1, round(2 * (b - a) / max(end - first, 1)))   # one full period, frames
            z = y[i, a:b + 1]
            if end - first < rep.swings or len(z) <= lag + 2 or valid[i, a:b + 1].mean() < rep.min_valid:
                continue
            u, v = z[:-lag] - z[:-lag].mean(), z[lag:] - z[lag:].mean()
            r = float((u * v).sum() / max(np.sqrt((u * u).sum() * (v * v).sum()), 1e-12))
            if r >= rep.min_regularity:
                mask[i, a:b + 1] = True
                regular[i, a:b + 1] = 0.5 + 0.5 * max(r, 0.0)
    return mask & valid, regular


class _Rules:
    """One window's geometry, then each rule's frame mask ``[T]`` (and regularity for repeats)."""

    def __init__(self, x: np.ndarray, ok: np.ndarray, fps: float, th: Thresholds) -> None:
        self.fps, self.th = fps, th
        sh_ok = ok[:, SH].all(axis=1)
        across = x[:, SH[0]] - x[:, SH[1]]
        self.sw = max(_quantile(np.linalg.norm(across[sh_ok], axis=-1), 0.5) if sh_ok.any() else 0.0, 1e-3)
        left = across + np.where(ok[:, HIP].all(1, keepdims=True), x[:, HIP[0]] - x[:, HIP[1]], 0.0)
        left[:, 1] = 0.0
        norm = np.linalg.norm(left, axis=-1, keepdims=True)
        left = left / np.maximum(norm, 1e-9)
        axes = np.zeros((len(x), 3, 3))                                  # columns: left, up, forward
        axes[:, :, 0], axes[:, 1, 1], axes[:, 0, 2], axes[:, 2, 2] = left, 1.0, -left[:, 2], left[:, 0]
        self.fok = sh_ok & (norm[:, 0] > 0.2 * self.sw)                  # facing known (not edge-on)
        self.ok = ok & self.fok[:, None]                                 # joints usable in body axes
        self.bits = self.ok.astype(np.int64) @ (1 << np.arange(ok.shape[1], dtype=np.int64))   # [T] as bits
        self.world = x / self.sw                                         # [T, 17, 3] sw, canonical axes
        self.loc = self.world @ axes                                     # [T, 17, 3] sw, body axes

    def valid(self, *joints: int) -> np.ndarray:
        m = sum(1 << j for j in set(joints))
        return (self.bits & m) == m

    def masks(self, alive: dict[str, list[bool]]) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        """name -> (mask [T], regularity [T] or None) for every MG; ``alive``: which of an MG's
        alternatives (a hand, a limb) are observable in this window."""
        self.alive = alive
        out = {"fold_arms": (self.folded, None)}
        for family in (self._hand_zones, self._hands_on_hips, self._hands_together, self._fidget, self._sway,
                       self._shrug, self._lean, self._turn_away):
            out.update(family())
        return out

    def _any_of(self, name: str, per_alt) -> np.ndarray:
        """The union over an MG's observable alternatives (per_alt: one [T] mask each)."""
        out = np.zeros(len(self.loc), dtype=bool)
        for m, seen in zip(per_alt, self.alive[name]):
            if seen:
                out |= m
        return out

    @cached_property
    def elbow(self) -> np.ndarray:
        """Elbow angles [T, 2] in degrees."""
        loc = self.loc
        return _angle(loc[:, SH] - loc[:, EL], loc[:, WR] - loc[:, EL])

    @cached_property
    def wrist_height(self) -> np.ndarray:
        """Wrists above their shoulders [T, 2], in shoulder widths."""
        return self.loc[:, WR, 1] - self.loc[:, SH, 1]

    @cached_property
    def folded(self) -> np.ndarray:
        """Arms folded [T]: each wrist across the midline, elbows bent, wrists at chest height."""
        loc, th, height = self.loc, self.th, self.wrist_height
        crossed = (loc[:, WR, 0] - loc[:, SH, 0].mean(axis=1, keepdims=True)) * SIDE < -th.fold_cross
        return self.valid(*SH, *EL, *WR) & (crossed & (self.elbow < th.fold_elbow_max)
                                            & (height > th.fold_height[0]) & (height < th.fold_height[1])).all(axis=1)

    def _hand_zones(self) -> dict:
        """Hand zones around the head and neck, per wrist [T, 2] (folded arms are not touches)."""
        loc, th, fold = self.loc, self.th, self.folded
        rh, rn = loc[:, WR] - loc[:, [HD]], loc[:, WR] - loc[:, [NK]]
        dh, dn, up_h = np.linalg.norm(rh, axis=-1), np.linalg.norm(rn, axis=-1), rh[..., 1]
        hand = self.valid(HD, NK)[:, None] & self.ok[:, WR]
        face = hand & (dh < th.face_radius) & (up_h <= th.head_min_up) & (up_h > th.face_min_up) \
            & (rh[..., 2] > th.face_min_forward)
        cover = face.all(axis=1) & ~fold
        out = {"cover_face": (cover, None)}
        for name, zone in (("touch_head", hand & (dh < th.head_radius) & (up_h > th.head_min_up)),
                           ("touch_face", face & ~cover[:, None]),
                           ("touch_neck", hand & (dn < th.neck_radius) & (up_h <= th.face_min_up)
                            & (rn[..., 1] > th.neck_min_up))):
            out[name] = (self._any_of(name, zone.T) & ~fold, None)
        return out

    def _hands_on_hips(self) -> dict:
        loc, th = self.loc, self.th
        akimbo = (self.ok[:, EL] & self.ok[:, WR] & self.ok[:, HIP]
                  & (np.linalg.norm(loc[:, WR] - loc[:, HIP], axis=-1) < th.hip_radius)
                  & ((loc[:, EL, 0] - loc[:, SH, 0]) * SIDE > th.elbow_out) & (self.elbow < th.akimbo_elbow_max))
        return {"hands_on_hips": (self._any_of("hands_on_hips", akimbo.T), None)}

    @cached_property
    def between(self) -> np.ndarray:
        """Wrist-to-wrist vector [T, 3] in body axes."""
        return self.loc[:, WR[0]] - self.loc[:, WR[1]]

    @cached_property
    def together(self) -> np.ndarray:
        """Hands together in front of the body [T]."""
        loc, th = self.loc, self.th
        centre = loc[:, WR].mean(axis=1)
        low, high = loc[:, P, 1] + th.together_height[0], loc[:, NK, 1] + th.together_height[1]
        return self.valid(*WR, P, NK) & ~self.folded & (np.linalg.norm(self.between, axis=-1) < th.together_radius) \
            & (centre[:, 2] - loc[:, P, 2] > th.together_forward) & (centre[:, 1] > low) & (centre[:, 1] < high)

    def _hands_together(self) -> dict:
        """Rubbing while the wrist-to-wrist vector oscillates, else crossed (held still)."""
        th, together = self.th, self.together
        rub, regular = repeats(self.between[None], together[None], self.fps, th.rub)
        speed = self._mean_over(np.linalg.norm(self._rate(self.between), axis=-1), th.still_s)
        return {"rub_hands": (together & rub[0], regular[0]),
                "cross_hands": (together & ~rub[0] & (speed < th.still_hands), None)}

    @cached_property
    def still(self) -> np.ndarray:
        """The body is not travelling [T] (fidget and sway count only then)."""
        return self._not_travelling()

    def _fidget(self) -> dict:
        """Repeated small movements of a hand (below the shoulders) or a foot."""
        ends = [(WR[0], SH[0]), (WR[1], SH[1]), (ANK[0], HIP[0]), (ANK[1], HIP[1])]
        limbs = np.stack([self.world[:, e] - self.world[:, r] for e, r in ends])        # [4, T, 3]
        low = np.concatenate([self.wrist_height < self.th.fidget_max_height,
                              np.ones((len(self.loc), 2), bool)], axis=1)               # [T, 4]
        limbs_ok = np.stack([self.valid(e, r, P) & self.still & ~self.together for e, r in ends]) & low.T
        mask, regular = repeats(limbs, limbs_ok, self.fps, self.th.fidget)
        return {"fidget": (self._any_of("fidget", mask), regular.max(axis=0))}

    def _sway(self) -> dict:
        """The thorax swinging over planted feet."""
        th = self.th
        sway = (self.world[:, TH] - self.world[:, ANK].mean(axis=1))[None, :, ::2]      # [1, T, 2]
        feet = np.linalg.norm(self._rate(self.world[:, ANK]), axis=-1).max(axis=1)
        planted = self._mean_over(feet, th.still_s) < th.feet_still
        mask, regular = repeats(sway, (self.valid(TH, *ANK, P) & self.still & planted)[None], self.fps, th.sway)
        return {"sway": (mask[0], regular[0])}

    def _shrug(self) -> dict:
        """Shoulders rising towards the neck above their usual height (not while an arm is raised)."""
        loc = self.loc
        raised = ((loc[:, WR, 1] > loc[:, SH, 1]) & self.ok[:, WR]).any(axis=1)
        rise = loc[:, SH, 1].mean(axis=1) - loc[:, NK, 1]
        v = self.valid(*SH, NK)
        base = _quantile(rise[v], 0.2) if v.any() else 0.0
        return {"shrug": (v & ~raised & (rise - base > self.th.shrug_rise), None)}

    def _turn_away(self) -> dict:
        """The shoulders twisted against the hips."""
        across, hips = self.world[:, SH[0]] - self.world[:, SH[1]], self.world[:, HIP[0]] - self.world[:, HIP[1]]
        twist = np.degrees(np.angle(np.exp(1j * (np.arctan2(across[:, 0], across[:, 2])
                                                 - np.arctan2(hips[:, 0], hips[:, 2])))))
        return {"turn_away": (self.valid(*SH, *HIP) & (np.abs(twist) > self.th.turn_twist), None)}

    def _lean(self) -> dict[str, tuple[np.ndarray, None]]:
        th, trunk = self.th, self.loc[:, TH] - self.loc[:, P]
        pitch = np.degrees(np.arctan2(trunk[:, 2], trunk[:, 1]))          # + forward
        v = self.valid(P, TH)
        idx, n = np.nonzero(v)[0], max(1, round(th.lean_rest_s * self.fps))
        if len(idx) < 2 * n:
            return {"lean_forward": (v & False, None), "lean_back": (v & False, None)}
        ends, middle = np.array([pitch[idx[:n]].mean(), pitch[idx[-n:]].mean()]), _quantile(pitch[idx], 0.5)
        rest = ends[np.argmin(np.abs(ends - middle))]     # the end the window spends more time near
        return {"lean_forward": (v & (pitch - rest > th.lean_change) & (pitch > th.lean_forward_min), None),
                "lean_back": (v & (rest - pitch > th.lean_change) & (pitch < th.lean_back_max), None)}

    def _mean_over(self, v: np.ndarray, seconds: float) -> np.ndarray:
        """Centred moving average of ``v [T]`` over ``seconds`` (ends repeated)."""
        k = max(1, round(seconds * self.fps))
        return np.convolve(v[_edge_index(len(v), k // 2, k - 1 - k // 2)], np.ones(k) / k, mode="valid")

    def _rate(self, v: np.ndarray) -> np.ndarray:
        """Per-second change of ``v [T, ...]``: central differences, one-sided at the ends."""
        d = np.empty_like(v)
        d[1:-1] = (v[2:] - v[:-2]) / 2
        d[0], d[-1] = v[1] - v[0], v[-1] - v[-2]
        return d * self.fps

    def _not_travelling(self) -> np.ndarray:
        return np.linalg.norm(self._rate(self.world[:, P, ::2]), axis=-1) <= self.th.travel_speed   # sw/s


_DEFAULT = RuleDetector()
__all__ = ["Thresholds", "Repeat", "RuleDetector", "detect", "repeats"]
