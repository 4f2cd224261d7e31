"""benchmarks/llm_weight_crossfit.py: the LLM's label weight a fold would use is chosen on the other
folds' held-out windows; informative LLM scores earn a weight, noise earns none."""
from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import benchmark_module

LABELS, FOLDS, WINDOWS = 4, 4, 60


@pytest.fixture(scope="module")
def crossfit():
    return benchmark_module("llm_weight_crossfit")


def _sweep(root, llm_knows: bool, seed: int = 0):
    """A fake sweep: a head that is right a bit more often than not, and LLM scores ``s`` that either
    point at the truth or are loud noise. ``predictions.npz`` as ``bodytalk train --folds`` writes it."""
    rng = np.random.default_rng(seed)
    for k in range(FOLDS):
        truth = rng.integers(0, LABELS, WINDOWS)
        onehot = np.eye(LABELS)[truth]
        head = np.exp(0.8 * onehot + rng.standard_normal((WINDOWS, LABELS)))
        head /= head.sum(1, keepdims=True)
        s = 1.5 * onehot if llm_knows else 3.0 * rng.standard_normal((WINDOWS, LABELS))
        llm = head * np.exp(s)
        clip = np.array([f"fold{k}/clip{i // 10}" for i in range(WINDOWS)])
        (root / f"f{k}" / "eval").mkdir(parents=True)
        np.savez(root / f"f{k}" / "eval" / "predictions.npz", truth=truth, clip=clip, head=head,
                 llm=llm / llm.sum(1, keepdims=True))


def _chosen(out: str) -> list[float]:
    rows = [r for r in out.splitlines() if r.startswith("| f")]
    return [float(r.split("|")[2]) for r in rows]


def test_informative_llm_scores_earn_a_weight(crossfit, tmp_path, capsys):
    _sweep(tmp_path, llm_knows=True)
    assert crossfit.main([str(tmp_path)]) == 0
    chosen = _chosen(capsys.readouterr().out)
    assert len(chosen) == FOLDS and all(w >= 0.75 for w in chosen)


def test_noise_earns_no_weight_and_the_fused_path_is_then_the_head(crossfit, tmp_path, capsys):
    _sweep(tmp_path, llm_knows=False)
    assert crossfit.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert _chosen(out) == [0.0] * FOLDS
    for row in (r for r in out.splitlines() if r.startswith("| f")):
        at_w, head = row.split("|")[3:5]
        assert at_w == head
    preds = {k: np.load(tmp_path / "f0" / "eval" / "predictions.npz")[k] for k in ("head", "llm", "truth")}
    np.testing.assert_allclose(crossfit.fused(preds, 0.0), preds["head"], atol=1e-9)
    np.testing.assert_allclose(crossfit.fused(preds, 1.0), preds["llm"], atol=1e-6)


def test_a_sweep_without_llm_predictions_is_refused(crossfit, tmp_path):
    with pytest.raises(SystemExit, match="at least two folds"):
        crossfit.main([str(tmp_path)])
