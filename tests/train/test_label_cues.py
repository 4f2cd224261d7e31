"""Explanation cues learned from training windows (train/label_cues.py): what they find, how a
checkpoint holds them (untrusted), and that serving, eval's grading and the training targets cite them."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from bodytalk.model import checkpoint
from bodytalk.model.checkpoint import ModelConfig
from bodytalk.model.skeleton import descriptors as D
from bodytalk.model.skeleton.descriptor_bands import SPECS
from bodytalk.model.text import evidence_text as E
from bodytalk.train import align, config, instruct, label_cues, warmstart

LABELS = ("neutral", "excited", "low", "fast-content")


def _window(speed: float, head: float) -> D.Descriptors:
    return D.Descriptors({"speed": speed, "head_pitch": head}, 1.0)   # the rest: not measured


def _data():
    """Two contents: a slow one and a fast one (neutral 0.5 and 2.0 m/s). *excited* is three speed scales
    faster than neutral; *low* holds the head four scales lower; *fast-content* is
    only ever performed in the fast content, as fast as its neutral: no cue of its own."""
    s, h = SPECS["speed"].scale, SPECS["head_pitch"].scale
    rows = []
    for group, base in (("slow", 0.5), ("fast", 2.0)):
        rows += [("neutral", group, _window(base, 0.0))] * 3
        rows += [("excited", group, _window(base + 3 * s, 0.0))] * 3
        rows += [("low", group, _window(base, 4 * h))] * 3
    rows += [("fast-content", "fast", _window(2.0, 0.0))] * 3
    labels = np.array([LABELS.index(r[0]) for r in rows])
    return [r[2] for r in rows], labels, [r[1] for r in rows]


def test_cues_are_learned_against_the_other_labels_within_each_content():
    measured, labels, groups = _data()
    cues = label_cues.learn(measured, labels, LABELS, groups)
    assert cues["excited"][0] == ("speed", 1) and cues["low"][0] == ("head_pitch", 1)   # largest effect first
    # What sets a label apart from the others, not from neutral: neutral is slower than *excited*'s
    # content-mates and holds its head higher than *low*'s, so it gets cues of its own too.
    assert dict(cues["neutral"]) == {"speed": -1, "head_pitch": -1}
    assert "fast-content" not in cues or ("speed", 1) not in cues["fast-content"]
    # Pooled over contents, the fast content alone would give *fast-content* a speed cue it does not have.
    pooled = label_cues.learn(measured, labels, LABELS, [""] * len(groups))
    assert ("speed", 1) in pooled["fast-content"]
    assert label_cues.learn(measured, labels, LABELS, groups, min_effect=50.0) == {}
    assert label_cues.learn(measured, labels, LABELS, groups, per_label=1)["neutral"] == (("head_pitch", -1),)
    with pytest.raises(ValueError, match="per_label"):
        label_cues.learn(measured, labels, LABELS, groups, per_label=0)


def test_a_checkpoint_holds_only_well_formed_cues():
    cfg = ModelConfig.create(labels=LABELS, hidden=32, with_llm=False)
    ok = dataclasses.replace(cfg, label_cues={"excited": [["speed", 1], ["jerk", -1]], "low": []})
    assert ok.label_cues == {"excited": (("speed", 1), ("jerk", -1)), "low": ()}
    assert ModelConfig.from_dict(json.loads(json.dumps(ok.to_dict()))) == ok          # config.json round trip
    for bad in ({"angry": [["speed", 1]]}, {"excited": [["sped", 1]]}, {"excited": [["speed", 2]]},
                {"excited": [["speed", True]]}, {"excited": [["speed", 1], ["speed", -1]]},
                {"excited": "speed"}, ["speed"], {"excited": [["speed"]]}, {"excited": [["speed", 1]] * 99}):
        with pytest.raises(ValueError, match="label_cues") as err:
            dataclasses.replace(cfg, label_cues=bad)
        assert "\n" not in str(err.value)


def test_learned_cues_replace_the_literatures_and_give_a_custom_label_its_reasons():
    table = E.cue_table({"sad": (("speed", 1),), "excited": (("head_pitch", -1),)})
    assert table["sad"] == (("speed", 1),) and table["happy"] == E.LABEL_CUES["happy"]
    d = _window(0.5, -30.0)   # slow, head raised
    assert E.supporting(d, "excited") == [] and E.supporting(d, "excited", cues=table) == ["head_pitch"]
    text = E.explain_template(d, "excited", cues=table)
    assert text.startswith("excited: ") and d["head_pitch"].phrase in text
    assert E.explain_template(d, "excited").startswith("Excited movement, though none of its usual cues")


def test_serving_cites_the_checkpoints_learned_cues(tiny_emotion_model):
    from bodytalk.model.inference import EmotionModel
    from tests.model.motions import random_motion
    from bodytalk.model.skeleton.features import WindowInput

    base = tiny_emotion_model(0)
    window = WindowInput(*random_motion(np.random.default_rng(6)), fps=30.0, layout="kinect_v2")
    d = base.prepare([window]).evidence[0]
    name = next(n for n in ("activity", "hand_speed", "speed", "jerk") if d[n].valid)
    z = (d[name].value - SPECS[name].neutral) / SPECS[name].scale
    learned = {"fearful": ((name, 1 if z > 0 else -1),)}       # a cue this window shows strongly
    model = EmotionModel(dataclasses.replace(base.cfg, label_cues=learned), base.encoder, base.projector,
                         base.llm, base.meta)
    assert abs(z) >= E.MIN_SUPPORT
    (text, bad), = model.explain([window], ["fearful"], drop_unsupported=False)
    assert bad == [] and text.startswith("Fearful movement: " + d[name].phrase)   # the first claim is the reason


def test_align_learns_cues_and_the_next_stage_and_the_command_keep_them(tmp_path, tiny_model_dir, capsys):
    cfg = config.load(align.Config, "tiny_align", [f"llm.base={tiny_model_dir}", "llm.dtype=float32",
                                                   "align.text_encoder=llm", "optim.epochs=1", "align.learn_cues=true"])
    ck_dir = align.run(cfg, out=tmp_path / "a") / "checkpoint"
    learned = checkpoint.load(ck_dir).cfg.label_cues
    assert learned and all(cues for cues in learned.values())
    start = warmstart.start(str(ck_dir), checkpoint.load(ck_dir).cfg.labels, {}, {}, {}, seed=0)
    assert start.cfg.label_cues == learned                               # instruct writes targets from them
    tuned = instruct.run(config.load(instruct.Config, "tiny_instruct", [
        f"llm.base={tiny_model_dir}", "llm.dtype=float32", f"init={ck_dir}", "optim.epochs=1"]), out=tmp_path / "i")
    assert checkpoint.load(tuned / "checkpoint").cfg.label_cues == learned   # and the served model has them
    assert label_cues.main([str(ck_dir), "--literature"]) == 0
    assert checkpoint.load(ck_dir).cfg.label_cues is None
    assert label_cues.main([str(ck_dir)]) == 0                           # the same training windows: the same cues
    assert checkpoint.load(ck_dir).cfg.label_cues == learned
    assert "cues learned from" in capsys.readouterr().out
    from bodytalk.model.serving import inspect as model_cli
    assert model_cli.main(["info", str(ck_dir)]) == 0                    # `bodytalk model info` shows them
    label, cues = next(iter(learned.items()))
    shown = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("explanation cues"))
    assert f"{label}: {cues[0][0]} {'+' if cues[0][1] > 0 else '-'}" in shown
    assert label_cues.main([str(tmp_path / "missing")]) == 2
