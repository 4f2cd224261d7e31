"""Instruction tuning on a tiny random llama: a few steps lower the loss, the checkpoint loads in
EmotionModel with its adapter, the cached prefix changes nothing but speed, and the resume state
leaves the frozen base out."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bodytalk.model.inference import EmotionModel
from bodytalk.model.llm.hf import SkeletonLLM
from bodytalk.train import baselines, config, data, instruct, warmstart


def tiny(base, *overrides: str) -> instruct.Config:
    return config.load(instruct.Config, "tiny_instruct", [f"llm.base={base}", "llm.dtype=float32", *overrides])


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, tiny_model_dir):  # noqa: F811
    cfg = tiny(tiny_model_dir, "optim.epochs=3", "instruct.adapter_dtype=bfloat16")
    return cfg, instruct.run(cfg, out=tmp_path_factory.mktemp("instruct") / "run")


def test_a_few_steps_lower_the_loss_on_both_tasks(tuned):
    _, out = tuned
    history = json.loads((out / "results.json").read_text())["history"]
    assert len(history) == 3 and history[0]["step"] == 2            # 16 windows, batch 8
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert {"train_rec_loss", "train_exp_loss", "windows_per_s", "test_llm_acc", "test_head_acc"} <= set(history[-1])


def test_checkpoint_loads_with_its_adapter_and_gives_probabilities(tuned):
    cfg, out = tuned
    model = EmotionModel.load(out / "checkpoint")
    assert model.llm is not None and model.llm.has_adapter
    assert model.meta["stage"] == "instruct" and model.meta["split"]["test"]
    saved = load_file(str(out / "checkpoint" / "adapter" / "adapter_model.safetensors"))
    assert saved and all(t.dtype == torch.bfloat16 for t in saved.values())   # adapter_dtype on disk
    windows, _, _, test = data.load_split(cfg.data, progress=False)
    readings = model.recognise(baselines.windows_of(test)[:4], path="llm")
    for r in readings:
        assert r.status == "ok" and sum(r.probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert set(r.probs) == set(windows.labels)
    # The saved adapter is the trained one: the loaded model scores as the stage's own evaluation did.
    held = warmstart.pick(test, cfg.instruct.eval_windows, cfg.seed)
    logged = json.loads((out / "results.json").read_text())["metrics"]["test_llm_acc"]
    assert instruct.recognition_scores(model, held)["test_llm_acc"] == pytest.approx(logged, abs=1 / len(held))


def _model(cfg, cache_prefix: bool) -> tuple[instruct.InstructModel, tuple]:
    windows, _, train, _ = data.load_split(cfg.data, progress=False)
    start = warmstart.start(None, windows.labels, dict(cfg.encoder), dict(cfg.projector), dict(cfg.llm), 0)
    llm = SkeletonLLM.load(start.cfg.llm)
    llm.add_lora()
    train = warmstart.pick(train, 4, 0)
    opts = instruct.InstructOptions(cache_prefix=cache_prefix)
    model = instruct.InstructModel(start.encoder, start.projector, llm, windows.labels,
                                   warmstart.evidence_of(train, start.cfg.mg_cues), opts).eval()
    items = warmstart.TaggedWindows(train, start.cfg.encoder.layouts, start.cfg.encoder.frames,
                                    version=start.cfg.encoder.features)
    return model, tuple(torch.stack(t) for t in zip(*(items[i] for i in range(len(items)))))


def test_cached_prefix_gives_the_losses_of_the_full_prompt(tiny_model_dir):  # noqa: F811
    cfg = tiny(tiny_model_dir)
    (full, batch), (cached, _) = _model(cfg, False), _model(cfg, True)
    cached.load_state_dict(full.state_dict())
    with torch.no_grad():
        a, b = full(*batch), cached(*batch)
    for key in ("loss", "rec_loss", "exp_loss"):
        assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4), key


def test_resume_state_holds_the_trained_parts_only(tiny_model_dir):  # noqa: F811
    model, batch = _model(tiny(tiny_model_dir), True)
    state = model.state_dict()
    assert any("lora_" in k for k in state) and any(k.startswith("projector.") for k in state)
    assert not [k for k in state if k.startswith("llm.") and "lora_" not in k]
    assert not model.load_state_dict(state).unexpected_keys
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("projector.") for n in trainable)
    loss = model.train()(*batch)["loss"]
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "lora_B" in n)
    assert np.isfinite(float(loss.detach()))


@pytest.mark.parametrize("metrics, path", [
    ({"test_head_acc": 0.8, "test_llm_acc": 0.9}, "llm"),
    ({"test_head_acc": 0.9, "test_llm_acc": 0.8}, "head"),
    ({"test_head_acc": 0.9, "test_llm_acc": 0.9}, "head"),              # a tie: the fast head
    ({"test_head_acc": 0.8, "test_llm_acc": float("nan")}, "head"),     # the LLM was not measured
    ({"test_head_acc": 0.8}, "head"),
    ({"test_head_acc": float("nan"), "test_llm_acc": 0.6}, "llm"),      # the head was not measured
    ({"test_llm_acc": 0.6}, "llm"),
    ({"test_head_acc": float("nan"), "test_llm_acc": float("nan")}, "head"),
    ({}, "head"),
])
def test_better_path_ignores_unmeasured_accuracies(metrics, path):
    assert instruct.better_path(metrics) == path


def test_head_prior_trains_the_llms_label_scores_on_top_of_the_heads(tiny_model_dir):  # noqa: F811
    model, batch = _model(tiny(tiny_model_dir, "projector.head_prior=true"), True)
    x, layout, label, index, _ = batch
    with torch.no_grad():
        out = model(*batch)
        enc = model.encoder(x, layout)
        n_exp = int(round(len(x) * model.opts.explain_share))
        scores = model._label_scores(model.projector(enc, model.features[index])[n_exp:], index[n_exp:])
        fused = scores.log_softmax(-1) + enc["logits"][n_exp:].log_softmax(-1)
        want = torch.nn.functional.cross_entropy(fused, label[n_exp:])
        alone = torch.nn.functional.cross_entropy(scores, label[n_exp:])
    assert float(out["rec_loss"]) == pytest.approx(float(want), rel=1e-4)
    assert float(want) != pytest.approx(float(alone), rel=1e-3)
