"""Micro-gestures (MGs): the vocabulary, what a detector returns, and MGs in words.

MGs are small, mostly unintentional movements that go with inner states (iMiGUE: touching the face,
folding the arms, shrugging, fidgeting, ...). This module is detector-neutral: the geometric rules
(``mg_rules``) and a learned classifier both implement ``Detector.detect(joints [T,17,3],
confidence [T,17], fps) -> MGResult``, with times in seconds from the window's first frame.

Every MG names the unified joints it needs (``MGSpec.joints``), plus alternatives of which one
suffices (either hand touches the face: ``alternatives = ((l_wrist,), (r_wrist,))``). An MG whose
joints are valid (confidence >= 0.5, finite) in too few frames is reported **not observable** --
never absent or present by guess. It is **absent** only when every alternative was observable and
none showed it (a hidden left hand may have touched the face). ``observability`` gives every
detector the same rule, and ``EventRules`` / ``assemble`` the same way from per-frame decisions
to events and a result (a learned detector thresholds its per-frame probabilities and calls
``assemble``).

``render_mgs`` words a result for the prompt ("touched the face twice (0.4-0.9 s, 1.3-1.6 s)"),
and ``grounding`` holds explanations to it (``claim_terms.MG_TERMS``).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from bodytalk.capture.layouts import U

MIN_VALID_SHARE = 0.5   # of frames in which an MG's joints must be valid for it to be observable
_SH, _WR = ("l_shoulder", "r_shoulder"), (("l_wrist",), ("r_wrist",))   # shoulders; either wrist


@dataclass(frozen=True)
class MGSpec:
    name: str
    label: str                  # noun phrase ("face touching"), for lists of what was not seen
    past: str                   # verb phrase for evidence ("touched the face")
    joints: tuple[str, ...]     # unified joints it always needs (shoulders give scale and facing)
    alternatives: tuple[tuple[str, ...], ...] = ()   # one of these groups suffices (either hand)
    counted: bool = False       # repetitions are meaningful ("twice")

    def __post_init__(self) -> None:
        unknown = {j for j in self.joints + sum(self.alternatives, ()) if j not in U}
        if unknown:
            raise ValueError(f"MG {self.name}: unknown unified joints {sorted(unknown)}")


_MGS = (
    MGSpec("fold_arms", "arm folding", "folded the arms",
           (*_SH, "l_elbow", "r_elbow", "l_wrist", "r_wrist")),
    MGSpec("hands_on_hips", "hands on hips", "put the hands on the hips", _SH,
           (("l_elbow", "l_wrist", "l_hip"), ("r_elbow", "r_wrist", "r_hip"))),
    MGSpec("touch_face", "face touching", "touched the face", (*_SH, "neck", "head"), _WR, counted=True),
    MGSpec("cover_face", "face covering", "covered the face", (*_SH, "neck", "head", "l_wrist", "r_wrist")),
    MGSpec("touch_head", "head touching", "touched the head", (*_SH, "neck", "head"), _WR, counted=True),
    MGSpec("touch_neck", "neck touching", "touched the neck", (*_SH, "neck", "head"), _WR, counted=True),
    MGSpec("rub_hands", "hand rubbing", "rubbed the hands", (*_SH, "pelvis", "neck", "l_wrist", "r_wrist")),
    MGSpec("cross_hands", "hands held together in front", "held the hands together in front",
           (*_SH, "pelvis", "neck", "l_wrist", "r_wrist")),
    MGSpec("shrug", "shrugging", "shrugged", (*_SH, "neck"), counted=True),
    MGSpec("lean_forward", "leaning forward", "leaned forward", (*_SH, "pelvis", "thorax"), counted=True),
    MGSpec("lean_back", "leaning back", "leaned back", (*_SH, "pelvis", "thorax"), counted=True),
    MGSpec("sway", "swaying", "swayed", (*_SH, "pelvis", "thorax", "l_ankle", "r_ankle")),
    MGSpec("fidget", "fidgeting", "fidgeted", (*_SH, "pelvis"),
           (("l_wrist",), ("r_wrist",), ("l_hip", "l_ankle"), ("r_hip", "r_ankle"))),
    MGSpec("turn_away", "turning away", "turned away", (*_SH, "l_hip", "r_hip"), counted=True),
)
VOCABULARY: dict[str, MGSpec] = {s.name: s for s in _MGS}
NAMES: tuple[str, ...] = tuple(VOCABULARY)


@dataclass(frozen=True)
class MG:
    """One detected micro-gesture: seconds from the window's first frame, ``count`` repetitions."""
    name: str
    t_start: float
    t_end: float
    confidence: float    # 0..1
    count: int = 1

    def __post_init__(self) -> None:
        if self.name not in VOCABULARY:
            raise ValueError(f"unknown micro-gesture {self.name!r}; known: {', '.join(NAMES)}")
        if not (self.t_end >= self.t_start and 0.0 <= self.confidence <= 1.0 and self.count >= 1):
            raise ValueError(f"bad MG {self}: need t_end >= t_start, confidence in [0, 1], count >= 1")


