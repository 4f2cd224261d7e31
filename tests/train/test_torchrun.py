"""Every stage under ``torchrun --nproc-per-node 2`` on CPU (gloo), against the one-process run.

Where the maths is the same, so is the result: supervised pre-training computes a per-window loss,
each rank's DistributedSampler shard of a global batch is half of the one-process batch, and DDP
averages the two halves' gradients, so the weights agree up to float rounding of that all-reduce.
The alignment stage's contrastive loss draws its negatives from the rank's own half batch (16
windows here, not 32): a different objective by design, so its result is only checked to exist and
load; instruction tuning then starts from that projector.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from bodytalk.model import checkpoint
from tests.helpers import REPO_ROOT

# Dropout off in both runs: under DDP each rank draws its own masks (seeded by rank).
OVERRIDES = ["stages.0.encoder.dropout=0", "stages.1.align.text_encoder=llm", "stages.1.llm.dtype=float32",
             "stages.2.llm.lora_dropout=0"]
PRETRAIN_TOLERANCE = 1e-5   # max abs weight difference (measured: about 1e-7, one float32 ulp at 1.0)


def _train(out, base, processes: int | None) -> subprocess.CompletedProcess:
    launcher = [] if processes is None else ["-m", "torch.distributed.run", "--standalone",
                                             f"--nproc-per-node={processes}"]
    cmd = [sys.executable, *launcher, "-m", "bodytalk.train.run", "--config", "tiny_all", "--out", str(out),
           f"stages.1.llm.base={base}", *OVERRIDES]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def _losses(run_dir, stage: str) -> list[float]:
    return [json.loads(line)["train_loss"] for line in (run_dir / stage / "metrics.jsonl").read_text().splitlines()]


def test_torchrun_two_processes_match_one_process(tmp_path, tiny_model_dir):
    one, two = tmp_path / "one", tmp_path / "two"
    for out, n in ((one, None), (two, 2)):
        proc = _train(out, tiny_model_dir, n)
        assert proc.returncode == 0, proc.stderr[-3000:]
    # Pre-training: the same losses and weights.
    assert _losses(two, "0-pretrain") == pytest.approx(_losses(one, "0-pretrain"), rel=1e-5)
    a, b = (load_file(str(r / "0-pretrain" / "checkpoint" / "encoder.safetensors")) for r in (one, two))
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst <= PRETRAIN_TOLERANCE, f"2-process pre-training differs by {worst}"
    assert any(not torch.equal(a[k], torch.zeros_like(a[k])) for k in a)
    # Every later stage ran under DDP and left one loadable checkpoint, written once (rank 0).
    for stage in ("1-align", "2-instruct"):
        assert len(_losses(two, stage)) == len(_losses(one, stage))
    final = checkpoint.load(two / "checkpoint")
    assert final.adapter is not None and final.meta["stage"] == "instruct"
    summary = json.loads((two / "results.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == ["pretrain", "align", "instruct"]


def test_a_global_batch_that_does_not_split_over_the_ranks_is_refused(tmp_path):
    """Before any process group work: `bodytalk train` prints it as a one-line config error."""
    from torch import nn

    from bodytalk.train.config import ConfigError
    from bodytalk.train.loop import DistInfo, OptimConfig, RuntimeConfig, Trainer
    from bodytalk.train.rundir import RunDir

    with pytest.raises(ConfigError, match="batch_size 32 does not split over 3 ranks"):
        Trainer(RunDir(tmp_path, {}), nn.Linear(1, 1), OptimConfig(batch_size=32), RuntimeConfig(), 0, DistInfo(world=3))
