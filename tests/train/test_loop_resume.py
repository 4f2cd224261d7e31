"""Resume: a run interrupted after epoch 1 of 3 and started again ends with exactly the weights of
an uninterrupted run (augmentation and dropout included); a changed config is refused."""
from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from bodytalk.train import config, pretrain
from bodytalk.train.config import ConfigError

OVERRIDES = ["optim.epochs=3", "optim.milestones=[2]", "pretrain.augment.policy=standard"]


def tiny(*more: str) -> pretrain.Config:
    return config.load(pretrain.Config, "tiny_pretrain", OVERRIDES + list(more))


def weights(out):
    return load_file(str(out / "checkpoint" / "encoder.safetensors"))


def stop_after_first_epoch(epoch: int, metrics: dict) -> None:
    if epoch == 0:
        raise KeyboardInterrupt


def test_resume_after_an_interruption_gives_the_uninterrupted_weights(tmp_path):
    whole = pretrain.run(tiny(), out=tmp_path / "whole")

    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        pretrain.run(tiny(), out=cut, on_epoch_end=stop_after_first_epoch)
    assert not (cut / "checkpoint").exists()
    assert len((cut / "metrics.jsonl").read_text().splitlines()) == 1
    pretrain.run(tiny(), out=cut)  # same command again: resumes at epoch 2

    a, b = weights(whole), weights(cut)
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] == b[name]).all(), name
    lines = [json.loads(x) for x in (cut / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2, 3]
    ref = [json.loads(x) for x in (whole / "metrics.jsonl").read_text().splitlines()]
    assert [m["train_loss"] for m in lines] == [m["train_loss"] for m in ref]


def test_resuming_with_another_config_is_refused(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        pretrain.run(tiny(), out=out, on_epoch_end=stop_after_first_epoch)
    with pytest.raises(ConfigError, match="different config.*optim.lr"):
        pretrain.run(tiny("optim.lr=0.2"), out=out)
    # runtime settings may change; resume=false starts over
    pretrain.run(tiny("optim.lr=0.2", "runtime.resume=false", "runtime.threads=2"), out=out)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


class _Planted:
    """What an attacker with write access to a run folder would leave: code run on unpickling."""

    def __reduce__(self):
        import os
        return (os.system, ("touch planted-ran",))


def test_a_planted_state_file_is_refused_without_running_it(tmp_path, monkeypatch):
    import torch

    from bodytalk.train.config import ConfigError
    from bodytalk.train.rundir import RunDir

    monkeypatch.chdir(tmp_path)
    run = RunDir(tmp_path / "run", {"a": 1})
    run.state_file.parent.mkdir(parents=True)
    torch.save({"module": _Planted()}, run.state_file)
    with pytest.raises(ConfigError, match="refusing to load"):
        run.load_state()
    assert not (tmp_path / "planted-ran").exists()