@dataclass(frozen=True)
class MGResult:
    """What a detector saw in one window: each name of the vocabulary is exactly one of present
    (with its events), absent, or not observable."""
    present: tuple[MG, ...] = ()
    absent: tuple[str, ...] = ()
    not_observable: tuple[str, ...] = ()
    _status: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = {n for n in self.absent + self.not_observable if n not in VOCABULARY}
        if unknown:
            raise ValueError(f"unknown micro-gesture(s) {sorted(unknown)}; known: {', '.join(NAMES)}")
        status = {n: "absent" for n in self.absent}
        status.update({n: "not_observable" for n in self.not_observable})
        status.update({m.name: "present" for m in self.present})
        if len(status) != len(self.absent) + len(self.not_observable) + len({m.name for m in self.present}):
            raise ValueError("an MG may be only one of present, absent and not observable")
        object.__setattr__(self, "_status", status)

    def status(self, name: str) -> str:
        """"present", "absent", "not_observable", or "unknown" when the detector did not judge it."""
        if name not in VOCABULARY:
            raise KeyError(f"unknown micro-gesture {name!r}; known: {', '.join(NAMES)}")
        return self._status.get(name, "unknown")

    def events(self, name: str) -> list[MG]:
        return [m for m in self.present if m.name == name]

    def count(self, name: str) -> int:
        """Repetitions of ``name`` over all its events (0 when not present)."""
        return sum(m.count for m in self.events(name))

    def shifted(self, dt: float) -> "MGResult":
        """Times moved by ``dt`` seconds (window-relative -> absolute with the window's start)."""
        moved = tuple(MG(m.name, m.t_start + dt, m.t_end + dt, m.confidence, m.count) for m in self.present)
        return MGResult(moved, self.absent, self.not_observable)

    def to_jsonable(self) -> dict:
        """For messages and ``analyze --json`` (``from_jsonable`` reads it back)."""
        return {"present": [{"name": m.name, "t_start": round(m.t_start, 3), "t_end": round(m.t_end, 3),
                             "confidence": round(m.confidence, 3), "count": m.count} for m in self.present],
                "absent": list(self.absent), "not_observable": list(self.not_observable)}

    @classmethod
    def from_jsonable(cls, d: Mapping) -> "MGResult":
        return cls(tuple(MG(**m) for m in d.get("present", ())), tuple(d.get("absent", ())),
                   tuple(d.get("not_observable", ())))


class Detector(Protocol):
    """The interface every MG detector implements (geometric rules, learned classifier)."""

    def detect(self, joints: np.ndarray, confidence: np.ndarray, fps: float) -> MGResult: ...


