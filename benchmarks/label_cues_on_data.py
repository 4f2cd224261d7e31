"""Do the explanation cues hold on real motion? ``LABEL_CUES`` against a labelled dataset.

Explanations cite a window's measured phrases that support its label by ``LABEL_CUES``
(model/text/evidence_text.py: which direction of which descriptor goes with which label, from the
emotion-and-movement literature). This script reads how each cue's descriptor actually differs
between a label's windows and the neutral ones: per content group (the same action, e.g. Bandai's
"walk"), the label's mean minus neutral's mean in the descriptor's scale units, averaged over the
groups that have both. A cue holds when that difference has the cue's sign (a "close to neutral"
cue: when it is within half a unit). Comparing within a content keeps the action out of it: a
kick is fast whatever the mood.

    python benchmarks/label_cues_on_data.py [--data bvh:../shared/data/bandai-namco-ds1/data]
        [--label-key style] [--classes angry,...,normal] [--rename normal=neutral] [--group content]

Second table: cues learned the way a checkpoint learns them (train/label_cues.py: each label against
the other labels) on every content but one, checked the same way on that held-out content, next to
the literature's on the same windows: do they hold on motion they were not learned from? It only
reads.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bodytalk.model.skeleton import descriptors as desc
from bodytalk.model.text.evidence_text import DIRECTION_MARKS, LABEL_CUES
from bodytalk.train import label_cues
from bodytalk.train.data import DataConfig, DatasetSpec, load

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, publish  # noqa: E402

BANDAI = "bvh:../shared/data/bandai-namco-ds1/data"
HOLDS_NEAR = 0.5   # a "close to neutral" cue holds within this many scale units


def _sign(x: float) -> int:
    """A difference's direction; a rounding-level one (a descriptor constant on both sides) is none."""
    return int(np.sign(round(x, 9)))


def differences(z: np.ndarray, index: np.ndarray, groups: np.ndarray, label: int,
                neutral: int | None) -> dict[str, float]:
    """Per descriptor name: the label's mean minus neutral's (None: all other labels'), in scale
    units, averaged over the groups with both (``label_cues.effects``, the checkpoint's own measure)."""
    other = None if neutral is None else index == neutral
    return dict(zip(label_cues.NAMES, label_cues.effects(z, index, groups, label, other).tolist()))


def holds(cues, z: np.ndarray, index: np.ndarray, groups: np.ndarray, label: int) -> tuple[int, int]:
    """(cues that hold against the other labels, cues with data) of ``label`` on these windows; a
    "close to neutral" cue is not counted."""
    diff = differences(z, index, groups, label, None)
    signs = [_sign(diff[n]) == s for n, s in cues if s and np.isfinite(diff[n])]
    return sum(signs), len(signs)


def held_out(measured, z: np.ndarray, index: np.ndarray, groups: np.ndarray, names: tuple[str, ...]) -> str:
    """The second table: learned on all contents but one vs the literature's, on the one."""
    rows, total = ["| held-out content | literature cues hold | learned cues hold |", "|---|---|---|"], np.zeros(4, int)
    for g in np.unique(groups):
        train, test = groups != g, groups == g
        learned = label_cues.learn([m for m, t in zip(measured, train) if t], index[train], names, groups[train])
        counts = np.zeros(4, int)
        for k in np.unique(index[test]):
            counts[:2] += holds(LABEL_CUES.get(names[k], ()), z[test], index[test], groups[test], k)
            counts[2:] += holds(learned.get(names[k], ()), z[test], index[test], groups[test], k)
        total += counts
        if counts.any():   # a content performed in one style only has nothing to compare within
            rows.append(f"| {g} | {counts[0]} of {counts[1]} | {counts[2]} of {counts[3]} |")
    rows.append(f"| **all** | **{total[0]} of {total[1]} ({total[0] / max(total[1], 1):.0%})** "
                f"| **{total[2]} of {total[3]} ({total[2] / max(total[3], 1):.0%})** |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=BANDAI, help="a labelled dataset URI (default: Bandai ds1)")
    ap.add_argument("--label-key", default="style")
    ap.add_argument("--classes", default="angry,happy,sad,proud,not-confident,tired,normal")
    ap.add_argument("--rename", default="normal=neutral", help="comma list of dataset=model label renames")
    ap.add_argument("--group", default="content", help="the clip group to compare within (default %(default)s)")
    ap.add_argument("--neutral", default="neutral", help="the label the others are compared with")
    ap.add_argument("--write", type=Path, help="also replace this script's section of a BENCHMARKS.md")
    args = ap.parse_args(argv)
    spec = DatasetSpec(args.data, label_key=args.label_key, classes=tuple(args.classes.split(",")),
                       rename=dict(kv.split("=", 1) for kv in args.rename.split(",") if kv), name="data")
    try:
        windows = load(DataConfig(datasets=(spec,), window=2.0, hop=0.5))
    except (OSError, ValueError) as err:
        raise SystemExit(f"label_cues_on_data: {err}") from None
    measured = [desc.compute(windows.joints[i], windows.confidence[i], windows.fps) for i in range(len(windows))]
    z, index, names = label_cues.scaled(measured), windows.label, windows.labels
    groups = np.array([windows.clips[c].groups.get(args.group, "") for c in windows.clip])
    if args.neutral not in names or not (index == names.index(args.neutral)).any():
        raise SystemExit(f"label_cues_on_data: no {args.neutral!r} windows to compare with")
    rows, held, total = ["| label | cues: descriptor (cue direction) label minus neutral |", "|---|---|"], 0, 0
    for label, cues in LABEL_CUES.items():
        if label == args.neutral or label not in names or not (index == names.index(label)).any():
            continue
        diff = differences(z, index, groups, names.index(label), names.index(args.neutral))
        cells = []
        for name, sign in cues:
            ok = abs(diff[name]) < HOLDS_NEAR if sign == 0 else _sign(diff[name]) == sign
            held, total = held + bool(ok), total + 1
            cells.append(f"{name} ({DIRECTION_MARKS[sign]}) {diff[name]:+.2f}{'' if ok else ' **x**'}")
        rows.append(f"| {label} | " + ", ".join(cells) + " |")
    table = (f"Explanation cues on `{args.data}` ({len(windows)} windows, compared within `{args.group}`): "
             f"**{held} of {total}** cues hold (**x**: the data go the other way). Command: `python "
             f"benchmarks/label_cues_on_data.py`. Machine: {machine()}.\n\n" + "\n".join(rows)
             + "\n\nCues learned as `bodytalk label-cues` learns them (each label against the other labels, "
               "within contents; 6 a label at most, effect >= 0.5) on all contents but one, checked on that "
               "one against its other labels, beside the literature's on the same windows (contents performed in one "
               "style only are left out):\n\n"
             + held_out(measured, z, index, groups, names))
    return publish(table, args.write, "label_cues_on_data")


if __name__ == "__main__":
    raise SystemExit(main())
