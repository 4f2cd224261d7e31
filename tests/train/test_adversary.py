"""The group adversary (``pretrain.adversary``): the reversed gradient, the group index, and a tiny
run that trains it beside the label head and saves the encoder alone."""
from __future__ import annotations

import json

import pytest
import torch

from bodytalk.model import checkpoint
from bodytalk.train import adversary, config, data, pretrain


def tiny(*overrides: str) -> pretrain.Config:
    return config.load(pretrain.Config, "tiny_pretrain", list(overrides))


def test_the_reversal_passes_values_and_sends_the_trunk_the_scaled_negative_gradient():
    x = torch.randn(4, 3, requires_grad=True)
    y = adversary._Reverse.apply(x, 0.3)
    assert torch.equal(y, x)
    (y * torch.arange(3.0)).sum().backward()
    assert torch.allclose(x.grad, -0.3 * torch.arange(3.0).expand(4, 3))


def test_the_group_index_names_each_windows_group_and_refuses_a_missing_one():
    windows = data.load(tiny().data, progress=False)
    index, values = adversary.group_index(windows, "body")
    assert len(values) == 3 and index.shape == (len(windows),)
    assert all(values[g] == windows.clips[c].groups["body"] for g, c in zip(index, windows.clip))
    with pytest.raises(data.DatasetError, match="'content' is not a group .* the clips have: body"):
        adversary.group_index(windows, "content")


def test_the_adversary_is_a_supervised_option_with_a_non_negative_scale():
    with pytest.raises(ValueError, match="adversary"):
        tiny("pretrain.adversary=-1")
    with pytest.raises(ValueError, match="adversary"):
        tiny("pretrain.adversary=0.5", "pretrain.recipe=stb", "pretrain.augment.policy=mg")


def test_an_adversary_trains_beside_the_head_of_every_trunk_and_the_checkpoint_holds_the_encoder_alone(tmp_path):
    ens = ("encoder.features=2", "encoder.arch=tcn", "encoder.strides=[1,2,1,2]", "encoder.time_chunks=3",
           "encoder.temporal_kernel=5", "encoder.part_width=8", "encoder.members=2")
    out = pretrain.run(tiny(*ens, "pretrain.adversary=0.5", "pretrain.adversary_group=body"), out=tmp_path / "adv")
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= h["train_group_acc"] <= 1 and h["train_group_loss"] > 0 for h in history)
    assert 0 <= history[-1]["test_acc"] <= 1
    plain = pretrain.run(tiny(*ens), out=tmp_path / "plain")
    with_adv, without = checkpoint.load(out / "checkpoint"), checkpoint.load(plain / "checkpoint")
    assert with_adv.encoder.state_dict().keys() == without.encoder.state_dict().keys()
    # the classifiers changed the trunks: the same seed without them gives other weights
    assert not torch.equal(with_adv.encoder.state_dict()["head.weight"], without.encoder.state_dict()["head.weight"])
    with pytest.raises(data.DatasetError, match="adversary_group 'content'"):
        pretrain.run(tiny(*ens, "pretrain.adversary=0.5"), out=tmp_path / "bad")
