"""Micro-gestures: the vocabulary and result types, the geometric detector on synthetic clips with
planted MGs (found at the right time, none in neutral motion, not observable without the joints),
per-MG precision/recall over a batch, and MG claims in the grounding check."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bodytalk.capture import source
from bodytalk.capture.layouts import U
from bodytalk.capture.layouts_known import KINECT_V2
from bodytalk.capture.sources.synthetic.mg import MG_NAMES
from bodytalk.model.skeleton import descriptors as D
from bodytalk.model.text import evidence_text as E
from bodytalk.model.text import grounding as G
from bodytalk.model.text.claim_terms import MG_TERMS
from bodytalk.model.skeleton.mg_rules import RuleDetector, Thresholds, detect
from bodytalk.model.skeleton.microgestures import (MG, NAMES, VOCABULARY, EventRules, MGResult, Tally, assemble,
                                          observability, render_mgs, tally)

FPS = 30.0
STANDING = "&bodies=1&emotion=neutral&activity=standing"
WRISTS = [U["l_wrist"], U["r_wrist"]]
HANDS = ("fold_arms", "hands_on_hips", "touch_face", "cover_face", "touch_head", "touch_neck", "rub_hands",
         "cross_hands", "fidget")   # every MG whose alternatives all need a wrist or an ankle


def clip(uri: str) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Body 1 of a synthetic URI: unified joints ``[T, 17, 3]``, confidence ``[T, 17]`` and its
    planted MGs (each once, from the frame labels)."""
    with source.create(uri) as src:
        frames = list(src.frames())
    joints, conf = KINECT_V2.to_unified(np.stack([f.joints[0] for f in frames]),
                                       np.stack([f.confidence[0] for f in frames]))
    planted = {(m["name"], m["t_start"]): m for f in frames for m in f.labels[1].get("mgs", [])}
    return joints, conf, list(planted.values())


def finished(planted: list[dict], joints: np.ndarray) -> list[dict]:
    """The planted MGs over before the clip ends (the others cannot all be seen)."""
    return [p for p in planted if p["t_end"] < len(joints) / FPS]


def windowed(joints: np.ndarray, conf: np.ndarray, detector=None, length: int = 60, hop: int = 15) -> list[MG]:
    """Every detection in 2 s windows every 0.5 s (as the live pipeline sees them), in clip time."""
    run = (detector or RuleDetector()).detect
    return [m for s in range(0, len(joints) - length + 1, hop)
            for m in run(joints[s:s + length], conf[s:s + length], FPS).shifted(s / FPS).present]


def overlaps(m: MG, span: dict) -> bool:
    return m.t_start <= span["t_end"] and span["t_start"] <= m.t_end


def test_vocabulary_matches_the_synthetic_performer_and_the_claim_words():
    assert NAMES == MG_NAMES
    assert {t.mg for t in MG_TERMS} == set(NAMES)
    for spec in VOCABULARY.values():
        assert {"l_shoulder", "r_shoulder"} <= set(spec.joints)   # scale and facing come from them


@pytest.mark.parametrize("name", NAMES)
def test_each_planted_mg_is_found_at_its_time_and_nothing_else(name):
    joints, conf, planted = clip(f"synthetic:?mg={name}&mg_rate=0.5&duration=24&seed=3{STANDING}")
    assert len(planted) >= 2 and {p["name"] for p in planted} == {name}
    found = windowed(joints, conf)
    for span in finished(planted, joints):
        assert any(m.name == name and overlaps(m, span) for m in found), (span, found)
    assert {m.name for m in found} == {name}
    assert all(any(overlaps(m, span) for span in planted) for m in found)


@pytest.mark.parametrize("uri", [f"synthetic:?duration=20&seed=4{STANDING}",
                                 "synthetic:?bodies=1&emotion=neutral&duration=40&seed=5"])
def test_neutral_motion_standing_walking_and_gesturing_yields_none(uri):
    joints, conf, _ = clip(uri)
    assert windowed(joints, conf) == []
    result = detect(joints[:60], conf[:60], FPS)
    assert set(result.absent) == set(NAMES) and result.not_observable == ()


def test_too_short_or_shapeless_windows_show_nothing():
    for joints in (np.zeros((2, 17, 3)), np.zeros((60, 17, 3)), np.full((60, 17, 3), np.nan)):
        result = detect(joints, np.ones(joints.shape[:2]), FPS)
        assert result.present == () and result.absent == () and set(result.not_observable) == set(NAMES)
    with pytest.raises(ValueError, match="Layout.to_unified"):
        detect(np.zeros((60, 25, 3)), np.ones((60, 25)), FPS)


@pytest.fixture(scope="module")
def touches():
    return clip(f"synthetic:?mg=touch_face,fold_arms,shrug&mg_rate=0.5&duration=30&seed=14{STANDING}")


