"""``ntu:PATH`` -- an NTU RGB+D (60/120) ``.skeleton`` file.

Text layout, one item per line::

    frame count
    per frame:  body count
      per body: bodyID clipedEdges handLeftConfidence handLeftState handRightConfidence
                handRightState isResticted leanX leanY trackingState
                joint count (25)
                25 x: x y z depthX depthY colorX colorY orientationW X Y Z trackingState

Joints are Kinect V2 camera space (``layouts_known.NTU``, already canonical); the per-joint
tracking state gives the confidence as for Kinect CSVs. NTU body ids are 64-bit tracking ids
(beyond float precision: read as integers), mapped to small stable ids in order of appearance.
30 fps; a frame with no body still yields a ``Frame`` (with B = 0) so time keeps moving.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from bodytalk.capture.layouts_known import NTU
from bodytalk.capture.source import Frame, Source
from bodytalk.capture.sources.kinect_csv import tracking_confidence
from bodytalk.capture.sources.text_rows import corrupt, numeric_rows, read_lines

BODY_FIELDS = 10
JOINT_FIELDS = 12


class _Lines:
    """A cursor over the file's lines; every read names what it expected when it fails."""

    def __init__(self, path: Path, lines: list[str]) -> None:
        self.path, self.lines, self.i = path, lines, 0

    def take(self, count: int, what: str) -> tuple[list[str], int]:
        """The next ``count`` lines and the 1-based number of the first."""
        if self.i + count > len(self.lines):
            raise corrupt(self.path, len(self.lines), f"file ends where {what} was expected (truncated?)")
        first = self.i + 1
        self.i += count
        return self.lines[first - 1:self.i], first

    def integer(self, what: str) -> int:
        (text,), line = self.take(1, what)
        try:
            value = int(text.strip())
        except ValueError:
            raise corrupt(self.path, line, f"expected {what} (an integer), found {text.strip()!r}") from None
        if value < 0:
            raise corrupt(self.path, line, f"{what} is negative")
        return value


def read_skeleton(path: Path, lines: list[str]) -> list[tuple[list[int], np.ndarray, np.ndarray]]:
    """Per frame: NTU body ids, joints ``[B, 25, 3]`` metres, confidence ``[B, 25]``."""
    cur = _Lines(path, lines)
    frames = []
    for _ in range(cur.integer("the frame count")):
        ids, joints, conf = [], [], []
        for _ in range(cur.integer("a body count")):
            (info,), line = cur.take(1, "a body info line")
            tokens = info.split()
            if len(tokens) != BODY_FIELDS or not tokens[0].isdigit():
                raise corrupt(path, line, f"expected a body info line of {BODY_FIELDS} values "
                                          "starting with the integer bodyID")
            count_line = cur.i + 1
            if cur.integer("a joint count") != NTU.num_joints:
                raise corrupt(path, count_line, f"expected {NTU.num_joints} joints (Kinect V2)")
            block, first = cur.take(NTU.num_joints, f"{NTU.num_joints} joint lines")
            values = numeric_rows(path, block, first, JOINT_FIELDS)  # [25, 12]
            ids.append(int(tokens[0]))
            joints.append(values[:, :3])
            conf.append(tracking_confidence(path, values[:, 11], np.arange(first, first + NTU.num_joints)))
        frames.append((ids, np.array(joints).reshape(-1, NTU.num_joints, 3),
                       np.array(conf, dtype=np.float32).reshape(-1, NTU.num_joints)))
    rest = next((k for k in range(cur.i, len(lines)) if lines[k].strip()), None)
    if rest is not None:
        raise corrupt(path, rest + 1, f"data after the {len(frames)} frames the header declares")
    return frames


class NTUSource(Source):
    scheme = "ntu"
    help = "NTU RGB+D .skeleton file (Kinect V2 joints, several bodies)"
    example = "ntu:nturgbd_skeletons/S001C001P001R001A001.skeleton"

    def open(self) -> None:
        path = Path(self.target)
        frames = read_skeleton(path, read_lines(path, self.scheme))
        if not frames:
            raise corrupt(path, 1, "the file has no frames")
        small: dict[int, int] = {}  # NTU tracking id -> small stable id
        self._frames = [
            (np.array([small.setdefault(b, len(small)) for b in ids], dtype=np.int32),
             NTU.to_canonical(joints), conf)
            for ids, joints, conf in frames
        ]
        self.layout = NTU
        self.fps = 30.0

    def frames(self) -> Iterator[Frame]:
        for i, (ids, joints, conf) in enumerate(self._frames):
            yield Frame(t=i / self.fps, body_ids=ids, joints=joints, confidence=conf)
