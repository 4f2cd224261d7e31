"""Train/test splits that cannot leak: whole clips, never windows of one clip on both sides.

Windows overlap (2 s windows every 0.5 s), so a split by window would put near-copies of a test
window into training. Splits here are decided on clips (a file and body, or a labelled stretch of
a stream) and carried as clip ids:

- ``clip``: a seeded share of each class's clips is held out (stratified, so every class with
  two or more clips appears on both sides);
- ``logo``: leave-one-group-out over a clip field such as ``content`` in Bandai (every fold holds
  out all clips of one group value; the folds together test every clip exactly once);
- ``none``: every clip trains, nothing is held out (a model for use, e.g. ``bandai_full``: its
  stages measure nothing, and it is evaluated on other data);
- ``logo`` with ``validation``: a fold's inner validation (``inner``, train/nested.py), where
  settings are chosen without the fold's own clips on either side.

``Split.to_dict()`` is what checkpoints and results record.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Literal, Protocol, Sequence

import numpy as np

from bodytalk.train.config import strict


class SplitError(ValueError):
    """A split that cannot train or test (an empty side, a class without training clips)."""


class ClipLike(Protocol):
    id: str
    label: str
    groups: dict[str, str]


@strict
@dataclass(frozen=True)
class SplitConfig:
    kind: Literal["clip", "logo", "none"] = "clip"
    test: float = 0.2               # clip: share of each class's clips held out
    seed: int = 0                   # clip: which clips
    group: str = "content"          # logo: the clip field left out one value at a time
    fold: str | None = None         # logo: the value a single-run stage holds out (default: first)
    # logo, inner validation of fold `fold` (train/nested.py): these values are the test side, and
    # `fold` is on neither side, so a setting is chosen without the held-out value's clips
    validation: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.test < 1:
            raise ValueError(f"split.test is a share of clips in (0, 1), got {self.test}")
        if self.validation and (self.kind != "logo" or self.fold is None or self.fold in self.validation):
            raise ValueError("split.validation goes with kind=logo and a split.fold that is not one of its values")


@dataclass(frozen=True)
class Split:
    kind: str
    train: tuple[str, ...]          # clip ids
    test: tuple[str, ...]
    seed: int | None = None
    group: str | None = None        # logo: the field ...
    held_out: str | None = None     # ... and the value left out

    def __post_init__(self) -> None:
        both = set(self.train) & set(self.test)
        if both:  # a guard on every constructor, including from_dict on a hand-edited file
            raise SplitError(f"clips on both sides of the split: {sorted(both)[:5]}")

    @property
    def name(self) -> str:
        if self.kind == "none":
            return "none"
        return f"{self.group}={self.held_out}" if self.kind == "logo" else f"clip(seed={self.seed})"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "seed": self.seed, "group": self.group, "held_out": self.held_out,
                "train": list(self.train), "test": list(self.test)}

    @classmethod
    def from_dict(cls, d: dict) -> "Split":
        return cls(kind=d["kind"], train=tuple(d["train"]), test=tuple(d["test"]), seed=d.get("seed"),
                   group=d.get("group"), held_out=d.get("held_out"))


def by_clip(clips: Sequence[ClipLike], test: float, seed: int) -> Split:
    """Hold out ``round(test * n)`` of each class's n clips (at least one, never all)."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[str]] = defaultdict(list)
    for clip in clips:
        by_label[clip.label].append(clip.id)
    train, held = [], []
    for label in sorted(by_label):
        ids = sorted(by_label[label])
        order = rng.permutation(len(ids))
        n_test = min(max(1, round(test * len(ids))), len(ids) - 1)  # 0 when the class has one clip
        held += [ids[i] for i in order[:n_test]]
        train += [ids[i] for i in order[n_test:]]
    return Split("clip", tuple(sorted(train)), tuple(sorted(held)), seed=seed)


def groups_of(clips: Sequence[ClipLike], group: str) -> list[str]:
    """The sorted values of a clip field; every clip must have it."""
    missing = [c.id for c in clips if group not in c.groups]
    if missing:
        fields = sorted({k for c in clips for k in c.groups})
        raise SplitError(f"{len(missing)} clip(s) have no {group!r} field (e.g. {', '.join(missing[:3])}); "
                         f"fields present: {', '.join(fields) or 'none'}")
    return sorted({c.groups[group] for c in clips})


def leave_one_group_out(clips: Sequence[ClipLike], group: str) -> list[Split]:
    """One fold per value of ``group``: its clips are the test side, all others train."""
    folds = []
    for value in groups_of(clips, group):
        test = tuple(sorted(c.id for c in clips if c.groups[group] == value))
        train = tuple(sorted(c.id for c in clips if c.groups[group] != value))
        folds.append(Split("logo", train, test, group=group, held_out=value))
    return folds


def make(clips: Sequence[ClipLike], cfg: SplitConfig) -> list[Split]:
    """Every split the config describes: one for ``clip``, one per fold for ``logo``."""
    if cfg.kind == "clip":
        return [by_clip(clips, cfg.test, cfg.seed)]
    if cfg.kind == "none":
        return [Split("none", tuple(sorted(c.id for c in clips)), ())]
    return leave_one_group_out(clips, cfg.group)


def inner(clips: Sequence[ClipLike], group: str, fold: str, validation: Sequence[str]) -> Split:
    """Inner validation of fold ``fold``: the ``validation`` values' clips are the test side, the
    clips of every other value but ``fold`` train, and ``fold``'s clips are on neither side."""
    values = groups_of(clips, group)
    if unknown := [v for v in (fold, *validation) if v not in values]:
        raise SplitError(f"{', '.join(unknown)} not a value of {group!r}; values: {', '.join(values)}")
    test = tuple(sorted(c.id for c in clips if c.groups[group] in validation))
    train = tuple(sorted(c.id for c in clips if c.groups[group] not in (fold, *validation)))
    return Split("logo", train, test, group=group, held_out="+".join(validation))


def select(clips: Sequence[ClipLike], cfg: SplitConfig) -> Split:
    """The one split a single training run uses (``logo``: the fold holding out ``cfg.fold``, or
    that fold's inner validation when ``cfg.validation`` names values)."""
    if cfg.kind == "logo" and cfg.validation:
        return inner(clips, cfg.group, cfg.fold, cfg.validation)
    splits = make(clips, cfg)
    if cfg.kind != "logo" or cfg.fold is None:
        return splits[0]
    for split in splits:
        if split.held_out == cfg.fold:
            return split
    raise SplitError(f"split.fold={cfg.fold!r} is not a value of {cfg.group!r}; values: "
                     + ", ".join(s.held_out or "" for s in splits))


def check(split: Split, clips: Sequence[ClipLike], counts: dict[str, int]) -> None:
    """Raise before training when a side is empty or a test class never appears in training.

    ``counts``: windows per clip id (a clip that yielded no windows does not count)."""
    label = {c.id: c.label for c in clips}
    sides = {side: [i for i in getattr(split, side) if counts.get(i, 0) > 0] for side in ("train", "test")}
    for side, ids in sides.items():
        if side == "test" and split.kind == "none":
            continue   # held out nothing, by design
        if not ids:
            raise SplitError(f"split {split.name}: the {side} side has no windows "
                             f"({len(getattr(split, side))} clips, all empty or absent); use more data "
                             "or another split")
    untrained = sorted({label[i] for i in sides["test"]} - {label[i] for i in sides["train"]})
    if untrained:
        raise SplitError(f"split {split.name}: class(es) {', '.join(untrained)} appear only on the test side; "
                         "add clips of them or drop them with the dataset's classes")
