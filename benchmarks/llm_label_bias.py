"""The LLM label path's label-word bias, and what taking it out would do (a diagnostic, README issue 15).

With ``projector.head_prior`` the LLM path's label logits are the head's log-probabilities plus the
LLM's label scores ``s`` (the log-likelihood of each label's words). On training windows the head
is nearly always right and sure, so the recognition loss barely moves ``s``, and what ``s`` holds
apart from the window is the language model's taste for some label words over others. This script
measures that taste: ``s`` (centred over the labels, per window) averaged over a class-balanced,
seeded sample of each fold's own training windows. It then takes it out of the fold's held-out
predictions (the sweep's ``eval/predictions.npz``; ``s`` there is ``log p_llm - log p_head`` up to a
constant per window) and scores the three label paths on the same windows:

    head | LLM path (served) | LLM path minus its training-window bias

    python benchmarks/llm_label_bias.py runs/llm-folds [--per-label 10] [--threads 2] [--write BENCHMARKS.md]

It reads only training windows to measure the bias and changes nothing it serves. The measurement
is now the instruct stage's (``instruct.label_bias_windows``, train/label_bias.py) and `bodytalk
label-bias` stores it in a checkpoint; this script is the what-if for sweeps trained without it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from bodytalk.model.registry import load_model
from bodytalk.train import label_bias, report

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, publish  # noqa: E402

TINY = 1e-12   # probabilities the eval rounded to 0: a finite log


def centred_scores(llm: np.ndarray, head: np.ndarray) -> np.ndarray:
    """The LLM's own label scores ``[N, L]`` from the fused and the head's probabilities, centred per row."""
    s = np.log(llm + TINY) - np.log(head + TINY)
    return s - s.mean(1, keepdims=True)


def training_bias(folder: Path, per_label: int, seed: int = 0) -> tuple[np.ndarray, tuple[str, ...]]:
    """``[L]`` a fold's label bias (label_bias.measure on its training windows); refuses a checkpoint
    that already carries one (its eval scored the calibrated path: subtracting again would count it twice)."""
    model = load_model(folder / "checkpoint", with_llm=True)
    if model.llm is None or not model.cfg.projector.head_prior:
        raise SystemExit(f"{folder}: needs an LLM checkpoint trained with projector.head_prior")
    if model.cfg.label_bias is not None:
        raise SystemExit(f"{folder}: the checkpoint already carries a label bias; its eval is the calibrated path")
    return np.array(label_bias.measure(model, label_bias.training_windows(model), per_label, seed)), model.labels


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", type=Path, help="an LLM fold sweep's OUT folder (OUT/<fold>/checkpoint, OUT/<fold>/eval)")
    ap.add_argument("--per-label", type=int, default=10, help="training windows per label to average over")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--write", type=Path, help="also replace this script's section of a BENCHMARKS.md")
    args = ap.parse_args(argv)
    if args.per_label < 1 or args.threads < 1:
        ap.error("--per-label and --threads must be at least 1")
    torch.set_num_threads(args.threads)
    scored = {}   # fold folder -> its held-out predictions, read once
    for path in sorted(args.sweep.glob("*/eval/predictions.npz")):
        with np.load(path) as z:
            if "llm" in z.files:
                scored[path.parent.parent] = {k: z[k] for k in ("truth", "clip", "head", "llm")}
    if not scored:
        raise SystemExit(f"{args.sweep}: no fold scored the LLM path (OUT/<fold>/eval/predictions.npz with 'llm')")
    header = machine()
    rows = [("| held out | bias per label (training windows) | head clips | LLM path clips | LLM minus bias clips "
             "| window acc head / LLM / minus bias |"), "|---|---|---|---|---|---|"]
    for folder, pred in scored.items():
        bias, labels = training_bias(folder, args.per_label)
        y, clip, head, llm = pred["truth"], pred["clip"], pred["head"], pred["llm"]
        z_cal = np.log(head + TINY) + centred_scores(llm, head) - bias
        calibrated = np.exp(z_cal - z_cal.max(1, keepdims=True))
        scores = [report.classification(y, p / p.sum(1, keepdims=True), clip, labels)
                  for p in (head, llm, calibrated)]
        clips = [f"{round(r['clip_accuracy'] * r['clips'])} / {r['clips']}" for r in scores]
        rows.append(f"| {folder.name} | " + ", ".join(f"{lab} {b:+.2f}" for lab, b in zip(labels, bias))
                    + " | " + " | ".join(clips) + " | " + " / ".join(f"{r['accuracy']:.3f}" for r in scores) + " |")
        print(f"{folder.name}: done", file=sys.stderr)
    table = (f"LLM label-word bias on `{args.sweep}` ({args.per_label} training windows per label, seed 0). "
             f"Command: `python benchmarks/llm_label_bias.py {args.sweep} --per-label {args.per_label}`. "
             f"Machine: {header}.\n\n" + "\n".join(rows))
    return publish(table, args.write, "llm_label_bias")


if __name__ == "__main__":
    raise SystemExit(main())
