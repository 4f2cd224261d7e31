"""Tiny end-to-end pre-training on the synthetic source, both recipes, through the stage and the
command line; the checkpoint it writes loads and records the split."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from bodytalk.model import checkpoint
from bodytalk.train import config, data, pretrain, run
from bodytalk.train.views import WindowDataset
from tests.helpers import REPO_ROOT, benchmark_module, free_port


def tiny(*overrides: str) -> pretrain.Config:
    return config.load(pretrain.Config, "tiny_pretrain", list(overrides))


def check_run(out, labels_expected=5) -> dict:
    ck = checkpoint.load(out / "checkpoint")
    results = json.loads((out / "results.json").read_text())
    assert ck.cfg.base_model is None and len(ck.cfg.labels) == labels_expected
    assert ck.meta["split"] == results["split"]
    split = ck.meta["split"]
    assert split["train"] and split["test"] and not set(split["train"]) & set(split["test"])
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and (out / "curves.png").stat().st_size > 1000
    assert all(torch.isfinite(p).all() for p in ck.encoder.state_dict().values())
    return results


def test_supervised_recipe_end_to_end(tmp_path):
    cfg = tiny("pretrain.augment.policy=standard")
    out = pretrain.run(cfg, out=tmp_path / "sup")
    results = check_run(out)
    m = results["metrics"]
    assert set(m) == {"test_loss", "test_acc", "test_f1", "test_clip_acc"}
    assert 0 <= m["test_acc"] <= 1 and results["recipe"] == "supervised" and results["head_trained"]
    # The checkpoint holds the trained encoder: on the recorded test clips it gives the logged loss.
    ck = checkpoint.load(out / "checkpoint")
    test = data.load(cfg.data, progress=False).take(ck.meta["split"]["test"])
    items = WindowDataset(test, ck.cfg.encoder.layouts, ck.cfg.encoder.frames, version=ck.cfg.encoder.features)
    x, layout, y = (torch.stack(t) for t in zip(*(items[i] for i in range(len(items)))))
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(ck.encoder(x, layout)["logits"], y)
    assert float(loss) == pytest.approx(m["test_loss"], rel=1e-4)


def test_an_ensemble_with_the_statistics_stream_trains_and_fits_it(tmp_path):
    """Three trunks and the statistics stream: the stream is fitted after training (its training
    accuracy and the held-out scores with it are recorded) and the checkpoint's label averages it in."""
    cfg = tiny("encoder.features=2", "encoder.arch=tcn", "encoder.strides=[1,2,1,2]", "encoder.time_chunks=3",
               "encoder.temporal_kernel=5", "encoder.part_width=8", "encoder.members=3", "encoder.statistics=true")
    out = pretrain.run(cfg, out=tmp_path / "ens")
    m = check_run(out)["metrics"]
    assert 0 <= m["statistics_train_acc"] <= 1 and 0 <= m["test_acc_with_statistics"] <= 1
    ck = checkpoint.load(out / "checkpoint")
    assert len(ck.encoder.others) == 2 and bool(ck.encoder.stats_head.fitted)
    test = data.load(cfg.data, progress=False).take(ck.meta["split"]["test"])
    items = WindowDataset(test, ck.cfg.encoder.layouts, ck.cfg.encoder.frames, version=2)
    x, layout, y = (torch.stack(t) for t in zip(*(items[i] for i in range(len(items)))))
    with torch.no_grad():
        out = ck.encoder(x, layout)
        stream = ck.encoder.stats_head(x).softmax(-1)
    want = (out["member_logits"].softmax(-1).sum(0) + stream) / 4
    torch.testing.assert_close(out["logits"].exp(), want)
    loss = torch.nn.functional.cross_entropy(out["logits"], y)
    assert float(loss) == pytest.approx(m["test_loss_with_statistics"], rel=1e-4)
    # benchmarks/ablate_ensemble.py reads the run as a one-fold sweep: its served-head row is this label
    ablate = benchmark_module("ablate_ensemble")
    probs, truth, _, _ = ablate.fold_probs(tmp_path / "ens")
    np.testing.assert_allclose(probs["3 trunks + statistics stream (the served head)"], want.numpy(), atol=1e-5)
    np.testing.assert_allclose(probs["statistics stream alone"], stream.numpy(), atol=1e-6)
    assert (truth == y.numpy()).all() and ablate.main([str(tmp_path)]) == 0
    # its mirror row: the served head on the window and on its reflection (reflecting twice is the window)
    flipped = ablate.mirrored(test)
    np.testing.assert_allclose(ablate.mirrored(flipped).joints, test.joints, atol=1e-5)
    xm = torch.stack([WindowDataset(flipped, ck.cfg.encoder.layouts, ck.cfg.encoder.frames, version=2)[i][0]
                      for i in range(len(flipped))])
    with torch.no_grad():
        reflected = ck.encoder(xm, layout)["logits"].exp()
    np.testing.assert_allclose(probs[ablate.MIRRORED], ((want + reflected) / 2).numpy(), atol=1e-5)


