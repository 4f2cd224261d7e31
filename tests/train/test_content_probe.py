"""benchmarks/content_probe.py: content and style probes on a fold checkpoint's training windows."""
from __future__ import annotations

import re

import pytest

from bodytalk.train import config, pretrain
from tests.helpers import benchmark_module


def test_probes_score_each_fold_checkpoint_by_held_out_clips(tmp_path, capsys):
    probe = benchmark_module("content_probe")
    cfg = config.load(pretrain.Config, "tiny_pretrain", ["encoder.members=2", "encoder.features=2"])
    pretrain.run(cfg, out=tmp_path / "sweep" / "f1")
    assert probe.main([str(tmp_path / "sweep"), "--folds", "f1", "--group", "body"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(f"| `{tmp_path}"))
    windows, content, share, style = (float(v) for v in re.findall(r"\| ([0-9.]+)", row))
    assert windows > 10 and all(0 <= v <= 1 for v in (content, share, style)) and 0 < share < 1
    with pytest.raises(SystemExit, match="no checkpoint"):
        probe.main([str(tmp_path / "sweep"), "--folds", "f2"])
