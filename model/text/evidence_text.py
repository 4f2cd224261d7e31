"""Descriptors in words: the evidence line of the LLM prompt, and template explanations for training.

``render(descriptors)`` -> "slow walk (0.60 m/s); head lowered 25°; ..." (the measured phrases, and
which descriptors lacked data, so the model is told rather than left to guess); with ``mgs=`` (a
micro-gesture result) the MG line follows: "...; touched the face twice (0.4-1.6 s)".

``explain_template(descriptors, label, rng)`` -> "sad: slow walk (0.60 m/s), head lowered 25°, arms
close to the body (0.21 m from the torso)." It cites the 2-4 descriptors that most support the
label (its ``reasons``: ``LABEL_CUES`` says which direction of which descriptor goes with which
label, or a checkpoint's cues learned from its training windows, ``cue_table``), else the most
salient ones, and then says that they are no reason. Every clause is a measured phrase, so every
target sentence is true of its window -- the grounding check passes on all of them by construction
(and the tests hold it to that). Grounded decoding (claim_guard.py) holds served explanations to
the same ``reasons``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from bodytalk.model.skeleton.descriptor_bands import SPECS
from bodytalk.model.skeleton.descriptors import Descriptor
from bodytalk.model.skeleton.microgestures import MGResult, mg_phrases, render_mgs

# The compact default for prompts: one phrase per aspect (the full list is ~2x longer).
PROMPT_NAMES: tuple[str, ...] = ("speed", "activity", "hand_speed", "jerk", "expansion", "head_pitch",
                                 "trunk_lean", "arm_height", "tempo", "stillness", "bounce", "tremor",
                                 "speed_change")
# Descriptors worth citing when the label's own cues are not there (the rest are finer detail).
SALIENT: tuple[str, ...] = ("speed", "head_pitch", "trunk_lean", "expansion", "arm_height", "activity",
                            "hand_speed", "jerk", "bounce", "stillness", "tempo")

# label -> (descriptor, direction): +1 higher than neutral supports the label, -1 lower, 0 close
# to neutral. From the emotion-and-body-movement literature (slow, low, closed for sadness; fast,
# bouncy, expansive for joy; abrupt, forward for anger; contracted, trembling for fear) and the
# Bandai-Namco styles (tired, proud, not-confident).
LABEL_CUES: dict[str, tuple[tuple[str, int], ...]] = {
    "neutral": (("trunk_lean", 0), ("head_pitch", 0), ("jerk", 0), ("arm_asymmetry", 0), ("activity", 0),
                ("speed", 0)),
    "happy": (("bounce", 1), ("activity", 1), ("hand_speed", 1), ("speed", 1), ("head_pitch", -1),
              ("arm_height", 1), ("expansion", 1), ("tempo_confidence", 1)),
    "sad": (("speed", -1), ("head_pitch", 1), ("activity", -1), ("expansion", -1), ("jerk", -1),
            ("arm_height", -1), ("trunk_lean", 1), ("bounce", -1)),
    "angry": (("jerk", 1), ("acceleration", 1), ("hand_speed", 1), ("activity", 1), ("trunk_lean", 1),
              ("foot_speed", 1), ("expansion", 1)),
    "fearful": (("tremor", 1), ("expansion", -1), ("volume", -1), ("trunk_lean", -1), ("head_pitch", 1),
                ("stillness", 1), ("jerk", 1)),
    "tired": (("speed", -1), ("head_pitch", 1), ("activity", -1), ("trunk_lean", 1), ("bounce", -1),
              ("arm_height", -1), ("jerk", -1), ("stillness", 1)),
    "proud": (("head_pitch", -1), ("trunk_lean", -1), ("expansion", 1), ("volume", 1), ("jerk", -1)),
    "not-confident": (("head_pitch", 1), ("expansion", -1), ("volume", -1), ("speed", -1), ("activity", -1),
                      ("hand_speed", -1), ("trunk_lean", 1)),
}
Cues = Mapping[str, Sequence[tuple[str, int]]]   # label -> its (descriptor, direction) cues, as LABEL_CUES
DIRECTION_MARKS = {1: "+", -1: "-", 0: "0"}      # a cue's direction as commands and reports print it
ALIASES = {"normal": "neutral", "calm": "neutral", "happiness": "happy", "joy": "happy", "sadness": "sad",
           "anger": "angry", "fear": "fearful", "afraid": "fearful", "scared": "fearful",
           "tiredness": "tired", "pride": "proud", "not_confident": "not-confident",
           "notconfident": "not-confident", "not confident": "not-confident"}
_OPENINGS = ("{label}: {evidence}.", "Looks {label}: {evidence}.", "{Label} movement: {evidence}.",
             "The movement reads as {label}: {evidence}.")
_UNSUPPORTED = "{Label} movement, though none of its usual cues was measured: {evidence}."
MIN_SUPPORT = 0.5   # cue strength (in descriptor scales) below which a cue is not cited as support


def render(descriptors: Mapping[str, Descriptor], names: Sequence[str] = PROMPT_NAMES,
           mgs: MGResult | None = None) -> str:
    """The phrases of ``names`` joined by "; ", then "insufficient data: ..." for those without data,
    then (given ``mgs``) the micro-gesture line (``microgestures.render_mgs``)."""
    valid = [descriptors[n].phrase for n in names if descriptors[n].valid]
    missing = [SPECS[n].label for n in names if not descriptors[n].valid]
    return "; ".join(valid + ([f"insufficient data: {', '.join(missing)}"] if missing else [])
                     + ([render_mgs(mgs)] if mgs is not None else []))


def citable(descriptors: Mapping[str, Descriptor], mgs: MGResult | None = None,
            label: str | None = None, cues: Cues = LABEL_CUES) -> list[str]:
    """Every phrase an explanation of this window may cite: each measured descriptor's phrase (given
    ``label``, only those of ``reasons`` for it), then (given ``mgs``) the detected micro-gestures'."""
    names = [n for n, d in descriptors.items() if d.valid] if label is None else reasons(descriptors, label, cues=cues)
    return [descriptors[n].phrase for n in names] + (mg_phrases(mgs) if mgs is not None else [])