def test_stb_recipe_end_to_end_with_linear_probe(tmp_path):
    out = pretrain.run(tiny("pretrain.recipe=stb", "pretrain.augment.policy=mg", "encoder.time_chunks=5"),
                       out=tmp_path / "stb")
    results = check_run(out)
    assert set(results["metrics"]) == {"probe_acc", "probe_f1", "init_probe_acc", "init_probe_f1"}
    assert not results["head_trained"]
    history = results["history"]
    assert {"train_spatial", "train_temporal", "train_cross", "train_w_spatial"} <= set(history[0])
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in history)
    assert checkpoint.load(out / "checkpoint").cfg.encoder.time_chunks == 5


def test_command_line_runs_a_stage_and_reports_bad_input(tmp_path, capsys):
    assert run.main(["--config", "tiny_pretrain", "--out", str(tmp_path / "cli"), "optim.epochs=1"]) == 0
    assert (tmp_path / "cli" / "checkpoint" / "config.json").is_file()
    assert "run folder" in capsys.readouterr().out
    bad = ["--config", "tiny_pretrain", "--out", str(tmp_path / "bad")]
    assert run.main([*bad, "optim.lr=-1"]) == 2
    assert "lr > 0" in capsys.readouterr().err
    assert run.main([*bad, "stage=finetune"]) == 2
    assert "stage 'finetune' is not one of pretrain" in capsys.readouterr().err
    assert run.main([*bad, "data.datasets.0.classes=[joyful]"]) == 2
    assert "unknown class name(s) joyful" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before training started


def test_torchrun_environment_world_size_one(tmp_path):
    """The DDP path (process group, DistributedDataParallel, barriers) at world size 1 on gloo."""
    env = {**os.environ, "WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "bodytalk.train.run", "--config", "tiny_pretrain", "--out", str(tmp_path / "ddp"),
           "optim.epochs=1", "pretrain.recipe=stb", "pretrain.augment.policy=mg"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "ddp" / "checkpoint" / "encoder.safetensors").is_file()


def test_clip_balance_weighs_each_window_by_its_clip_in_the_step_and_trains(tmp_path):
    """The step reads the per-window weight ``_PerWindow`` appends: a window of weight 0 does not count."""
    logits = torch.randn(3, 4)
    model = lambda x, layout: {"logits": logits}  # noqa: E731
    y = torch.tensor([0, 1, 2])
    step = pretrain._supervised_step(None, pretrain.PretrainOptions(balance=True, clip_balance=True))
    got = step(model, (None, None, y, torch.tensor([0.0, 2.0, 0.0]), torch.zeros(3, dtype=torch.long)))["loss"]
    want = torch.nn.functional.cross_entropy(logits[1:2], y[1:2])
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    with pytest.raises(ValueError, match="clip_balance"):
        tiny("pretrain.clip_balance=true")
    out = pretrain.run(tiny("pretrain.balance=true", "pretrain.clip_balance=true"), out=tmp_path / "cb")
    check_run(out)


def test_mixup_blends_two_windows_and_their_targets_with_one_beta_weight(tmp_path):
    """``pretrain.mixup``: the model sees ``lam * x + (1 - lam) * x[perm]`` and the loss is the same
    blend of the two windows' cross-entropies, ``lam ~ Beta(a, a)`` drawn from torch's seeded RNG."""
    x, y, logits = torch.randn(6, 4, 2, 3), torch.tensor([0, 1, 2, 3, 0, 1]), torch.randn(6, 4)
    seen = []
    model = lambda xb, layout: seen.append(xb) or {"logits": logits}  # noqa: E731
    torch.manual_seed(3)
    got = pretrain._supervised_step(None, pretrain.PretrainOptions(mixup=0.4))(model, (x, None, y))["loss"]
    torch.manual_seed(3)
    lam, perm = pretrain._mix(6, 0.4)
    assert 0 < lam < 1 and sorted(perm.tolist()) == list(range(6)) and perm.tolist() != list(range(6))
    assert torch.allclose(seen[0], lam * x + (1 - lam) * x[perm])
    ce = torch.nn.functional.cross_entropy
    assert float(got) == pytest.approx(float(lam * ce(logits, y) + (1 - lam) * ce(logits, y[perm])), rel=1e-6)
    assert pretrain._mix(6, 0.0) == (1.0, None)
    with pytest.raises(ValueError, match="mixup"):
        tiny("pretrain.mixup=0.2", "pretrain.recipe=stb", "pretrain.augment.policy=mg")
    check_run(pretrain.run(tiny("pretrain.mixup=0.2"), out=tmp_path / "mix"))


