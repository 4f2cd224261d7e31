"""What each movement descriptor means in words: unit, label, and value bands with phrase templates.

One table serves three readers, so the words can never drift apart:
- ``descriptors`` phrases a measured value with the template of the band it falls in;
- ``grounding`` checks a claim ("walks slowly") against the value range of the bands it names;
- ``evidence_text`` picks label-characteristic descriptors by distance from a neutral reference.

Bands of one descriptor partition the real line (``lo <= v < hi``, ascending). Templates may use
``{a}``: the magnitude of the value with its unit (signs are carried by the words: "head lowered
25°" is pitch +25, "head raised 15°" is -15). Thresholds were set from the Bandai-Namco mocap clips
(emotion styles, 2 s windows) and everyday figures (walking 1.2-1.5 m/s, running > 2.5 m/s).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

INF = math.inf


@dataclass(frozen=True)
class Band:
    key: str        # "<descriptor>.<word>", the id grounding terms refer to
    lo: float
    hi: float
    template: str

    def holds(self, value: float, margin: float = 0.0) -> bool:
        return self.lo - margin <= value < self.hi + margin


@dataclass(frozen=True)
class Spec:
    name: str
    unit: str             # "" for unitless
    label: str            # human name, used in "insufficient data" phrases
    bands: tuple[Band, ...]
    margin: float         # tolerance for qualitative claims near a band edge (descriptor units)
    neutral: float        # a typical calm, neutral value (label cues measure distance from it)
    scale: float          # a typical spread (label cues divide by it)

    def __post_init__(self) -> None:
        edges = [(b.lo, b.hi) for b in self.bands]
        if edges[0][0] != -INF or edges[-1][1] != INF or any(a[1] != b[0] for a, b in zip(edges, edges[1:])):
            raise ValueError(f"bands of {self.name} must partition the real line in order: {edges}")

    def band(self, value: float) -> Band:
        return next(b for b in self.bands if b.holds(value))

    def band_by_key(self, key: str) -> Band:
        return next(b for b in self.bands if b.key == key)


def fmt(value: float, unit: str) -> str:
    """Magnitude with its unit, at the precision the grounding tolerance can check."""
    a = abs(value)
    if unit in ("°", "%"):
        return f"{a:.0f}{unit}"
    digits = 0 if a >= 10 else 1 if a >= 1 else 2
    return f"{a:.{digits}f} {unit}".rstrip()


def _spec(name: str, unit: str, label: str, cuts: list[float], words: list[tuple[str, str]],
          margin: float, neutral: float, scale: float) -> Spec:
    """``cuts`` are the inner band edges; ``words`` one (word, template) per band."""
    edges = [-INF, *cuts, INF]
    bands = tuple(Band(f"{name}.{w}", lo, hi, t) for (w, t), lo, hi in zip(words, edges, edges[1:]))
    return Spec(name, unit, label, bands, margin, neutral, scale)


SPECS: dict[str, Spec] = {s.name: s for s in (
    _spec("speed", "m/s", "body speed", [0.15, 0.4, 1.0, 1.6, 2.5],
          [("in_place", "staying in place ({a})"), ("shifting", "shifting position slowly ({a})"),
           ("slow", "slow walk ({a})"), ("walking", "walking pace ({a})"), ("fast", "fast walk ({a})"),
           ("running", "running pace ({a})")], 0.05, 0.8, 0.5),
    _spec("acceleration", "m/s²", "body acceleration", [1.0, 2.5],
          [("low", "little body acceleration ({a})"), ("moderate", "moderate body acceleration ({a})"),
           ("high", "abrupt body acceleration ({a})")], 0.15, 1.5, 0.8),
    _spec("activity", "m/s", "limb activity", [0.08, 0.3, 0.7],
          [("none", "almost no limb movement ({a})"), ("low", "little limb movement ({a})"),
           ("moderate", "moderate limb movement ({a})"), ("high", "vigorous limb movement ({a})")],
          0.04, 0.3, 0.2),
    _spec("hand_speed", "m/s", "hand speed", [0.15, 0.6, 1.5],
          [("still", "hands nearly still ({a})"), ("slow", "slow hand movements ({a})"),
           ("brisk", "brisk hand movements ({a})"), ("fast", "fast hand movements ({a})")], 0.05, 0.6, 0.5),
    _spec("foot_speed", "m/s", "foot speed", [0.15, 1.5],
          [("planted", "feet planted ({a})"), ("moving", "feet moving ({a})"),
           ("fast", "fast footwork ({a})")], 0.05, 0.8, 0.5),
    _spec("head_speed", "m/s", "head speed", [0.08, 0.3],
          [("steady", "head steady ({a})"), ("slight", "slight head movement ({a})"),
           ("quick", "quick head movements ({a})")], 0.03, 0.12, 0.08),
    _spec("jerk", "m/s³", "jerk", [30.0, 80.0],
          [("smooth", "smooth movement (jerk {a})"), ("abrupt", "somewhat abrupt movement (jerk {a})"),
           ("jerky", "jerky movement (jerk {a})")], 5.0, 30.0, 30.0),
    _spec("expansion", "m", "arm expansion", [0.25, 0.4],
          [("close", "arms close to the body ({a} from the torso)"),
           ("slight", "arms slightly away from the body ({a} from the torso)"),
           ("wide", "arms spread wide ({a} from the torso)")], 0.03, 0.25, 0.06),
    _spec("volume", "m³", "body volume", [0.15, 0.3],
          [("compact", "compact posture (body volume {a})"), ("medium", "medium body volume ({a})"),
           ("expansive", "expansive posture (body volume {a})")], 0.03, 0.2, 0.07),
    _spec("head_pitch", "°", "head pitch", [-10.0, 10.0],
          [("raised", "head raised {a}"), ("level", "head level"), ("lowered", "head lowered {a}")],
          4.0, 0.0, 12.0),
    _spec("trunk_lean", "°", "trunk lean", [-8.0, 8.0],
          [("back", "trunk leaning back {a}"), ("upright", "upright trunk"),
           ("forward", "trunk leaning forward {a}")], 3.0, 2.0, 6.0),
    _spec("arm_height", "m", "arm height", [-0.35, -0.1, 0.1],
          [("hanging", "arms hanging down (wrists {a} below the shoulders)"),
           ("mid", "a hand at chest or waist height ({a} below the shoulder)"),
           ("shoulder", "a hand near shoulder height"),
           ("raised", "a hand raised above the shoulder ({a} above)")], 0.04, -0.35, 0.15),
    _spec("arm_asymmetry", "", "arm symmetry", [-0.3, 0.3],
          [("left", "left arm more active than the right"), ("equal", "both arms equally active"),
           ("right", "right arm more active than the left")], 0.08, 0.0, 0.3),
    _spec("tempo", "Hz", "tempo", [0.01],
          [("none", "no clear rhythm"), ("rhythmic", "rhythmic movement at {a}")], 0.0, 1.0, 1.0),
    _spec("tempo_confidence", "", "rhythm strength", [0.5, 0.8],
          [("weak", "weak periodicity"), ("moderate", "moderately regular rhythm"),
           ("strong", "highly regular rhythm")], 0.08, 0.5, 0.3),
    _spec("stillness", "%", "stillness", [20.0, 70.0],
          [("moving", "moving almost continuously ({a} still)"), ("pausing", "pausing at times ({a} still)"),
           ("still", "mostly still ({a} of the time)")], 8.0, 10.0, 30.0),
    _spec("bounce", "cm", "vertical bounce", [3.0, 8.0],
          [("level", "little vertical bounce ({a})"), ("moderate", "moderate vertical bounce ({a})"),
           ("bouncy", "bouncy movement ({a} vertical bounce)")], 0.8, 2.5, 3.0),
    _spec("tremor", "mm", "tremor", [1.5, 4.0],
          [("none", "no tremor"), ("slight", "slight hand shake (tremor {a})"),
           ("trembling", "trembling hands (tremor {a})")], 0.4, 0.5, 1.5),
    _spec("speed_change", "m/s", "change of speed", [-0.2, 0.2],
          [("slowing", "slowing down by {a}"), ("steady", "steady pace"), ("faster", "speeding up by {a}")],
          0.05, 0.0, 0.2),
    _spec("activity_change", "m/s", "change of limb activity", [-0.15, 0.15],
          [("calming", "movement calming down (by {a})"), ("steady", "steady movement intensity"),
           ("intensifying", "movement intensifying (by {a})")], 0.04, 0.0, 0.15),
    _spec("expansion_change", "m", "change of arm expansion", [-0.05, 0.05],
          [("closing", "arms drawing in (by {a})"), ("steady", "arm spread unchanged"),
           ("opening", "arms opening out (by {a})")], 0.015, 0.0, 0.05),
    _spec("head_pitch_change", "°", "change of head pitch", [-8.0, 8.0],
          [("lifting", "head lifting by {a}"), ("steady", "head pitch steady"),
           ("dropping", "head dropping by {a}")], 3.0, 0.0, 8.0),
)}
NAMES: tuple[str, ...] = tuple(SPECS)


def phrase(name: str, value: float) -> str:
    """The phrase for a measured value; "<label>: insufficient data" for NaN."""
    spec = SPECS[name]
    if not math.isfinite(value):
        return f"{spec.label}: insufficient data"
    return spec.band(value).template.format(a=fmt(value, spec.unit))