def test_missing_hands_or_head_make_their_mgs_not_observable_never_absent(touches):
    joints, conf, planted = touches
    assert {"touch_face", "fold_arms", "shrug"} <= {p["name"] for p in planted}
    shrug = next(p for p in planted if p["name"] == "shrug")
    s = int(shrug["t_start"] * FPS)
    no_hands = conf.copy()
    no_hands[:, WRISTS] = 0.0
    no_head = conf.copy()
    no_head[:, U["head"]] = 0.3
    nan_hands = joints.copy()
    nan_hands[:, WRISTS] = np.nan
    for x, c, hidden in ((joints, no_hands, HANDS), (nan_hands, conf, HANDS),
                         (joints, no_head, ("touch_face", "cover_face", "touch_head", "touch_neck"))):
        result = detect(x[s:s + 60], c[s:s + 60], FPS)
        assert set(result.not_observable) == set(hidden)
        assert [m.name for m in result.present] == ["shrug"]         # what is still seen is still judged
        for m in windowed(x, c):
            assert m.name not in hidden
    # One hand hidden, the other seen: a touch by the seen hand is present, no touch is not "absent".
    one = conf.copy()
    one[:, U["r_wrist"]] = 0.0
    results = [detect(joints[s:s + 60], one[s:s + 60], FPS) for s in range(0, len(joints) - 60, 15)]
    assert all(r.status("touch_face") in ("present", "not_observable") for r in results)
    assert all(r.status("fold_arms") == "not_observable" for r in results)   # needs both wrists
    assert all(r.status("shrug") in ("present", "absent") for r in results)


def test_detections_do_not_depend_on_body_size_place_or_heading(touches):
    joints, conf, _ = touches
    base = [(m.name, m.t_start, m.t_end, m.count) for m in detect(joints, conf, FPS).present]
    assert len(base) >= 3
    pelvis = joints[:, U["pelvis"]].mean(axis=0)
    yaw = np.radians(70.0)
    rot = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    for scale in (0.6, 1.3):
        moved = ((joints - pelvis) * scale) @ rot.T + pelvis + np.array([2.0, 0.0, -1.0])
        assert [(m.name, m.t_start, m.t_end, m.count) for m in detect(moved, conf, FPS).present] == base


def test_event_rules_bridge_flicker_drop_blips_and_count_repeats():
    rules = EventRules(bridge_s=0.1, min_run_s=0.2, merge_gap_s=1.0, full_confidence_s=0.5)
    mask = np.zeros(120, dtype=bool)
    mask[10:20] = mask[22:30] = True          # one touch with a 1-frame flicker gap
    mask[45:55] = True                        # a second touch 0.5 s later: same event, count 2
    mask[100:103] = True                      # a 0.1 s blip: dropped
    [event] = rules.events("touch_face", mask, np.full(120, 0.8), FPS)
    assert (event.t_start, event.t_end, event.count) == (10 / FPS, 54 / FPS, 2)
    assert event.confidence == pytest.approx(0.8)
    short = np.zeros(120, dtype=bool)
    short[0:8] = True
    [brief] = rules.events("shrug", short, np.ones(120), FPS)
    assert brief.confidence == pytest.approx(8 / FPS / 0.5)   # shorter than full_confidence_s
    assert rules.events("shrug", short, np.ones(120), FPS, min_run_s=0.4) == []
    with pytest.raises(ValueError):
        EventRules(min_run_s=-1.0)


def test_assemble_turns_any_detectors_frame_decisions_into_a_result():
    """What a learned detector does with per-frame probabilities."""
    T = 60
    prob = np.zeros(T)
    prob[20:40] = 0.9
    ok = np.ones((T, 17), dtype=bool)
    ok[:, U["r_wrist"]] = False
    decisions = {n: (prob > 0.5 if n in ("shrug", "touch_face") else np.zeros(T, bool), prob) for n in NAMES}
    decisions.pop("sway")
    r = assemble(decisions, observability(ok), FPS)
    assert [(m.name, m.t_start, m.count) for m in r.present] == [("touch_face", 20 / FPS, 1), ("shrug", 20 / FPS, 1)]
    assert r.present[0].confidence == pytest.approx(0.9)
    assert r.status("sway") == "unknown"
    assert set(r.not_observable) == {"touch_head", "touch_neck", "fold_arms", "cover_face", "hands_on_hips",
                                     "rub_hands", "cross_hands", "fidget"}   # a wrist hidden: never absent
    assert "lean_forward" in r.absent


