"""benchmarks/clip_errors.py: the clips a path misses in each sweep, and which it misses in all."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import benchmark_module

LABELS = ["calm", "lively"]


@pytest.fixture(scope="module")
def clip_errors():
    return benchmark_module("clip_errors")


def _sweep(root, lively_of_b: float):
    """Two folds of two 2-window clips; clip a (truth lively) is always called calm, clip b (truth
    calm) gets ``lively_of_b``, clips c and d are always right."""
    folds = {"f1": {"a": (1, 0.2), "b": (0, lively_of_b)}, "f2": {"c": (0, 0.1), "d": (1, 0.9)}}
    for fold, clips in folds.items():
        ev = root / fold / "eval"
        ev.mkdir(parents=True)
        truth, clip, head = [], [], []
        for name, (t, lively) in clips.items():
            truth += [t, t]
            clip += [f"data/{name}.bvh"] * 2
            head += [[1 - lively, lively]] * 2
        np.savez(ev / "predictions.npz", truth=np.array(truth), clip=np.array(clip), head=np.array(head))
        (ev / "results.json").write_text(json.dumps({"labels": LABELS}))


def test_clips_missed_by_every_sweep_and_by_some(clip_errors, tmp_path, capsys):
    _sweep(tmp_path / "s0", lively_of_b=0.7)     # misses a and b
    _sweep(tmp_path / "s1", lively_of_b=0.3)     # misses a only
    assert clip_errors.main([str(tmp_path / "s0"), str(tmp_path / "s1")]) == 0
    out = capsys.readouterr().out
    assert "| a.bvh (f1) | lively | calm 0.80 (truth 0.20) | calm 0.80 (truth 0.20) |" in out
    assert "| b.bvh (f1) | calm | lively 0.70 (truth 0.30) | right |" in out
    assert "c.bvh" not in out and "d.bvh" not in out
    assert "Missed by every sweep: 1 clips; by some but not all: 1." in out


def test_sweeps_of_different_benchmarks_are_refused(clip_errors, tmp_path):
    _sweep(tmp_path / "s0", 0.7)
    _sweep(tmp_path / "s1", 0.7)
    (tmp_path / "s1" / "f2" / "eval" / "results.json").write_text(json.dumps({"labels": ["x", "y"]}))
    with pytest.raises(SystemExit, match="labels"):
        clip_errors.main([str(tmp_path / "s0"), str(tmp_path / "s1")])
    with pytest.raises(SystemExit, match="no 'llm' predictions"):
        clip_errors.main([str(tmp_path / "s0"), "--path", "llm"])
