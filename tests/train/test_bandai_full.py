"""`bodytalk train --config bandai_full`: the committed config loads and validates, every stage
trains on all of ds1 (the split holds out nothing), and a `none` split trains and is refused by
`bodytalk eval` on its own data with what to do instead."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bodytalk.model import checkpoint
from bodytalk.train import config, evaluate, run, splits
from bodytalk.train.data import load
from bodytalk.train.windowset import Clip
from bodytalk.train.splits import SplitConfig


def _stages():
    _, cfg = run.stage_config(config.load_raw("bandai_full", []), "bandai_full")
    return cfg.plan(Path(cfg.out))


def test_the_config_loads_and_every_stage_trains_on_all_of_ds1():
    plan = _stages()
    assert [name for name, _, _ in plan] == ["pretrain", "align", "instruct"]
    for _, stage, _ in plan:
        data = stage.data
        assert data.split.kind == "none"
        assert [d.uri for d in data.datasets] == ["bvh:../shared/data/bandai-namco-ds1/data"]
        assert data.datasets[0].classes == ("angry", "happy", "sad", "proud", "not-confident", "tired", "normal")
    assert plan[1][1].init == str(plan[0][2] / "checkpoint")   # each stage starts from the one before


def test_every_bandai_config_pretrains_the_encoder_with_bandai_heads_recipe():
    """The benchmark measures bandai_head.yaml; bandai.yaml and bandai_full.yaml repeat its pre-training
    section, and a change to one that is not made to the others would serve an unmeasured recipe."""
    _, head = run.stage_config(config.load_raw("bandai_head", []), "bandai_head")
    for name in ("bandai", "bandai_full"):
        _, cfg = run.stage_config(config.load_raw(name, []), name)
        pretrain = cfg.plan(Path(cfg.out))[0][1]
        assert (pretrain.pretrain, pretrain.encoder, pretrain.optim) == (head.pretrain, head.encoder, head.optim), name
        assert (pretrain.data.window, pretrain.data.train_hop, pretrain.seed) == \
            (head.data.window, head.data.train_hop, head.seed), name


def test_a_none_split_holds_out_nothing():
    clips = [Clip(f"c{i}", label, "bvh", "d", {"content": c}) for i, (label, c) in
             enumerate([("sad", "walk"), ("happy", "walk"), ("sad", "bow"), ("happy", "bow")])]
    split = splits.select(clips, SplitConfig(kind="none"))
    assert split.train == ("c0", "c1", "c2", "c3") and split.test == () and split.name == "none"
    splits.check(split, clips, {c.id: 2 for c in clips})     # an empty test side is the point here
    assert splits.Split.from_dict(split.to_dict()) == split


@pytest.mark.shared_data
def test_on_ds1_every_one_of_the_86_clips_trains(shared_data, tmp_path):
    folder = shared_data("bandai-namco-ds1", "data")
    data = _stages()[0][1].data   # its URI is relative to the repository root: point it at the data
    (spec,) = data.datasets
    data = dataclasses.replace(data, cache=str(tmp_path / "cache"),
                               datasets=(dataclasses.replace(spec, uri=f"bvh:{folder}"),))
    ws = load(data, progress=False)
    split = splits.select(ws.clips, data.split)
    assert len(split.train) == 86 and split.test == ()


def test_a_none_split_trains_and_eval_asks_for_other_data(tmp_path, capsys):
    out = tmp_path / "run"
    assert run.main(["--config", "tiny_pretrain", "--out", str(out), "data.split.kind=none"]) == 0
    meta = checkpoint.load(out / "checkpoint").meta
    assert meta["split"]["test"] == [] and len(meta["split"]["train"]) > 0
    assert not any(k.startswith("test_") for k in meta["metrics"]), "nothing held out, nothing measured"
    assert json.loads((out / "results.json").read_text())["test"]["windows"] == 0
    own = meta["datasets"][0]
    assert evaluate.main(["--model", str(out / "checkpoint"), "--data", own, "--out", str(tmp_path / "eval"),
                          "--explain", "0", "--paths", "head"]) == 2
    assert "trained on every clip of its data (split none)" in capsys.readouterr().err
    other = "synthetic:?bodies=2&duration=20&hold=10&seed=5"
    assert evaluate.main(["--model", str(out / "checkpoint"), "--data", other, "--out", str(tmp_path / "eval"),
                          "--explain", "0", "--paths", "head"]) == 0