def valid_joints(joints: np.ndarray, confidence: np.ndarray, min_confidence: float = 0.5) -> np.ndarray:
    """``ok [T, 17]``: the joint is usable in that frame (confident and finite)."""
    return (np.asarray(confidence) >= min_confidence) & np.isfinite(joints).all(axis=-1)


def observability(ok: np.ndarray) -> dict[str, list[bool]]:
    """For every MG and each of its alternatives (one entry when it has none): whether its joints
    and the MG's common joints are all valid in at least ``MIN_VALID_SHARE`` of the frames of
    ``ok [T, 17]``. Each frame's valid joints are one bit mask, so every check is one comparison."""
    bits = np.asarray(ok, dtype=np.int64) @ (1 << np.arange(ok.shape[1], dtype=np.int64))   # [T]
    seen = ((bits[:, None] & _GROUP_BITS) == _GROUP_BITS).sum(axis=0) >= max(1.0, len(ok) * MIN_VALID_SHARE)
    return {n: seen[i:j].tolist() for n, (i, j) in _GROUP_SLICES.items()}


def _groups() -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    """Every (MG, alternative) joint set as a bit mask ``[G]``, and each MG's slice of them."""
    bits, slices = [], {}
    for n, spec in VOCABULARY.items():
        start = len(bits)
        bits += [sum(1 << U[j] for j in set(spec.joints + g)) for g in spec.alternatives or ((),)]
        slices[n] = (start, len(bits))
    return np.array(bits, dtype=np.int64), slices


_GROUP_BITS, _GROUP_SLICES = _groups()


@dataclass(frozen=True)
class EventRules:
    """How per-frame decisions become events (any detector): gaps up to ``bridge_s`` are closed
    (tracking flicker), runs shorter than ``min_run_s`` dropped, and runs closer than
    ``merge_gap_s`` merged into one event whose ``count`` is its number of runs (touched the face
    twice). An event's confidence is the mean frame score over its runs, scaled down for events
    shorter than ``full_confidence_s`` in all."""
    bridge_s: float = 0.1
    min_run_s: float = 0.2
    merge_gap_s: float = 1.0
    full_confidence_s: float = 0.5

    def __post_init__(self) -> None:
        if min(self.bridge_s, self.min_run_s, self.merge_gap_s) < 0 or not self.full_confidence_s > 0:
            raise ValueError(f"EventRules: times must be >= 0 (full_confidence_s > 0), got {self}")

    def events(self, name: str, mask: np.ndarray, score: np.ndarray, fps: float,
               min_run_s: float | None = None) -> list[MG]:
        """``mask [T]`` (the MG in that frame), ``score [T]`` (0..1 per frame) -> events, in seconds
        from frame 0 (an event ends at its last frame's time)."""
        if not mask.any():
            return []
        d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
        runs: list[list[int]] = []
        for a, b in zip(np.nonzero(d == 1)[0].tolist(), (np.nonzero(d == -1)[0] - 1).tolist()):
            if runs and a - runs[-1][1] - 1 <= round(self.bridge_s * fps):
                runs[-1][1] = b
            else:
                runs.append([a, b])
        shortest = max(2, round((self.min_run_s if min_run_s is None else min_run_s) * fps))
        groups: list[list[list[int]]] = []
        for run in (r for r in runs if r[1] - r[0] + 1 >= shortest):
            if groups and (run[0] - groups[-1][-1][1]) / fps < self.merge_gap_s:
                groups[-1].append(run)
            else:
                groups.append([run])
        out = []
        for g in groups:
            frames = np.concatenate([np.arange(a, b + 1) for a, b in g])
            scale = min(1.0, len(frames) / fps / self.full_confidence_s)
            conf = float(np.clip(score[frames].mean() * scale, 0.0, 1.0))
            out.append(MG(name, g[0][0] / fps, g[-1][1] / fps, conf, len(g)))
        return out


