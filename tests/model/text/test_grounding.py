"""Grounding check and evidence text: our own phrases always hold, planted false claims are caught."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bodytalk.model.skeleton import descriptors as D
from bodytalk.model.text import evidence_text as E
from bodytalk.model.text import grounding as G
from bodytalk.model.skeleton.descriptor_bands import NAMES, SPECS
from tests.model import motions as M

LABELS = tuple(E.LABEL_CUES) + ("normal", "childish")


def measured(**values: float) -> D.Descriptors:
    """Descriptors with the given values and insufficient data elsewhere."""
    return D.Descriptors(values, 1.0)


@pytest.fixture(scope="module")
def sad_window() -> D.Descriptors:
    """A slow walk (0.6 m/s), head lowered 25°, arms hanging close to the body."""
    x = M.place(M.walk(M.head_pitch(M.still(), 25.0), 0.6), yaw=140.0)
    return D.compute(x.astype(np.float32), M.confidence(x), M.FPS)


def unsupported(text: str, d) -> list[str]:
    return [c.text for c in G.check(text, d)]


def test_every_band_phrase_is_recognised_and_holds():
    for name, spec in SPECS.items():
        for band in spec.bands:
            lo, hi = max(band.lo, -1e3), min(band.hi, 1e3)
            for value in (lo + 0.01 * (hi - lo), (lo + hi) / 2, hi - 0.01 * (hi - lo)):
                d = measured(**{name: value})
                found = G.claims(d[name].phrase, d)
                assert found, f"{d[name].phrase!r} ({name}={value}) has no recognised claim"
                assert all(c.supported for c in found), (d[name].phrase, found)
                assert {c.descriptor for c in found} == {name}


def test_template_explanations_and_renders_are_true_of_random_windows():
    rng = np.random.default_rng(0)
    for _ in range(40):
        x, c = M.random_motion(rng)
        d = D.compute(x, c, M.FPS)
        for text in [E.render(d), E.render(d, NAMES)] + [E.explain_template(d, label, rng) for label in LABELS]:
            assert G.check(text, d) == [], text
            assert G.grounding_rate(text, d) == 1.0


def test_template_cites_label_cues_in_a_sentence():
    x = M.place(M.walk(M.head_pitch(M.still(), 25.0), 0.6), yaw=140.0)
    d = D.compute(x.astype(np.float32), M.confidence(x), M.FPS)
    text = E.explain_template(d, "sad")
    assert text.startswith("sad: ") and text.endswith(".")
    # The strongest sad cues of this window (0.6 m/s is close to a neutral walk, so not cited).
    assert text == ("sad: head lowered 25°, almost no limb movement (0.00 m/s), "
                    "arms hanging down (wrists 0.52 m below the shoulders).")
    rng = np.random.default_rng(1)
    counts = {len(G.sentences(E.explain_template(d, "sad", rng))) for _ in range(20)}
    assert counts == {1}


def test_reasons_are_the_labels_supporting_cues_then_salient_ones(sad_window):
    d = sad_window
    why = E.supporting(d, "sad")
    assert why[:3] == ["head_pitch", "activity", "arm_height"]       # strongest first, as the template cites
    assert all(E.support(d, "sad")[n] >= E.MIN_SUPPORT for n in why)
    assert E.reasons(d, "sad") == why                                # enough support: nothing else
    assert E.citable(d, label="sad") == [d[n].phrase for n in why]
    assert len(E.citable(d)) > len(why)                              # unlabelled: every measured phrase
    # Only its smoothness supports *proud* (head lowered, arms down): it, then the most salient other.
    assert E.supporting(d, "proud") == ["jerk"] and E.reasons(d, "proud") == ["jerk", "head_pitch"]
    assert E.explain_template(d, "proud").startswith("proud: ")
    # Nothing supports *happy*: the two most salient phrases, and the opening says they are no reason.
    assert E.supporting(d, "happy") == [] and len(E.reasons(d, "happy")) == 2
    text = E.explain_template(d, "happy")
    assert text.startswith("Happy movement, though none of its usual cues was measured: ") and G.check(text, d) == []
    assert E.opening("happy", supported=False) == "Happy movement, though none of its usual cues was measured:"
    assert E.named_label(text, LABELS) == "happy"
    assert E.reasons(measured(), "sad") == []


def test_cited_support_counts_only_phrases_that_support_the_label(sad_window):
    d = sad_window
    sad = E.explain_template(d, "sad")
    assert E.cited_support(sad, d, "sad") == ["head_pitch", "activity", "arm_height"]
    # The same true phrases are no reason for *happy*; a phrase that is not there counts for nothing.
    assert E.cited_support(sad, d, "happy") == []
    assert E.cited_support("Sad movement: head lowered 10°.", d, "sad") == []


def test_render_names_missing_data():
    d = measured(speed=0.6, head_pitch=25.0)
    assert E.render(d, ("speed", "head_pitch", "tremor")) == \
        "slow walk (0.60 m/s); head lowered 25°; insufficient data: tremor"
    assert E.explain_template(measured(), "sad") == "sad: not enough movement data in this window to say why."


@pytest.mark.parametrize("text", [
    "sad: slow walk (0.6 m/s), head lowered 25°, arms hanging close to the body.",
    "The person walks slowly with the head bowed.", "Looking downward.",
    "Walks at about 0.6 m/s; the head is lowered by roughly 25 degrees.", "Arms at her sides.",
    "No tremor, smooth movement.", "The person is not running.", "Not leaning back.", "Steady pace.",
])
def test_true_claims_hold(sad_window, text):
    assert G.claims(text, sad_window), text
    assert unsupported(text, sad_window) == []


@pytest.mark.parametrize("text, caught", [
    ("The person walks quickly.", ["walks quickly"]),
    ("Head raised, looking up.", ["Head raised", "looking up"]),
    ("Slow walk at 2.5 m/s.", ["2.5 m/s"]),
    ("Head lowered 45°.", ["45°"]),
    ("She is smiling.", ["smiling"]),
    ("He is crying and his fists are clenched.", ["crying", "fists", "clenched"]),
    ("Arms raised above the head.", ["Arms raised"]),
    ("Leaning forward, trembling.", ["Leaning forward", "trembling"]),
    ("Jerky, bouncy movement.", ["Jerky", "bouncy movement"]),
    ("The person is running.", ["running"]),
    ("Not walking.", ["walking"]),
    ("Arms spread wide.", ["Arms spread wide"]),
])
def test_planted_false_claims_are_caught(sad_window, text, caught):
    assert unsupported(text, sad_window) == caught
    assert G.grounding_rate(text, sad_window) == 0.0


def test_numbers_belong_to_the_claim_in_their_clause():
    d = measured(speed=0.6, hand_speed=1.6)
    assert unsupported("slow walk (0.6 m/s), fast hand movements (1.6 m/s).", d) == []
    assert unsupported("slow walk (1.6 m/s), fast hand movements (0.6 m/s).", d) == ["1.6 m/s", "0.6 m/s"]
    assert unsupported("Something moves at 1.6 m/s.", d) == []                  # any m/s descriptor may match
    assert unsupported("Something moves at 0.9 m/s.", d) == ["0.9 m/s"]
    assert unsupported("A 60 mm vertical bounce: bouncy.", measured(bounce=6.0)) == []
    assert unsupported("Bouncy movement (1.5 cm vertical bounce).", measured(bounce=6.0)) == \
        ["Bouncy movement", "1.5 cm"]


def test_tolerances():
    d = measured(speed=1.0, head_pitch=25.0)
    assert unsupported("Speed 1.19 m/s.", d) == [] and unsupported("Speed 1.25 m/s.", d) == ["1.25 m/s"]
    assert unsupported("Head lowered 29°.", d) == [] and unsupported("Head lowered 31°.", d) == ["31°"]


def test_claims_on_missing_data_are_unsupported():
    [claim] = G.check("The hands are trembling.", measured(speed=0.6))
    assert claim.descriptor == "tremor" and "insufficient data" in claim.reason
    assert claim.text == "trembling" and claim.start == 14 and claim.end == 23


def test_grounding_rate_counts_sentences(sad_window):
    text = "The person seems sad. They walk slowly. They are smiling. Head bowed 25°."
    assert G.grounding_rate(text, sad_window) == pytest.approx(0.75)
    assert G.grounding_rate("", sad_window) == 1.0
    assert G.grounding_rate("The person seems sad.", sad_window) == 1.0


def test_filter_drops_or_flags_unsupported_sentences(sad_window):
    text = "The person seems sad. They walk quickly.\nHead bowed."
    assert G.filter_unsupported(text, sad_window) == "The person seems sad. Head bowed."
    assert G.filter_unsupported(text, sad_window, mode="flag") == \
        "The person seems sad. They walk quickly. [unsupported: walk quickly] Head bowed."
    with pytest.raises(ValueError, match="drop"):
        G.filter_unsupported(text, sad_window, mode="delete")


@pytest.mark.parametrize("text,expected", [
    # cut by the token limit inside a number: the unfinished clause goes, the sentence is closed
    ("Angry: arms spread wide (0.44 m from the torso), brisk movement (1.5 m/",
     "Angry: arms spread wide (0.44 m from the torso)."),
    ("Sad. Head lowered 17°; trunk leaning forward 10°; arms hanging down (wri",
     "Sad. Head lowered 17°; trunk leaning forward 10°."),
    ("Sad: head lowered 17°.", "Sad: head lowered 17°."),                 # finished: untouched
    ("  Sad: slow walk (0.6 m/s)!  ", "Sad: slow walk (0.6 m/s)!"),
    ("Sad. Head lowered 1", "Sad. Head lowered 1"),                       # no clause boundary: kept
    ("", ""),
    (" ,; ", ""),
    # stopped right after a clause boundary: the clause before it is complete
    ("Sad: head lowered 17°, arms close to the body, ", "Sad: head lowered 17°, arms close to the body."),
    ("Sad: head lowered 17°;", "Sad: head lowered 17°."),
    ("Sad:", "Sad."),
    ("Sad: head lowered 17°.,", "Sad: head lowered 17°."),
    # a final mark followed by a closing bracket or quote, or an ellipsis, is finished
    ("Sad: head bowed, arms close (0.2 m from the body.)", "Sad: head bowed, arms close (0.2 m from the body.)"),
    ('She said, "I am sad."', 'She said, "I am sad."'),
    ("Sad, ‘head bowed.’", "Sad, ‘head bowed.’"),
    ("Sad, «head bowed!»", "Sad, «head bowed!»"),
    ("Sad, or maybe tired…", "Sad, or maybe tired…"),
    # commas inside parentheses are not clause boundaries
    ("Angry: fast, arms spread wide (0.44 m, 12 cm abo", "Angry: fast."),
    ("Angry: arms spread wide (0.44 m, 12 cm abo", "Angry: arms spread wide (0.44 m, 12 cm abo"),
    ("Angry: arms wide (0.44 m, 0.3 m), hands fast (1.6 m/s, jer", "Angry: arms wide (0.44 m, 0.3 m)."),
    ("Sad: head bowed; arms (0.4 m,", "Sad: head bowed."),
    # a full stop inside an unclosed parenthesis is a cut-off number, not a sentence end
    ("Sad: head bowed, brisk movement (1.", "Sad: head bowed."),
    ("Sad... Head bowed, brisk movement (1.5 m/", "Sad... Head bowed."),
])
def test_unfinished_clauses_are_trimmed(text, expected):
    assert G.trim_unfinished(text) == expected


def test_a_cut_off_number_is_not_served_as_a_claim(sad_window):
    from bodytalk.model.inference import EmotionModel

    text = "Sad: head bowed, arms close to the body, moving quickly (1.5 m/"
    served, unsupported = EmotionModel.ground(text, sad_window)
    assert served == "Sad: head bowed, arms close to the body." and unsupported == []
    assert G.check(text, sad_window)                                     # untrimmed, the fragment fails


def test_sentences_do_not_split_inside_numbers():
    text = "Speed 0.6 m/s. Head lowered 25°!  Done"
    assert [text[a:b].strip() for a, b in G.sentences(text)] == ["Speed 0.6 m/s.", "Head lowered 25°!", "Done"]


def test_label_support_directions():
    d = measured(speed=0.3, head_pitch=30.0, bounce=12.0)
    s = E.support(d, "Sadness")
    assert s["speed"] > 0 and s["head_pitch"] > 0 and math.isclose(s["bounce"], -(12.0 - 2.5) / 3.0)
    assert E.support(d, "happy")["bounce"] > 0 and E.support(d, "happy")["head_pitch"] < 0
    assert E.support(d, "unknown-style") == {}


def test_filter_drops_only_the_unsupported_clauses_of_an_explanation(sad_window):
    """"<emotion>: <evidence>, <evidence>.": a wrong number costs its clause, not the explanation."""
    text = "Sad movement: head bowed, walking quickly (2.0 m/s), arms close (0.2 m, both sides)."
    assert G.check(text, sad_window)                                      # "walking quickly" is wrong
    assert G.filter_unsupported(text, sad_window) == "Sad movement: head bowed, arms close (0.2 m, both sides)."
    assert G.filter_unsupported("Sad movement: walking quickly.", sad_window) == ""   # nothing left to say
    assert G.filter_unsupported("Walking quickly: head bowed.", sad_window) == ""     # the claim is the head
