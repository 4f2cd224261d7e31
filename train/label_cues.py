"""A checkpoint's explanation cues, learned from its own training windows.

Explanations cite a window's reasons for its label (model/text/evidence_text.py): its measured
descriptors that support the label by the label's cues. The literature's table (``LABEL_CUES``)
knows eight labels. A lab's own label set ("excited", "bored") has no cues there, and on Bandai
the data go against 9 of its 43 cues (`python benchmarks/label_cues_on_data.py`). This learns, per
label, the descriptors that set its windows apart from the other labels' windows:
- the difference of means in the descriptor's scale units, within each group (a content such as
  Bandai's "walk", so the action is compared with itself), averaged over the groups that hold
  both;
- the ``per_label`` largest differences of at least ``min_effect`` become cues, with their sign.

The comparison is with all other labels, not with neutral. On Bandai every style moves with less
body acceleration than the neutral takes, so cues against neutral made "little body acceleration"
the first reason of every label. A reason should say why this label and not another. A label the
data give no cue to keeps the literature's. The cues are stored in the checkpoint config
(``label_cues``) and replace the literature's for those labels in serving, eval's grading and
training targets (``align.learn_cues`` learns them before the first text is written). Only
training windows are read, never the held-out ones:

    bodytalk label-cues runs/bandai/checkpoint [--per-label 6] [--min-effect 0.5] [--group content]
    bodytalk label-cues runs/bandai/checkpoint --literature      # back to the literature's cues
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bodytalk.model import checkpoint
from bodytalk.model.skeleton import descriptors as desc
from bodytalk.model.skeleton.descriptor_bands import SPECS
from bodytalk.model.text.evidence_text import DIRECTION_MARKS

log = logging.getLogger("bodytalk.train")
NAMES = tuple(SPECS)


def scaled(measured: Sequence[desc.Descriptors]) -> np.ndarray:
    """``[N, D]`` each window's descriptors of ``NAMES`` in scale units from neutral (NaN: not measured)."""
    return np.array([[(d[n].value - SPECS[n].neutral) / SPECS[n].scale if d[n].valid else np.nan for n in NAMES]
                     for d in measured]).reshape(len(measured), len(NAMES))


def effects(z: np.ndarray, labels: np.ndarray, groups: Sequence[str], label: int,
            other: np.ndarray | None = None) -> np.ndarray:
    """``[D]`` per descriptor: the mean of ``label``'s windows of ``z`` (``scaled``) minus the mean of
    the ``other`` windows (a mask; default: the other labels'), per group, averaged over the groups
    with both."""
    groups = np.asarray(groups)
    other = labels != label if other is None else other
    rows = []
    with warnings.catch_warnings():   # a descriptor no window of a group measured: NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        for g in np.unique(groups):
            mine, theirs = z[(labels == label) & (groups == g)], z[other & (groups == g)]
            if len(mine) and len(theirs):
                rows.append(np.nanmean(mine, 0) - np.nanmean(theirs, 0))
        return np.nanmean(np.stack(rows), 0) if rows else np.full(len(NAMES), np.nan)


def learn(measured: Sequence[desc.Descriptors], labels: np.ndarray, names: Sequence[str], groups: Sequence[str],
          per_label: int = 6, min_effect: float = 0.5) -> dict[str, tuple[tuple[str, int], ...]]:
    """label name -> its learned cues ``((descriptor, +1 | -1), ...)``, largest effect first; labels
    with no window or no effect of ``min_effect`` are left out."""
    if per_label < 1 or not min_effect > 0:
        raise ValueError("per_label must be >= 1 and min_effect > 0")
    z, out = scaled(measured), {}
    for k, name in enumerate(names):
        if not (labels == k).any():
            continue
        e = effects(z, labels, groups, k)
        order = [i for i in np.argsort(-np.nan_to_num(np.abs(e))) if abs(e[i]) >= min_effect][:per_label]
        if order:
            out[name] = tuple((NAMES[i], int(np.sign(e[i]))) for i in order)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bodytalk label-cues", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, help="a checkpoint trained with `bodytalk train` (it records its data)")
    ap.add_argument("--per-label", type=int, default=6, help="most cues a label gets (default %(default)s)")
    ap.add_argument("--min-effect", type=float, default=0.5,
                    help="smallest difference from the other labels, in descriptor scale units (default %(default)s)")
    ap.add_argument("--group", help="clip group to compare within (default: the split's group, e.g. content)")
    ap.add_argument("--literature", action="store_true", help="remove learned cues: back to the literature's")
    args = ap.parse_args(argv)
    try:
        if args.literature:
            checkpoint.replace_config(args.checkpoint, label_cues=None)
            print(f"{args.checkpoint}: explanations use the literature's cues")
            return 0
        from bodytalk.model.inference import EmotionModel
        from bodytalk.train.label_bias import training_windows

        model = EmotionModel.load(args.checkpoint, with_llm=False)
        train = training_windows(model)
        group = args.group or model.meta.get("data_config", {}).get("split", {}).get("group") or ""
        measured = [desc.compute(train.joints[i], train.confidence[i], train.fps) for i in range(len(train))]
        cues = learn(measured, train.label, model.labels, [train.clips[c].groups.get(group, "") for c in train.clip],
                     args.per_label, args.min_effect)
        checkpoint.replace_config(args.checkpoint, label_cues=cues)
    except (OSError, ValueError, KeyError, AttributeError) as err:
        log.error("%s", err)
        return 2
    print(f"{args.checkpoint}: cues learned from {len(train)} training windows"
          + (f" within {group!r}" if group else ""))
    for label, found in cues.items():
        print(f"  {label}: " + ", ".join(f"{n} {DIRECTION_MARKS[s]}" for n, s in found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