def test_auxiliary_classes_train_the_head_and_leave_the_saved_model(tmp_path):
    """Auxiliary classes join the training side only: the head learns five labels, the checkpoint keeps
    the three of `classes` (each member's distribution renormalised over them), the held-out side and
    its recorded split hold only those three, and the later stages' loader never sees the other two."""
    keep = ("data.datasets.0.classes=[angry,happy,neutral]", "data.datasets.0.auxiliary=[sad,fearful]")
    cfg = tiny("encoder.features=2", "encoder.members=2", "encoder.statistics=true", *keep)
    out = pretrain.run(cfg, out=tmp_path / "aux")
    ck = checkpoint.load(out / "checkpoint")
    assert ck.cfg.labels == ("angry", "happy", "neutral") and ck.cfg.encoder.num_labels == 3
    assert ck.meta["auxiliary_labels"] == ["fearful", "sad"]
    everything = data.load(cfg.data, progress=False, auxiliary=True)
    assert everything.labels == ("angry", "fearful", "happy", "neutral", "sad")
    label_of = {c.id: c.label for c in everything.clips}
    test_ids, train_ids = ck.meta["split"]["test"], ck.meta["split"]["train"]
    assert test_ids and {label_of[i] for i in test_ids} <= {"angry", "happy", "neutral"}
    assert {"sad", "fearful"} <= {label_of[i] for i in train_ids}
    served = data.load(cfg.data, progress=False)       # what eval and the later stages read
    assert served.labels == ck.cfg.labels and len(served) < len(everything)
    assert len(served.take(test_ids)) == len(everything.take(test_ids))
    # the saved head = the trained head's rows of the kept labels
    test = served.take(test_ids)
    items = WindowDataset(test, ck.cfg.encoder.layouts, ck.cfg.encoder.frames, version=2)
    x, layout, y = (torch.stack(t) for t in zip(*(items[i] for i in range(len(items)))))
    with torch.no_grad():
        got = ck.encoder(x, layout)
    assert got["logits"].shape == (len(test), 3) and got["member_logits"].shape == (2, len(test), 3)
    loss = torch.nn.functional.cross_entropy(got["logits"], y)
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    assert float(loss) == pytest.approx(metrics["test_loss_with_statistics"], rel=1e-4)


def test_keep_labels_renormalises_each_member():
    from bodytalk.model.encoder import EncoderConfig, SkeletonEncoder

    torch.manual_seed(0)
    enc = SkeletonEncoder(EncoderConfig(num_labels=5, features=2, members=2, statistics=True)).eval()
    enc.stats_head.fitted.fill_(True)
    torch.nn.init.normal_(enc.stats_head.weight)
    x, layout = torch.randn(4, enc.cfg.frames, 17, 14), torch.zeros(4, dtype=torch.long)
    with torch.no_grad():
        before = enc(x, layout)
        members = [*before["member_logits"], enc.stats_head(x)]
        enc.keep_labels([3, 0, 1])
        after = enc(x, layout)
    want = torch.stack([m[:, [3, 0, 1]].softmax(-1) for m in members]).mean(0)
    torch.testing.assert_close(after["logits"].exp(), want)
    assert enc.cfg.num_labels == 3 and all(m.cfg.num_labels == 3 for m in enc.others)
    with pytest.raises(ValueError, match="both in classes and auxiliary"):
        data.DatasetSpec("synthetic:?duration=5", classes=("sad",), auxiliary=("sad",))
    with pytest.raises(ValueError, match="need `classes`"):
        data.DatasetSpec("synthetic:?duration=5", auxiliary=("sad",))
    spec = data.DatasetSpec("synthetic:?duration=5", classes=("happy",), auxiliary=("sad",))
    with pytest.raises(ValueError, match="names auxiliary class"):
        data.DataConfig(datasets=(spec,), labels=("happy", "sad"))