def test_result_types_validate_and_serialise():
    with pytest.raises(ValueError, match="unknown micro-gesture"):
        MG("wave", 0.0, 1.0, 0.5)
    with pytest.raises(ValueError):
        MG("shrug", 1.0, 0.5, 0.5)
    with pytest.raises(ValueError, match="only one of"):
        MGResult(present=(MG("shrug", 0, 1, 0.9),), absent=("shrug",))
    r = MGResult((MG("shrug", 0.2, 0.8, 0.9, 2),), absent=("sway",), not_observable=("rub_hands",))
    assert [r.status(n) for n in ("shrug", "sway", "rub_hands", "fidget")] == \
        ["present", "absent", "not_observable", "unknown"]
    assert r.count("shrug") == 2 and r.count("sway") == 0
    assert r.shifted(10.0).present[0].t_start == pytest.approx(10.2)
    assert r.to_jsonable() == {"present": [{"name": "shrug", "t_start": 0.2, "t_end": 0.8, "confidence": 0.9,
                                            "count": 2}], "absent": ["sway"], "not_observable": ["rub_hands"]}
    assert MGResult.from_jsonable(r.to_jsonable()) == r
    with pytest.raises(ValueError, match="unknown"):
        MGResult(absent=("wave",))
    with pytest.raises(ValueError):
        Thresholds(min_confidence=0.0)
    t = tally([MG("shrug", 0, 1, 1), MG("shrug", 5, 6, 1)], [{"name": "shrug", "t_start": 0.5, "t_end": 2.0},
                                                              {"name": "sway", "t_start": 0, "t_end": 1}])
    assert (t["shrug"].precision, t["shrug"].recall, t["sway"].recall) == (0.5, 1.0, 0.0)
    assert math.isnan(Tally().precision)


RESULT = MGResult((MG("touch_face", 0.4, 0.9, 0.9), MG("touch_face", 1.3, 1.6, 0.8), MG("shrug", 1.1, 1.5, 0.9)),
                  absent=tuple(n for n in NAMES if n not in ("touch_face", "shrug", "rub_hands", "fold_arms")),
                  not_observable=("rub_hands", "fold_arms"))


def test_render_words_counts_spans_and_what_was_not_seen():
    assert render_mgs(RESULT) == ("touched the face twice (0.4-0.9 s, 1.3-1.6 s); shrugged once (1.1-1.5 s); "
                                  "not observable: fold_arms, rub_hands")
    assert render_mgs(MGResult(absent=NAMES)) == "no micro-gestures"
    d = D.Descriptors({"speed": 0.6}, 1.0)
    assert E.render(d, ("speed",), mgs=RESULT).startswith("slow walk (0.60 m/s); touched the face twice")
    assert E.render(d, ("speed",)) == "slow walk (0.60 m/s)"


@pytest.mark.parametrize("text, ok", [
    ("She touched the face twice.", True), ("He touches his face.", True), ("She shrugged.", True),
    ("She did not fidget.", True), ("No swaying.", True),
    ("She touched the face three times.", False),   # count must match
    ("She scratched her head.", False),             # observable, not detected
    ("He did not touch his face.", False),          # it was detected
    ("The arms were folded.", False),               # not observable: cannot be claimed ...
    ("She did not fold her arms.", False),          # ... either way
    ("She leaned forward.", False), ("She turned away once.", False),
])
def test_grounding_supports_detected_mgs_and_flags_the_rest(text, ok):
    d = D.Descriptors({}, 1.0)
    claims = G.claims(text, d, mgs=RESULT)
    assert claims and all(c.mg for c in claims) and all(c.supported == ok for c in claims), claims
    # Without an MG result the words are read as before: "face" cannot be seen in body joints.
    if "face" in text:
        assert not G.claims(text, d)[0].supported and G.claims(text, d)[0].mg is None


def test_rendered_evidence_and_template_explanations_stay_grounded_with_mgs(touches):
    joints, conf, _ = touches
    rng = np.random.default_rng(0)
    checked = 0
    for s in range(0, len(joints) - 60, 30):
        x, c = joints[s:s + 60], conf[s:s + 60]
        d, mgs = D.compute(x, c, FPS), detect(x, c, FPS)
        checked += bool(mgs.present)
        for text in [E.render(d, mgs=mgs), E.explain_template(d, "sad", rng, mgs=mgs), render_mgs(mgs)]:
            assert G.check(text, d, mgs=mgs) == [], text
    assert checked >= 3


def test_precision_and_recall_per_mg_over_a_batch_of_synthetic_clips():
    """Prints the table: python -m pytest tests/model/test_microgestures.py -k precision -s"""
    counts: dict[str, Tally] = {}
    for seed in range(12):
        joints, conf, planted = clip(f"synthetic:?mg=all&mg_rate=0.4&duration=60&seed={seed}{STANDING}")
        found = windowed(joints, conf)
        tally([m for m in found if not any(overlaps(m, p) for p in planted if p not in finished(planted, joints))],
              finished(planted, joints), counts)
    print("\nMG             detections  right  planted  found  precision  recall")
    for name, t in counts.items():
        print(f"{name:14s} {t.detected:10d} {t.detected_right:6d} {t.planted:8d} {t.planted_found:6d}"
              f" {t.precision:10.2f} {t.recall:7.2f}")
    assert sum(t.planted for t in counts.values()) >= 100
    for name, t in counts.items():
        assert t.planted == 0 or t.recall >= 0.8, (name, t)
        assert t.detected == 0 or t.precision >= 0.8, (name, t)
