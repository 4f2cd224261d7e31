"""The LLM label path's label-word bias: measured on training windows, stored in the checkpoint,
taken out of the LLM's label scores at serving (``EmotionModel.label_probs``).

The LLM scores a label by the likelihood of its words. Apart from the window, that score holds the
language model's taste for some words over others ("angry" and "happy" are common, "proud" is
not), and instruction tuning under ``projector.head_prior`` barely moves it: on training windows
the encoder head is nearly always right and sure, so the recognition loss has little to correct.
On windows of an unseen content the head is less sure and the taste decides. The bias is the
LLM's label scores (log-softmax over the labels, centred per window) averaged over a seeded,
class-balanced sample of the checkpoint's own training windows; it is the same measurement
"contextual calibration" makes with an empty input, made on inputs the model was trained on, so
the held-out fold is never read.

The instruct stage measures it when ``instruct.label_bias_windows`` > 0, with the exact weights it
trained; the command below loads the checkpoint as serving does (int8 copies of the LLM's weights,
`EmotionModel.load`), so its figures can differ from the stage's in the second decimal. The stage
scores its held-out windows with the corrected path (``test_llm_acc``; the uncorrected one as
``test_llm_acc_without_label_bias``); the command leaves a checkpoint's recorded metrics and
``label_path`` as they were (re-evaluate with `bodytalk eval`). For a checkpoint trained without it:

    bodytalk label-bias runs/bandai/checkpoint [--per-label 10] [--seed 0]
    bodytalk label-bias runs/bandai/checkpoint --per-label 0        # remove it
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from bodytalk.model import checkpoint
from bodytalk.model.inference import EmotionModel
from bodytalk.train import baselines, config as config_io
from bodytalk.train.data import DataConfig, load
from bodytalk.train.windowset import WindowSet
from bodytalk.train.splits import Split

log = logging.getLogger("bodytalk.train")
BATCH = 16   # windows per LLM pass


def sample(ws: WindowSet, per_label: int, seed: int) -> WindowSet:
    """Up to ``per_label`` seeded windows of each label present in ``ws``."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(idx, min(per_label, len(idx)), replace=False)
             for k in range(len(ws.labels)) if len(idx := np.flatnonzero(ws.label == k))]
    return ws.subset(np.sort(np.concatenate(picks)) if picks else np.zeros(0, np.int64))


@torch.no_grad()
def measure(model: EmotionModel, ws: WindowSet, per_label: int = 10, seed: int = 0) -> tuple[float, ...]:
    """``[L]`` the LLM's centred label scores averaged per label over a seeded sample of ``ws`` (the
    training windows), then over the labels, so a frequent label does not weigh more."""
    if model.llm is None:
        raise ValueError("the label bias is the LLM's: load the checkpoint with its base model")
    picked = sample(ws, per_label, seed)
    inputs = baselines.windows_of(picked)
    rows, truth = [], []
    for start in range(0, len(inputs), BATCH):
        p = model.prepare(inputs[start:start + BATCH])
        if not p.index:
            continue
        _, tokens = model.encode(p)
        s = model.label_scores(tokens, [model.evidence_line(d, m) for d, m in zip(p.evidence, p.mgs)])  # [b, L]
        rows.append((s - s.mean(-1, keepdim=True)).float().cpu())
        truth.append(picked.label[start:start + BATCH][p.index])
    if not rows:
        raise ValueError("no readable training window to measure the label bias on")
    s, y = torch.cat(rows), np.concatenate(truth)
    per_class = torch.stack([s[torch.from_numpy(y == k)].mean(0) for k in np.unique(y)])   # [K, L]
    return tuple(round(float(v), 4) for v in per_class.mean(0))


def training_windows(model: EmotionModel) -> WindowSet:
    """The windows a checkpoint was trained on, from the data config and split its meta records."""
    meta = model.meta
    if "data_config" not in meta:
        raise ValueError("the checkpoint records no training data (meta.data_config): train it with `bodytalk train`")
    if "split" not in meta:   # without it the training side is unknown, and held-out windows could be read
        raise ValueError("the checkpoint records no split (meta.split): its training windows are unknown")
    cfg = dataclasses.replace(config_io.parse(DataConfig, meta["data_config"]), labels=model.labels)
    return load(cfg, progress=False).take(Split.from_dict(meta["split"]).train)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bodytalk label-bias", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, help="a checkpoint folder with a LoRA adapter")
    ap.add_argument("--per-label", type=int, default=10,
                    help="training windows per label to average over (0: remove the stored bias)")
    ap.add_argument("--seed", type=int, default=0, help="which training windows are drawn")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = ap.parse_args(argv)
    if args.per_label < 0 or args.threads < 1:
        ap.error("--per-label must be >= 0 and --threads >= 1")
    torch.set_num_threads(args.threads)
    try:
        if args.per_label == 0:
            checkpoint.replace_config(args.checkpoint, label_bias=None)
            print(f"{args.checkpoint}: label bias removed")
            return 0
        model = EmotionModel.load(args.checkpoint, with_llm=True)
        if model.llm is None:
            raise ValueError(f"{args.checkpoint} is encoder-only: its label path is the head, which has no label bias")
        bias = measure(model, training_windows(model), args.per_label, args.seed)
        checkpoint.replace_config(args.checkpoint, label_bias=bias)
    except (OSError, ValueError, KeyError, ArithmeticError) as err:
        log.error("%s", err)
        return 2
    print(f"{args.checkpoint}: label bias " + ", ".join(f"{lab} {b:+.2f}" for lab, b in zip(model.labels, bias)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
