"""Windows -> encoder inputs for torch: one view (supervised) or two augmented views (contrastive).

Augmentation happens on the skeleton (``augment``), then ``features.prepare`` turns each view
into ``[frames, 17, C]``. The random draws of window i in epoch e come from a generator seeded
with ``(seed, e, i)``: the same batches whatever the number of workers or ranks, and a resumed
run sees exactly the epochs an uninterrupted one would.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from bodytalk.model.skeleton.features import InsufficientData, WindowInput, prepare
from bodytalk.train.augment import Augmenter
from bodytalk.train.windowset import WindowSet


def layout_index(windows: WindowSet, layouts: tuple[str, ...]) -> np.ndarray:
    """Per-window index into the encoder's layout vocabulary (unknown layouts share slot 0,
    as ``SkeletonEncoder.layout_ids`` does)."""
    slot = {name: i for i, name in enumerate(layouts)}
    return np.array([slot.get(name, 0) for name in windows.layouts()], dtype=np.int64)


class WindowDataset(Dataset):
    """Items: ``(view_1, ..., view_n, layout [], label [])``; views ``[frames, 17, C]`` float32."""

    def __init__(self, windows: WindowSet, layouts: tuple[str, ...], frames: int,
                 augment: Augmenter | None = None, views: int = 1, seed: int = 0, *, version: int) -> None:
        if views > 1 and not augment:
            raise ValueError("several views of a window need augmentations, or they are identical")
        self.windows, self.frames, self.augment, self.views, self.seed = windows, frames, augment, views, seed
        self.version = version  # features.prepare version: the encoder config's `features`, never a default
        self.layout = layout_index(windows, layouts)
        self.epoch = 0
        # Without augmentation every epoch sees the same inputs: compute them once. With only
        # non-random ops (mirror), every variant of every window is computed once: [V, N, T, 17, C].
        self._fixed = None if augment else np.stack([windows.features(i, frames, version) for i in range(len(windows))])
        self._variants = augment.variants() if augment and views == 1 else None
        if self._variants is not None:
            self._cached = np.stack([np.stack([self._variant(i, ops) for i in range(len(windows))])
                                     for _, ops in self._variants])
            self._probs = np.array([p for p, _ in self._variants])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.windows)

    def _view(self, i: int, rng: np.random.Generator) -> np.ndarray:
        w = self.windows
        joints, conf = self.augment(w.joints[i], w.confidence[i], rng)
        try:
            return prepare(WindowInput(joints, conf, w.fps), self.frames, self.version)
        except InsufficientData:  # a crop that kept mostly untracked frames: use the window as is
            return w.features(i, self.frames, self.version)

    def _variant(self, i: int, ops) -> np.ndarray:
        w = self.windows
        joints, conf = self.augment.apply(w.joints[i], w.confidence[i], ops)
        return prepare(WindowInput(joints, conf, w.fps), self.frames, self.version)

    def __getitem__(self, i: int):
        if self._fixed is not None:
            views = [self._fixed[i]]
        elif self._variants is not None:
            views = [self._cached[np.random.default_rng((self.seed, self.epoch, i)).choice(len(self._probs),
                                                                                          p=self._probs), i]]
        else:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            views = [self._view(i, rng) for _ in range(self.views)]
        return (*(torch.from_numpy(v) for v in views), torch.tensor(self.layout[i]),
                torch.tensor(self.windows.label[i]))