def assemble(decisions: Mapping[str, tuple[np.ndarray, np.ndarray]], alive: Mapping[str, list[bool]],
             fps: float, rules: EventRules = EventRules(), min_run_s: Mapping[str, float] | None = None) -> MGResult:
    """A detector's frame decisions -> its result. ``decisions``: name -> (mask ``[T]``, score
    ``[T]`` 0..1) for the MGs it judged; ``alive``: ``observability(ok)``; ``min_run_s``: per-MG
    shortest run (else ``rules.min_run_s``). Present when an event survives the rules, absent when
    every alternative was observable, not observable otherwise; MGs without a decision are left
    out (their status is "unknown")."""
    present, absent, hidden = [], [], []
    for name in NAMES:
        if name not in decisions:
            continue
        mask, score = decisions[name]
        found = rules.events(name, mask, score, fps, (min_run_s or {}).get(name)) if any(alive[name]) else []
        if found:
            present += found
        else:
            (absent if all(alive[name]) else hidden).append(name)
    return MGResult(tuple(present), tuple(absent), tuple(hidden))


_COUNTS = {1: "once", 2: "twice"}


def count_words(n: int) -> str:
    return _COUNTS.get(n, f"{n} times")


def mg_phrases(result: MGResult) -> list[str]:
    """One phrase per present MG, in vocabulary order: its past tense, its count when repetitions
    are meaningful, and the spans of its events: "touched the face twice (0.4-0.9 s, 1.3-1.6 s)"."""
    out = []
    for name in NAMES:
        events = result.events(name)
        if events:
            spec = VOCABULARY[name]
            spans = ", ".join(f"{m.t_start:.1f}-{m.t_end:.1f} s" for m in events)
            counted = f" {count_words(result.count(name))}" if spec.counted else ""
            out.append(f"{spec.past}{counted} ({spans})")
    return out


def render_mgs(result: MGResult) -> str:
    """The prompt's MG line: the present MGs' phrases, "no micro-gestures" when none was present,
    then the names of those that could not be seen: "touched the face twice (0.4-0.9 s, 1.3-1.6 s);
    shrugged once (1.1-1.5 s); not observable: rub_hands, cross_hands". (Names, not words: "face
    touching" would read as a claim about the face.)"""
    hidden = [n for n in NAMES if n in result.not_observable]
    return "; ".join((mg_phrases(result) or ["no micro-gestures"])
                     + ([f"not observable: {', '.join(hidden)}"] if hidden else []))


@dataclass
class Tally:
    """Event-level matches for one MG: a detection is right when it overlaps a planted span of the
    same name; a planted span is found when a detection overlaps it."""
    detected: int = 0
    detected_right: int = 0
    planted: int = 0
    planted_found: int = 0

    @property
    def precision(self) -> float:
        return self.detected_right / self.detected if self.detected else float("nan")

    @property
    def recall(self) -> float:
        return self.planted_found / self.planted if self.planted else float("nan")


def tally(detected: Iterable[MG], planted: Iterable[Mapping], into: dict[str, Tally] | None = None,
          names: Sequence[str] = NAMES) -> dict[str, Tally]:
    """Add one clip's matches to ``into`` (per MG name). ``planted``: label dicts with ``name``,
    ``t_start``, ``t_end`` (the synthetic source's ``mgs`` labels), on the detections' time base."""
    out = into if into is not None else {n: Tally() for n in names}
    detected, planted = list(detected), list(planted)
    overlap = lambda a0, a1, b0, b1: a0 <= b1 and b0 <= a1   # noqa: E731
    for name in names:
        dets = [m for m in detected if m.name == name]
        spans = [(p["t_start"], p["t_end"]) for p in planted if p["name"] == name]
        t = out.setdefault(name, Tally())
        t.detected += len(dets)
        t.detected_right += sum(any(overlap(m.t_start, m.t_end, a, b) for a, b in spans) for m in dets)
        t.planted += len(spans)
        t.planted_found += sum(any(overlap(m.t_start, m.t_end, a, b) for m in dets) for a, b in spans)
    return out
