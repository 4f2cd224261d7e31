"""The label shift (``pretrain.label_shift``, ``train/label_shift.py``): the coverage bias, its
application to probabilities, and a tiny run whose saved head adds exactly that bias to its logits."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bodytalk.model import checkpoint
from bodytalk.model.encoder import EncoderConfig, SkeletonEncoder
from bodytalk.train import config, data, label_shift, pretrain
from bodytalk.train.windowset import Clip


def clip(label: str, content: str) -> Clip:
    return Clip(f"{label}-{content}", label, "unified", "d", {"content": content})


def test_a_label_seen_in_more_groups_gets_a_negative_bias_and_even_coverage_gets_none():
    clips = [clip("neutral", c) for c in "abcd"] + [clip("happy", "a"), clip("happy", "b"), clip("sad", "a"),
                                                    clip("sad", "b"), clip("sad", "b")]   # a second sad clip of b
    cover = label_shift.coverage(clips, ("happy", "neutral", "sad"), "content")
    assert cover.tolist() == [2, 4, 2]
    b = label_shift.bias(cover, 2.0)
    assert b[1] < 0 < b[0] == b[2] and abs(b.sum()) < 1e-12
    assert b[0] - b[1] == pytest.approx(2.0 * np.log(4 / 2))      # tau x the log coverage ratio
    assert not label_shift.bias(cover, 0.0).any()
    assert not label_shift.bias(np.array([3.0, 3.0, 3.0]), 5.0).any()
    assert label_shift.bias(np.array([0.0, 2.0, 4.0]), 1.0)[0] == 0      # an unseen label gets none
    with pytest.raises(ValueError, match=">= 0"):
        label_shift.bias(cover, -1.0)
    with pytest.raises(data.DatasetError, match="'body' is not a group of 9 clip.*the clips have: content"):
        label_shift.coverage(clips, ("happy",), "body")


def test_the_shift_adds_the_bias_to_the_logits_and_can_move_the_label():
    probs = np.array([[0.6, 0.3, 0.1], [np.nan, np.nan, np.nan]])
    b = np.array([-1.0, 0.5, 0.5])
    out = label_shift.shifted(probs, b)
    z = np.log(probs[0]) + b
    assert np.allclose(out[0], np.exp(z) / np.exp(z).sum()) and out[0].argmax() == 1
    assert np.isnan(out[1]).all()


def test_the_grid_parses_and_refuses_bad_values():
    assert label_shift.parse_grid("0,1,2.5") == (0.0, 1.0, 2.5)
    for bad in ("", "a", "-1,2", "1,1", "nan"):
        with pytest.raises(ValueError, match="--shift"):
            label_shift.parse_grid(bad)


def test_the_encoder_adds_its_head_bias_last_and_keeps_it_with_the_labels_it_keeps():
    cfg = EncoderConfig(num_labels=3, dim=16, members=2)
    torch.manual_seed(0)
    plain = SkeletonEncoder(cfg).eval()
    shifted = SkeletonEncoder(dataclasses.replace(cfg, head_bias=(1.0, -2.0, 0.5))).eval()
    shifted.load_state_dict(plain.state_dict())
    x, layouts = torch.randn(2, cfg.frames, 17, cfg.channels), torch.zeros(2, dtype=torch.long)
    with torch.no_grad():
        a, b = plain(x, layouts), shifted(x, layouts)
    assert torch.allclose(b["logits"] - a["logits"], torch.tensor([1.0, -2.0, 0.5]).expand(2, 3), atol=1e-5)
    assert torch.equal(a["member_logits"], b["member_logits"])     # each trunk's own head is untouched
    shifted.keep_labels([2, 0])
    assert shifted.cfg.head_bias == (0.5, 1.0)
    for bad in ((1.0,), (1.0, float("inf"), 0.0), ("x", 1, 2)):
        with pytest.raises(ValueError, match="head_bias"):
            EncoderConfig(num_labels=3, head_bias=bad)


def test_a_run_with_a_label_shift_saves_the_bias_of_its_training_clips(tmp_path):
    groups = ["data.split.kind=logo", "data.split.group=body", 'data.split.fold="3"', "optim.epochs=1"]
    run = lambda *o: pretrain.run(config.load(pretrain.Config, "tiny_pretrain", [*groups, *o]),   # noqa: E731
                                  out=tmp_path / str(len(o)))
    out = run("pretrain.label_shift=1.5", "pretrain.label_shift_group=body")
    model = checkpoint.load(out / "checkpoint")
    meta = model.meta["label_shift"]
    assert meta["tau"] == 1.5 and meta["group"] == "body"
    cover = np.array([meta["coverage"][lab] for lab in model.cfg.labels])
    assert cover.min() < cover.max()          # the training bodies show the labels unevenly
    assert np.allclose(model.encoder.cfg.head_bias, label_shift.bias(cover, 1.5))
    assert "test_acc_shifted" in model.meta["metrics"]
    plain = checkpoint.load(run() / "checkpoint")            # the same seed, no shift: the same weights
    assert plain.meta["label_shift"] is None and plain.encoder.cfg.head_bias == ()
    for k, v in plain.encoder.state_dict().items():
        assert torch.equal(v, model.encoder.state_dict()[k])
    with pytest.raises(data.DatasetError, match="label_shift_group 'content'"):
        run("pretrain.label_shift=1.0")
    with pytest.raises(ValueError, match="label_shift must be >= 0"):
        config.load(pretrain.Config, "tiny_pretrain", ["pretrain.label_shift=-1"])
