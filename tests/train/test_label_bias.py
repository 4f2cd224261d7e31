"""The LLM's label-word bias: the instruct stage measures it on training windows and stores it,
serving takes it out of the LLM's label scores, `bodytalk label-bias` (re)measures or removes it,
and a corrupt one in a checkpoint is refused in one line."""
from __future__ import annotations

import dataclasses
import json
import math
import shutil

import pytest
import torch

from bodytalk.cli import main as cli
from bodytalk.model import checkpoint
from bodytalk.model.inference import EmotionModel
from bodytalk.train import baselines, config, data, instruct, label_bias, warmstart
from bodytalk.train.splits import Split


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, tiny_model_dir):  # noqa: F811
    cfg = config.load(instruct.Config, "tiny_instruct", [f"llm.base={tiny_model_dir}", "llm.dtype=float32",
                                                          "optim.epochs=1", "instruct.label_bias_windows=3"])
    return cfg, instruct.run(cfg, out=tmp_path_factory.mktemp("label_bias") / "run") / "checkpoint"


def test_the_instruct_stage_stores_a_centred_bias_measured_on_training_windows(calibrated):
    cfg, ckpt = calibrated
    model = EmotionModel.load(ckpt, int8=False)
    bias = model.cfg.label_bias
    assert bias is not None and len(bias) == len(model.labels) and all(map(math.isfinite, bias))
    assert sum(bias) == pytest.approx(0.0, abs=1e-3)       # centred scores average to a centred bias
    assert any(abs(b) > 1e-3 for b in bias)                 # a random tiny LLM has word preferences
    # the same measurement again, from the windows the checkpoint records as its training side
    train = label_bias.training_windows(model)
    assert set(train.counts()) == set(Split.from_dict(model.meta["split"]).train)
    assert label_bias.measure(model, train, 3, cfg.seed) == pytest.approx(bias, abs=1e-3)


def test_the_stage_records_the_held_out_score_of_the_path_it_serves(calibrated):
    cfg, ckpt = calibrated
    model = EmotionModel.load(ckpt, int8=False)
    metrics = json.loads((ckpt.parent / "results.json").read_text())["metrics"]
    assert {"test_llm_acc", "test_head_acc", "test_llm_acc_without_label_bias"} <= set(metrics)
    _, _, _, test = data.load_split(cfg.data, progress=False)
    held = warmstart.pick(test, cfg.instruct.eval_windows, cfg.seed)
    scores = instruct.recognition_scores(model, held)   # the checkpoint as saved: the bias taken out
    assert scores["test_llm_acc"] == pytest.approx(metrics["test_llm_acc"], abs=1 / len(held))
    assert model.meta["label_path"] == instruct.better_path(metrics)


def test_served_label_probabilities_take_the_bias_out_of_the_llms_scores(calibrated):
    cfg, ckpt = calibrated
    model = EmotionModel.load(ckpt, int8=False)
    _, _, _, test = data.load_split(cfg.data, progress=False)
    p = model.prepare(baselines.windows_of(test)[:4])
    enc, tokens = model.encode(p)
    lines = [model.evidence_line(d, m) for d, m in zip(p.evidence, p.mgs)]
    bias = torch.tensor(model.cfg.label_bias)
    with_bias = model.label_probs(tokens, lines, enc["logits"], "llm")
    model.cfg = dataclasses.replace(model.cfg, label_bias=None)
    without = model.label_probs(tokens, lines, enc["logits"], "llm")
    shift = (with_bias.log() - without.log()) + bias
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-4)   # -bias, up to a constant per row
    assert not torch.allclose(with_bias, without, atol=1e-4)


def test_the_command_measures_and_removes_the_bias(calibrated, tmp_path, capsys):
    _, ckpt = calibrated
    copy = shutil.copytree(ckpt, tmp_path / "ckpt")
    assert cli(["label-bias", str(copy), "--per-label", "0"]) == 0
    assert checkpoint.load(copy).cfg.label_bias is None
    assert cli(["label-bias", str(copy), "--per-label", "3", "--seed", str(calibrated[0].seed)]) == 0
    assert checkpoint.load(copy).cfg.label_bias == pytest.approx(checkpoint.load(ckpt).cfg.label_bias, abs=1e-3)
    assert "label bias" in capsys.readouterr().out


def test_the_command_refuses_a_missing_checkpoint_in_one_line(tmp_path, caplog):
    assert cli(["label-bias", str(tmp_path / "nothing")]) == 2
    assert "no config.json" in caplog.text and "Traceback" not in caplog.text


@pytest.mark.parametrize("bad", [
    lambda n: [0.1] * (n - 1),              # one short
    lambda n: [float("nan")] * n,
    lambda n: [1e9] + [0.0] * (n - 1),      # beyond any measurement
    lambda n: "a" * n,                      # a string of the right length
    lambda n: [{"a": 1}] + [0.0] * (n - 1),
    lambda n: 5,
    lambda n: [10 ** 400] + [0] * (n - 1),  # a JSON integer float() cannot hold
])
def test_a_corrupt_bias_in_a_checkpoint_is_refused(calibrated, tmp_path, bad):
    _, ckpt = calibrated
    copy = shutil.copytree(ckpt, tmp_path / "ckpt")
    doc = json.loads((copy / "config.json").read_text())
    doc["config"]["label_bias"] = bad(len(doc["config"]["labels"]))
    (copy / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="label_bias must hold"):
        checkpoint.load(copy)
    checkpoint.replace_config(copy, label_bias=None)   # what `bodytalk label-bias --per-label 0` does
    assert checkpoint.load(copy).cfg.label_bias is None


def test_an_encoder_only_checkpoint_is_refused_in_one_line(calibrated, tmp_path, caplog):
    _, ckpt = calibrated
    copy = shutil.copytree(ckpt, tmp_path / "ckpt")
    checkpoint.replace_config(copy, llm=None)
    assert cli(["label-bias", str(copy)]) == 2
    assert "encoder-only" in caplog.text and "Traceback" not in caplog.text


def test_a_checkpoint_without_a_split_is_not_measured(calibrated, tmp_path, caplog):
    _, ckpt = calibrated
    copy = shutil.copytree(ckpt, tmp_path / "ckpt")
    doc = json.loads((copy / "config.json").read_text())
    del doc["meta"]["split"]
    (copy / "config.json").write_text(json.dumps(doc))
    assert cli(["label-bias", str(copy)]) == 2
    assert "records no split" in caplog.text
