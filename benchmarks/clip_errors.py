"""Which held-out clips does a label path miss, and does it miss the same ones in every sweep?
(a diagnostic, README issue 15).

Reads the saved held-out predictions of one or more fold sweeps (``OUT/<fold>/eval/predictions.npz``
and ``results.json``, as ``bodytalk train --folds`` writes them; nothing is re-run). A clip's label is
the mean of its windows' probabilities, as the sweep's summary scores it. Printed: one row per clip
that some sweep misses, with each sweep's label and its probability next to the true label's, then
how many clips every sweep misses and how many only some do.

Clips missed by every sweep, each time with a confident wrong label, are errors of the recipe, not of
a seed: averaging more members or seeds cannot move them. Clips missed by only some sweeps are where
variance reduction could help.

    python benchmarks/clip_errors.py runs/hop25 runs/hop25_seed1 [--path head] [--write BENCHMARKS.md]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, publish  # noqa: E402


def clip_labels(sweep: Path, path: str) -> tuple[tuple[str, ...], dict[str, tuple[str, int, np.ndarray]]]:
    """The sweep's labels and, per clip id, ``(fold, true label index, mean probabilities [L])``."""
    folds = sorted(p.parent.parent for p in sweep.glob("*/eval/predictions.npz"))
    if not folds:
        raise SystemExit(f"{sweep}: no fold predictions (OUT/<fold>/eval/predictions.npz)")
    labels, clips = None, {}
    for fold in folds:
        fold_labels = tuple(json.loads((fold / "eval" / "results.json").read_text())["labels"])
        if labels not in (None, fold_labels):
            raise SystemExit(f"{fold}: its labels {fold_labels} differ from the sweep's {labels}")
        labels = fold_labels
        with np.load(fold / "eval" / "predictions.npz") as z:
            if path not in z.files:
                raise SystemExit(f"{fold}: no {path!r} predictions (it has {', '.join(z.files)})")
            probs, truth, clip = z[path], z["truth"], z["clip"]
        for c in dict.fromkeys(clip.tolist()):
            rows = clip == c
            clips[c] = (fold.name, int(truth[rows][0]), probs[rows].mean(0))
    return labels, clips


def table(sweeps: list[Path], path: str) -> str:
    read = [clip_labels(s, path) for s in sweeps]
    labels = read[0][0]
    if any(lab != labels for lab, _ in read):
        raise SystemExit("the sweeps label differently: compare sweeps of one label set")
    ids = list(read[0][1])
    if any(set(c) != set(ids) for _, c in read):
        raise SystemExit("the sweeps hold out different clips: compare sweeps of one benchmark")
    missed = {c: [int(clips[c][2].argmax()) != clips[c][1] for _, clips in read] for c in ids}
    rows = [f"| clip (fold) | truth | {' | '.join(f'`{s}`' for s in sweeps)} |",
            "|---|---|" + "---|" * len(sweeps)]
    for c in (c for c in ids if any(missed[c])):
        fold, truth, _ = read[0][1][c]
        cells = []
        for (_, clips), miss in zip(read, missed[c]):
            p = clips[c][2]
            cells.append(f"{labels[int(p.argmax())]} {p.max():.2f} (truth {p[truth]:.2f})" if miss else "right")
        rows.append(f"| {Path(c).name} ({fold}) | {labels[truth]} | {' | '.join(cells)} |")
    every = sum(all(m) for m in missed.values())
    some = sum(any(m) and not all(m) for m in missed.values())
    return (f"Missed clips, `{path}` path, {len(ids)} clips. Command: `python benchmarks/clip_errors.py "
            f"{' '.join(map(str, sweeps))} --path {path}`. Machine: {machine()}.\n\n" + "\n".join(rows)
            + f"\n\nMissed by every sweep: {every} clips; by some but not all: {some}.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweeps", type=Path, nargs="+", help="fold sweep OUT folders of one benchmark")
    ap.add_argument("--path", default="head", help="the label path to read: head, llm, descriptors, cnn")
    ap.add_argument("--write", type=Path, help="also replace this script's section of a BENCHMARKS.md")
    args = ap.parse_args(argv)
    return publish(table(args.sweeps, args.path), args.write, "clip_errors")


if __name__ == "__main__":
    raise SystemExit(main())