def canonical_label(label: str) -> str:
    key = label.strip().lower()
    return ALIASES.get(key, key)


def cue_table(learned: Mapping[str, Sequence[tuple[str, int]]] | None = None) -> Cues:
    """The cues explanations use: ``LABEL_CUES``, where a checkpoint learned a label's cues from its
    training windows (``ModelConfig.label_cues``, train/label_cues.py) those instead."""
    return {**LABEL_CUES, **{canonical_label(k): tuple((n, int(d)) for n, d in v) for k, v in (learned or {}).items()}}


def support(descriptors: Mapping[str, Descriptor], label: str, cues: Cues = LABEL_CUES) -> dict[str, float]:
    """How strongly each measured descriptor supports ``label`` (> 0 supports), by its ``cues``."""
    out = {}
    for name, direction in cues.get(canonical_label(label), ()):
        d = descriptors[name]
        if d.valid:
            z = (d.value - SPECS[name].neutral) / SPECS[name].scale
            out[name] = 1.0 - abs(z) if direction == 0 else direction * z
    return out


def opening(label: str, supported: bool = True) -> str:
    """How a served explanation of ``label`` starts: "Sad movement:". Recognition decides the label;
    generation continues after this text (one of the training targets' openings), so the explanation
    always names the label it explains (left to itself, the 135M model often did not: README).
    Not ``supported`` (no measured descriptor of the window supports the label by its cues): "Sad
    movement, though none of its usual cues was measured:", so the salient phrases that follow are
    not read as reasons for it."""
    return (_OPENINGS[2] if supported else _UNSUPPORTED).split(" {evidence}")[0].format(**_label_forms(label))


