"""The grounding check flags a claim that repeats or contradicts an earlier one about the same
quantity (even in other words), and the served text keeps only the first supported one."""
from __future__ import annotations

import pytest

from bodytalk.model.skeleton import descriptors as D
from bodytalk.model.text import grounding as G

# A real angry bow, as the demo model explained it before this check (issue 15).
BOW = ("Sad movement: arms close to the body (0.21 m from the torso), head lowered 10°, arms near the body "
       "(0.21 m from the torso), head slightly upright.")


def measured(**values: float) -> D.Descriptors:
    return D.Descriptors(values, 1.0)


BOWING = measured(expansion=0.21, head_pitch=10.0, trunk_lean=0.0)


def issues(text: str, d) -> list[tuple[str, str | None]]:
    return [(c.text, c.issue) for c in G.check(text, d)]


def test_the_demo_models_bow_explanation_is_caught_and_cleaned():
    assert issues(BOW, BOWING) == [("arms near the body", "repeated"), ("head slightly upright", "contradictory")]
    bad = {c.text: c.reason for c in G.check(BOW, BOWING)}
    assert bad["arms near the body"] == "repeats 'arms close to the body'"
    assert bad["head slightly upright"].startswith("contradicts 'head lowered'")
    assert G.filter_unsupported(BOW, BOWING) == \
        "Sad movement: arms close to the body (0.21 m from the torso), head lowered 10°."
    assert G.grounding_rate(BOW, BOWING) == 0.0


@pytest.mark.parametrize("text, d, later", [
    ("Slow walk (0.6 m/s). The person walks slowly.", measured(speed=0.6), "walks slowly"),
    ("Head lowered 25°, head bowed.", measured(head_pitch=25.0), "head bowed"),
    ("Trembling hands (tremor 6 mm); she is shaking.", measured(tremor=6.0), "shaking"),
    ("Mostly still (80% of the time), motionless.", measured(stillness=80.0), "motionless"),
])
def test_the_same_claim_in_other_words_is_repeated(text, d, later):
    assert issues(text, d) == [(later, "repeated")]


@pytest.mark.parametrize("text, d, later", [
    ("Arms close to the body, arms spread wide.", measured(expansion=0.2), "arms spread wide"),
    ("Fast hand movements, hands nearly still.", measured(hand_speed=1.8), "hands nearly still"),
    ("Head raised 15°; looking down.", measured(head_pitch=-15.0), "looking down"),
    ("Vigorous limb movement, barely moving.", measured(activity=0.9), "barely moving"),
    ("Running pace. Staying in place.", measured(speed=3.0), "Staying in place"),
    ("Not leaning back; trunk leaning back 10°.", measured(trunk_lean=0.0), "trunk leaning back"),
])
def test_opposite_directions_of_one_quantity_are_contradictory(text, d, later):
    assert (later, "contradictory") in issues(text, d)


def test_the_first_supported_claim_is_the_reference():
    """An unsupported first claim is dropped for itself; the later true one is kept."""
    d = measured(expansion=0.2)
    assert issues("Arms spread wide, arms close to the body.", d) == [("Arms spread wide", None)]
    assert G.filter_unsupported("Sad movement: arms spread wide, arms close to the body.", d) == \
        "Sad movement: arms close to the body."


@pytest.mark.parametrize("text, d", [
    ("Head lowered 25°, trunk leaning forward 10°, arms close to the body.",
     measured(head_pitch=25.0, trunk_lean=10.0, expansion=0.2)),
    ("Upright trunk, head lowered 10°.", measured(trunk_lean=0.0, head_pitch=10.0)),
    ("Slight hand shake (tremor 1.5 mm).", measured(tremor=1.5)),
    ("Head lowered 10°, head dropping by 5°.", measured(head_pitch=10.0, head_pitch_change=5.0)),
])
def test_different_quantities_and_measurement_labels_are_no_repeats(text, d):
    assert G.check(text, d) == []


def test_the_label_an_explanation_names_first():
    from bodytalk.model.text.evidence_text import named_label

    labels = ("angry", "happy", "not-confident", "sad")
    assert named_label("Sad movement: head lowered 10°.", labels) == "sad"
    assert named_label("Not confident movement: arms close to the body.", labels) == "not-confident"
    assert named_label("Looks happy, not sad.", labels) == "happy"
    assert named_label("Head lowered 10°.", labels) is None


def test_the_served_text_drops_them():
    """What the server's explainer publishes (``EmotionModel.ground``, as `eval --explain` grades it)."""
    from bodytalk.model.inference import EmotionModel

    kept, bad = EmotionModel.ground(BOW, BOWING)
    assert kept == "Sad movement: arms close to the body (0.21 m from the torso), head lowered 10°."
    assert [c.issue for c in bad] == ["repeated", "contradictory"]
