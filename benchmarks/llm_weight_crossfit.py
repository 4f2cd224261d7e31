"""How much should the LLM's label scores move the head's label? Cross-fitted over a sweep's folds
(a diagnostic, README issue 15).

With ``projector.head_prior`` the LLM path's label logits are the head's log-probabilities plus the
LLM's label scores ``s``: weight 1. This script scores the weights ``w`` of

    log p_head + w * s          (w = 0: the head; w = 1: the LLM path as served)

on a sweep's held-out predictions (``OUT/<fold>/eval/predictions.npz``; ``s`` there is
``log p_llm - log p_head`` up to a constant per window, so nothing is re-run). The weight a fold
would use is chosen on the *other* folds' held-out windows (least window log-loss), never on its
own: each of those windows was scored by a model that had not trained on its content. Printed:
the pooled scores of every weight (a reading over all folds, not a choice), then per fold the
weight chosen without it and its clips against the head's.

    python benchmarks/llm_weight_crossfit.py runs/llm8 [--write BENCHMARKS.md]

A chosen weight of 0 says the LLM's label scores held nothing, on contents unseen in training,
that the head had not already said.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bodytalk.train import report

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llm_label_bias import TINY, centred_scores  # noqa: E402
from report import machine, publish  # noqa: E402

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


def fused(pred: dict[str, np.ndarray], w: float) -> np.ndarray:
    """``[N, L]`` probabilities of ``log p_head + w * s``."""
    z = np.log(pred["head"] + TINY) + w * centred_scores(pred["llm"], pred["head"])
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def log_loss(preds: list[dict[str, np.ndarray]], w: float) -> float:
    """Mean negative log-likelihood of the true label over these folds' windows."""
    losses = [-np.log(fused(p, w)[np.arange(len(p["truth"])), p["truth"]] + TINY) for p in preds]
    return float(np.concatenate(losses).mean())


def pooled(preds: list[dict[str, np.ndarray]], w: float, labels: tuple[str, ...]) -> dict:
    """Window and clip scores of weight ``w`` over all these folds' windows."""
    clip = np.concatenate([p["clip"] for p in preds])
    _, clip_index = np.unique(clip, return_inverse=True)
    return report.classification(np.concatenate([p["truth"] for p in preds]),
                                 np.concatenate([fused(p, w) for p in preds]), clip_index, labels)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", type=Path, help="an LLM fold sweep's OUT folder (OUT/<fold>/eval/predictions.npz)")
    ap.add_argument("--write", type=Path, help="also replace this script's section of a BENCHMARKS.md")
    args = ap.parse_args(argv)
    folds: dict[str, dict[str, np.ndarray]] = {}
    for path in sorted(args.sweep.glob("*/eval/predictions.npz")):
        with np.load(path) as z:
            if {"llm", "head"} <= set(z.files):
                folds[path.parent.parent.name] = {k: z[k] for k in ("truth", "clip", "head", "llm")}
    if len(folds) < 2:
        raise SystemExit(f"{args.sweep}: needs at least two folds that scored the LLM path and the head "
                         "(OUT/<fold>/eval/predictions.npz with 'llm' and 'head')")
    labels = tuple(f"label {i}" for i in range(next(iter(folds.values()))["head"].shape[1]))
    everything = list(folds.values())
    rows = ["| weight w | window log-loss | window acc | window macro-F1 | clip acc | clip macro-F1 |",
            "|---|---|---|---|---|---|"]
    for w in WEIGHTS:
        r = pooled(everything, w, labels)
        rows.append(f"| {w:g} | {log_loss(everything, w):.3f} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} "
                    f"| {r['clip_accuracy']:.3f} | {r['clip_macro_f1']:.3f} |")
    rows += ["", "| held out | w chosen on the other folds | clips at that w | head clips | LLM path (w = 1) clips |",
             "|---|---|---|---|---|"]
    totals = np.zeros(3, int)
    for name, pred in folds.items():
        others = [p for n, p in folds.items() if n != name]
        w = min(WEIGHTS, key=lambda v: log_loss(others, v))
        clips = [round(r["clip_accuracy"] * r["clips"]) for r in
                 (pooled([pred], v, labels) for v in (w, 0.0, 1.0))]
        totals += clips
        rows.append(f"| {name} | {w:g} | " + " | ".join(str(c) for c in clips) + " |")
    rows.append("| **all** | | " + " | ".join(f"**{c}**" for c in totals) + " |")
    table = (f"The LLM's label weight, cross-fitted over `{args.sweep}` ({len(folds)} folds). Command: `python "
             f"benchmarks/llm_weight_crossfit.py {args.sweep}`. Machine: {machine()}.\n\n" + "\n".join(rows))
    return publish(table, args.write, "llm_weight_crossfit")


if __name__ == "__main__":
    raise SystemExit(main())
