"""Ablation of the encoder's ensemble on a fold sweep's own checkpoints (BENCHMARKS.md, the encoder ensemble section).

Each fold checkpoint of ``bodytalk train --config bandai_head --folds all --out OUT`` holds three
trunks and the statistics stream. The trunks share no weights and each is trained on its own loss
(``train/losses.head_loss``; Adam does not see the 1/M scale), so the first trunk alone is what a
one-trunk run on the same batches trains. Each row takes one part of the ensemble away, on the same
models and the same held-out windows, pooled over the folds as the sweep's summary pools them (a
clip's label = the mean of its windows' probabilities):

    first trunk | first trunk + statistics | 3 trunks | statistics stream alone | 3 trunks + statistics

and one row that adds to the served head rather than taking away: its probabilities averaged with
those of the window's left/right mirror image (``augment.mirror``, the training augmentation), a
test-time average that makes the label exactly mirror-invariant at the price of a second encoder pass.

    python benchmarks/ablate_ensemble.py runs/bandai-head-folds [--write BENCHMARKS.md]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from bodytalk.model import checkpoint
from bodytalk.train import config as config_io, data, report
from bodytalk.train.windowset import WindowSet
from bodytalk.train.augment import mirror
from bodytalk.train.run import stage_config
from bodytalk.train.views import WindowDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, publish  # noqa: E402

VARIANTS = {   # name -> (trunks averaged, statistics stream joins)
    "first trunk alone (a one-trunk head)": (1, False),
    "first trunk + statistics stream": (1, True),
    "3 trunks": (3, False),
    "statistics stream alone": (0, True),
    "3 trunks + statistics stream (the served head)": (3, True),
}
MIRRORED = "the served head, averaged with the window's mirror image"


_LOADED: dict[str, WindowSet] = {}


def _windows(cfg: data.DataConfig) -> WindowSet:
    """Every window of a sweep's data (the folds share it: read once; the config holds dicts, so it is
    keyed by its text)."""
    key = repr(cfg)
    if key not in _LOADED:
        _LOADED[key] = data.load(cfg, progress=False)
    return _LOADED[key]


def mirrored(ws: WindowSet) -> WindowSet:
    """Every window reflected left/right (joints and their confidences swapped sides)."""
    pairs = [mirror(j, c, None) for j, c in zip(ws.joints, ws.confidence)]
    return dataclasses.replace(ws, joints=np.stack([j for j, _ in pairs]), confidence=np.stack([c for _, c in pairs]))


@torch.no_grad()
def fold_probs(folder: Path) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, tuple[str, ...]]:
    """Per variant ``[N, L]`` probabilities of the fold's held-out windows, their truth and clip ids."""
    ck = checkpoint.load(folder / "checkpoint")
    enc = ck.encoder
    if not len(enc.others) or enc.stats_head is None or not bool(enc.stats_head.fitted):
        raise SystemExit(f"{folder}: not an ensemble with a fitted statistics stream")
    _, cfg = stage_config(config_io.load_raw(str(folder / "config.yaml"), []), str(folder / "config.yaml"))
    test = _windows(cfg.data).take(ck.meta["split"]["test"])
    members, stream, reflected = [], [], []
    views = (WindowDataset(ws, enc.cfg.layouts, enc.cfg.frames, version=enc.cfg.features)
             for ws in (test, mirrored(test)))
    for (x, layout, _), (xm, _, _) in zip(*(DataLoader(v, batch_size=256) for v in views)):
        members.append(enc(x, layout)["member_logits"].softmax(-1))         # [M, B, L]
        stream.append(enc.stats_head(x).softmax(-1))                        # [B, L]
        reflected.append(enc(xm, layout)["logits"].exp())                   # [B, L] served head, mirrored
    m, s = torch.cat(members, 1), torch.cat(stream)
    probs = {name: torch.cat([m[:k], s[None]] if with_stats else [m[:k]]).mean(0).numpy()
             for name, (k, with_stats) in VARIANTS.items()}
    probs[MIRRORED] = (probs["3 trunks + statistics stream (the served head)"] + torch.cat(reflected).numpy()) / 2
    clip = np.array([test.clips[i].id for i in test.clip])
    return probs, test.label, clip, ck.cfg.labels


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", type=Path, help="a fold sweep's OUT folder (its fold folders hold checkpoints)")
    ap.add_argument("--write", type=Path, help="also replace this script's section of a BENCHMARKS.md")
    args = ap.parse_args(argv)
    folders = sorted(p.parent.parent for p in args.sweep.glob("*/checkpoint/config.json"))
    if not folders:
        raise SystemExit(f"{args.sweep}: no fold checkpoints (OUT/<fold>/checkpoint)")
    header = machine()
    rows_of = [*VARIANTS, MIRRORED]
    pooled: dict[str, list[np.ndarray]] = {name: [] for name in rows_of}
    truth, clips = [], []
    for folder in folders:
        probs, y, clip, labels = fold_probs(folder)
        for name in rows_of:
            pooled[name].append(probs[name])
        truth.append(y)
        clips.append(clip)
        print(f"{folder.name}: {len(y)} windows", file=sys.stderr)
    y, clip = np.concatenate(truth), np.concatenate(clips)
    rows = ["| head | window acc | window macro-F1 | clip acc | clip macro-F1 |", "|---|---|---|---|---|"]
    for name in rows_of:
        r = report.classification(y, np.concatenate(pooled[name]), clip, labels)
        rows.append(f"| {name} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['clip_accuracy']:.3f} | "
                    f"{r['clip_macro_f1']:.3f} |")
    table = (f"Ensemble ablation on `{args.sweep}` ({len(folders)} folds, {len(y)} held-out windows, "
             f"{len(np.unique(clip))} clips). Command: `python benchmarks/ablate_ensemble.py {args.sweep}`. "
             f"Machine: {header}.\n\n" + "\n".join(rows))
    return publish(table, args.write, "ablate_ensemble")


if __name__ == "__main__":
    raise SystemExit(main())