def named_label(text: str, labels: Sequence[str]) -> str | None:
    """The label of ``labels`` that ``text`` names first (as explanations write it, any case), or None.
    How eval grades "names the label": the explanation must name the label it explains, not another."""
    found = []
    for label in labels:
        m = re.search(r"\b" + re.escape(_label_forms(label)["label"]) + r"\b", text, re.IGNORECASE)
        if m:
            found.append((m.start(), -len(m.group(0)), label))   # the longer name wins a tie
    return min(found)[2] if found else None


def _label_forms(label: str) -> dict[str, str]:
    """The label as explanations write it: {label} "not confident", {Label} "Not confident"."""
    shown = canonical_label(label).replace("-", " ")
    return {"label": shown, "Label": shown[:1].upper() + shown[1:]}


def supporting(descriptors: Mapping[str, Descriptor], label: str,
               rng: np.random.Generator | None = None, cues: Cues = LABEL_CUES) -> list[str]:
    """The measured descriptors that support ``label`` by its cues (``support`` >= ``MIN_SUPPORT``),
    strongest first. With ``rng``, near-ties vary (a small jitter in score units), for training
    diversity."""
    scores = support(descriptors, label, cues)
    if rng is not None:
        scores = {n: s + 0.1 * rng.standard_normal() for n, s in scores.items()}
    return [n for n, s in sorted(scores.items(), key=lambda e: -e[1]) if s >= MIN_SUPPORT]


def reasons(descriptors: Mapping[str, Descriptor], label: str, rng: np.random.Generator | None = None,
            cues: Cues = LABEL_CUES) -> list[str]:
    """The descriptors an explanation of ``label`` cites from, by name: its ``supporting`` ones,
    then, when fewer than two support it, the most salient others up to two (when the data allow)."""
    chosen = supporting(descriptors, label, rng, cues)
    salient = sorted((n for n in SALIENT if descriptors[n].valid and n not in chosen),
                     key=lambda n: -abs(descriptors[n].value - SPECS[n].neutral) / SPECS[n].scale)
    return chosen + salient[:max(0, 2 - len(chosen))]


def cited_support(text: str, descriptors: Mapping[str, Descriptor], label: str, cues: Cues = LABEL_CUES) -> list[str]:
    """The ``supporting`` descriptors of ``label`` whose measured phrase ``text`` cites: what eval
    counts as an explanation that says why (a true phrase that is no reason for the label, such as
    "slow walk" for *proud*, does not count)."""
    return [n for n in supporting(descriptors, label, cues=cues) if descriptors[n].phrase in text]


def explain_template(descriptors: Mapping[str, Descriptor], label: str, rng: np.random.Generator | None = None,
                     mgs: MGResult | None = None, cues: Cues = LABEL_CUES) -> str:
    """A one-sentence explanation of ``label`` citing 2-4 of its ``reasons`` (3, in a fixed wording,
    without ``rng``; with it the count, wording and near-tie order vary for training diversity),
    then, given ``mgs``, the detected micro-gestures' phrases (they stay true: grounding checks
    them against the same result)."""
    count = 3 if rng is None else int(rng.integers(2, 5))
    chosen = reasons(descriptors, label, rng, cues)[:count]
    forms = _label_forms(label)
    if not chosen:
        return f"{forms['label']}: not enough movement data in this window to say why."
    opening = _OPENINGS[0] if rng is None else _OPENINGS[int(rng.integers(len(_OPENINGS)))]
    if not supporting(descriptors, label, cues=cues):   # what follows is salient, not a reason: say so
        opening = _UNSUPPORTED
    evidence = ", ".join([descriptors[n].phrase for n in chosen] + (mg_phrases(mgs) if mgs is not None else []))
    return opening.format(**forms, evidence=evidence)


__all__ = ["PROMPT_NAMES", "LABEL_CUES", "render", "explain_template", "opening", "named_label", "support",
           "canonical_label", "citable", "supporting", "reasons", "cited_support", "cue_table", "Cues", "DIRECTION_MARKS"]
