"""The windows a training stage reads: ``Clip`` (one labelled stretch of one body) and ``WindowSet``
(every window of a dataset, with its clip, label and padding), and their subsets by clip, by label and
by split. ``data.load`` builds them.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bodytalk.model.skeleton.features import WindowInput, prepare
from bodytalk.train.splits import Split


@dataclass(frozen=True)
class Clip:
    id: str                      # "<dataset>/<file>[#b<body>]" or "<dataset>/b<body>/s<segment>"
    label: str
    layout: str                  # source layout id (the encoder's layout embedding)
    dataset: str
    groups: dict[str, str] = field(default_factory=dict)


@dataclass
class WindowSet:
    joints: np.ndarray       # [N, T, 17, 3] float32, canonical metres
    confidence: np.ndarray   # [N, T, 17] float32
    label: np.ndarray        # [N] int64, index into labels
    clip: np.ndarray         # [N] int64, index into clips
    clips: tuple[Clip, ...]
    labels: tuple[str, ...]
    fps: float
    real_frames: np.ndarray | None = None  # [N] int64 frames of real motion (T unless padded; None: all T)

    def __post_init__(self) -> None:
        if self.real_frames is None:
            self.real_frames = np.full(len(self.label), self.joints.shape[1], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.label)

    @property
    def padded(self) -> np.ndarray:
        """[N] bool: windows padded from a stretch shorter than the window."""
        return self.real_frames < self.joints.shape[1]

    def subset(self, keep: np.ndarray) -> "WindowSet":
        """The windows selected by ``keep`` (a mask or indices)."""
        return WindowSet(self.joints[keep], self.confidence[keep], self.label[keep], self.clip[keep],
                         self.clips, self.labels, self.fps, self.real_frames[keep])

    def layouts(self) -> list[str]:
        return [self.clips[i].layout for i in self.clip]

    def counts(self) -> dict[str, int]:
        """Windows per clip id."""
        return {self.clips[i].id: n for i, n in Counter(self.clip.tolist()).items()}

    def relabel(self, labels: Sequence[str]) -> "WindowSet":
        """The windows whose label is in ``labels``, their indices into ``labels`` (a subset, reordered)."""
        index = {lab: i for i, lab in enumerate(labels)}
        keep = np.isin(self.label, [i for i, lab in enumerate(self.labels) if lab in index])
        out = self.subset(keep)
        out.label = np.array([index[self.labels[i]] for i in out.label], dtype=np.int64)
        out.labels = tuple(labels)
        return out

    def take(self, clip_ids) -> "WindowSet":
        """The windows of these clips."""
        keep = np.isin(self.clip, [i for i, c in enumerate(self.clips) if c.id in set(clip_ids)])
        return self.subset(keep)

    def split(self, split: Split) -> tuple["WindowSet", "WindowSet"]:
        return self.take(split.train), self.take(split.test)

    def features(self, index: int, frames: int, version: int) -> np.ndarray:
        """Encoder input of one window, ``[frames, 17, C]`` (``features.prepare`` of that version)."""
        return prepare(WindowInput(self.joints[index], self.confidence[index], self.fps), frames, version)

    def padding(self) -> dict[str, int]:
        """How many windows, and clips with a padded window (a clip shorter than the window)."""
        return {"windows": int(self.padded.sum()), "clips": len(set(self.clip[self.padded].tolist()))}

    def summary(self) -> dict:
        per_label = Counter(self.labels[i] for i in self.label)
        clips = Counter(self.clips[i].label for i in set(self.clip.tolist()))
        return {"windows": len(self), "clips": sum(clips.values()), "padded": self.padding(),
                "per_label": {lab: {"windows": per_label[lab], "clips": clips[lab]} for lab in self.labels}}
