"""Config files and overrides -> typed configs; the learning-rate schedule."""
from __future__ import annotations

import math

import pytest

from bodytalk.train import config
from bodytalk.train.config import ConfigError
from bodytalk.train.loop import OptimConfig
from bodytalk.train.pretrain import Config


@pytest.mark.parametrize("name", ["pretrain_supervised", "pretrain_stb", "tiny_pretrain"])
def test_committed_configs_parse(name):
    cfg = config.load(Config, name)
    assert cfg.stage == "pretrain" and cfg.data.datasets


def test_supervised_config_is_the_eai_llm_schedule():
    o = config.load(Config, "pretrain_supervised").optim
    assert (o.name, o.lr, o.momentum, o.batch_size, o.epochs, o.warmup_epochs) == ("sgd", 0.1, 0.9, 64, 200, 5)
    assert o.milestones == (100, 150, 175) and o.gamma == 0.1


def test_overrides_reach_nested_keys_list_items_and_parse_yaml_values():
    cfg = config.load(Config, "pretrain_supervised", [
        "optim.epochs=20", "data.split.fold=bow", "data.datasets.0.classes=[angry, sad]",
        "data.datasets.0.rename={angry: mad}", "pretrain.augment.policy=mg", "encoder.dim=32"])
    assert cfg.optim.epochs == 20 and cfg.data.split.fold == "bow"
    assert cfg.data.datasets[0].classes == ("angry", "sad")
    assert cfg.data.datasets[0].rename == {"angry": "mad"}
    assert cfg.pretrain.augment.names == ("speed", "repeat", "jitter", "mg_rotate")
    assert cfg.encoder == {"dim": 32}


@pytest.mark.parametrize("override, where", [
    ("optim.lrr=0.1", "optim.lrr"),                        # typo: unknown key
    ("optim.lr=fast", "optim.lr"),                         # wrong type
    ("pretrain.recipe=magic", "pretrain.recipe"),          # not a choice
    ("data.split.test=1.5", "data.split"),                 # __post_init__ check
    ("encoder.depth=3", "encoder"),                        # not an EncoderConfig field
])
def test_bad_values_are_named_with_their_key(override, where):
    with pytest.raises(ConfigError, match=rf"{where}"):
        config.load(Config, "tiny_pretrain", [override])


def test_malformed_overrides_and_missing_files_say_what_to_do():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        config.load(Config, "tiny_pretrain", ["optim.epochs"])
    with pytest.raises(ConfigError, match="list index"):
        config.load(Config, "tiny_pretrain", ["data.datasets.5.uri=synthetic:"])
    with pytest.raises(ConfigError, match="committed config: .*tiny_pretrain"):
        config.load(Config, "no_such_config")


def test_resolved_config_round_trips():
    cfg = config.load(Config, "tiny_pretrain", ["optim.epochs=7"])
    again = config.parse(Config, config.to_dict(cfg))
    assert again == cfg


def _lr(o: OptimConfig, epoch: float, steps: int = 10) -> float:
    return o.lr_at(int(epoch * steps), steps)


def test_step_schedule_with_warmup():
    o = OptimConfig()  # 200 epochs, warm-up 5, /10 at 100, 150, 175
    assert _lr(o, 0) == pytest.approx(0.1 / 50)            # first of 50 warm-up steps
    assert _lr(o, 2.5) == pytest.approx(0.1 * 26 / 50)
    assert [_lr(o, e) for e in (5, 99.9, 100, 149, 150, 175, 199)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.0001, 0.0001])


def test_schedule_scales_with_epochs_against_the_reference():
    o = OptimConfig(epochs=20)  # the same schedule compressed: warm-up 0.5, drops at 10, 15, 17.5
    assert _lr(o, 0.3) == pytest.approx(0.08) and _lr(o, 0.5) == pytest.approx(0.1)  # 5 warm-up steps
    assert [_lr(o, e) for e in (9, 10, 15, 17, 18)] == pytest.approx([0.1, 0.01, 0.001, 0.001, 0.0001])
    absolute = OptimConfig(epochs=20, reference_epochs=None, milestones=(10,), warmup_epochs=0)
    assert [_lr(absolute, e) for e in (0, 9, 10)] == pytest.approx([0.1, 0.1, 0.01])


def test_cosine_schedule_ends_near_zero():
    o = OptimConfig(epochs=10, schedule="cosine", warmup_epochs=0, reference_epochs=None)
    assert _lr(o, 0) == pytest.approx(0.1) and _lr(o, 5) == pytest.approx(0.05, rel=0.05)
    assert _lr(o, 9.9) < 0.001 and not math.isnan(_lr(o, 10))
