"""Label shift by group coverage: a fixed bias on the head's logits against labels seen in more groups.

On Bandai ds1 *neutral* is the one style performed in every content: six contents (call, kick,
punch, ...) have nothing else. A head trained on it learns *neutral* as "a way of moving not seen
before", and on a held-out content it calls *happy*, *sad* and *tired* clips *neutral* with
confidence (BENCHMARKS.md, issue 15 seventh session). Class weights balance how many windows
each label brings, not how many contents: *neutral* still covers 15 training contents where the
other styles cover 9.

The shift is post-hoc logit adjustment (Menon et al., "Long-tail learning via logit adjustment",
ICLR 2021) with the label's group coverage as its prior:

    logit'_l = logit_l - tau * (log n_l - mean_k log n_k)      n_l: groups whose training clips show l

``tau`` = 0 is the plain head; with even coverage the bias is 0 whatever ``tau``. The bias is
computed from the training clips and saved in the checkpoint (``EncoderConfig.head_bias``), so
serving applies it with no extra work. ``tau`` is chosen without the held-out fold:
``bodytalk train --folds all --choose ... --shift 0,1,2,3`` picks it on each fold's inner validation
contents (``train/nested.py``), and ``pretrain.label_shift`` sets it for one training.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from bodytalk.train.data import require_group
from bodytalk.train.windowset import Clip, WindowSet

if TYPE_CHECKING:
    from bodytalk.model.encoder import SkeletonEncoder


def coverage(clips: Iterable[Clip], labels: Sequence[str], group: str, option: str = "pretrain.label_shift_group"
             ) -> np.ndarray:
    """``[L]`` how many values of ``group`` the clips of each label come from."""
    clips = list(clips)
    require_group(clips, group, option)
    seen: dict[str, set[str]] = {lab: set() for lab in labels}
    for c in clips:
        if c.label in seen:
            seen[c.label].add(c.groups[group])
    return np.array([len(seen[lab]) for lab in labels], dtype=np.float64)


def bias(cover: np.ndarray, tau: float) -> np.ndarray:
    """``[L]`` the logit bias for coverage ``[L]``; labels no training clip shows get none (they are
    not predicted anyway) and do not move the mean."""
    if tau < 0:
        raise ValueError(f"label shift tau must be >= 0, got {tau}")
    seen = cover > 0
    out = np.zeros(len(cover))
    if seen.any():
        logs = np.log(cover[seen])
        out[seen] = -tau * (logs - logs.mean())
    return out


def shifted(probs: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[N, L]`` window probabilities with the bias ``[L]`` added to their logits (NaN rows stay NaN)."""
    z = np.log(np.clip(probs, 1e-12, None)) + b
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def apply(encoder: "SkeletonEncoder", train: WindowSet, labels: tuple[str, ...], tau: float, group: str) -> dict:
    """Set a trained encoder's ``head_bias`` from its training clips' coverage of ``labels`` (the
    head's rows, in order); returns what the checkpoint's meta records of it."""
    used = [train.clips[i] for i in sorted(set(train.clip.tolist()))]
    cover = coverage(used, labels, group)
    b = bias(cover, tau)
    encoder.cfg = dataclasses.replace(encoder.cfg, head_bias=tuple(b.tolist()))
    return {"tau": tau, "group": group, "coverage": dict(zip(labels, cover.tolist())),
            "bias": dict(zip(labels, np.round(b, 4).tolist()))}


def parse_grid(text: str) -> tuple[float, ...]:
    """``--shift 0,1,2,3`` -> (0.0, 1.0, 2.0, 3.0); one line on a bad value."""
    try:
        grid = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--shift {text!r}: give comma-separated numbers >= 0, e.g. 0,1,2,3") from None
    if not grid or any(not np.isfinite(t) or t < 0 for t in grid) or len(set(grid)) != len(grid):
        raise ValueError(f"--shift {text!r}: give distinct comma-separated numbers >= 0, e.g. 0,1,2,3")
    return grid
