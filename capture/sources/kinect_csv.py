"""``kinect-csv:PATH`` -- a Kinect V2 body recording as written by Microsoft's KinectReader.

One frame per line, no header: a timestamp in 100 ns ticks, then 25 x (X, Y, Z, TrackingState)
in SDK JointType order, with a trailing comma. Positions are Kinect camera space, already
canonical (``layouts_known.KINECT_V2``). Tracking state 2 (tracked) -> confidence 1, 1 (inferred)
-> 0.5, 0 (not tracked) -> 0. Dropped frames show as gaps in the timestamps; they are kept as
they are (the windower fills or restarts across gaps), so ``Frame.t`` is ticks / 1e7 seconds on
the Kinect's clock. One body, id 0.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from bodytalk.capture.layouts_known import KINECT_V2
from bodytalk.capture.source import Frame, Source
from bodytalk.capture.sources.text_rows import corrupt, numeric_rows, read_lines

TICKS_PER_SECOND = 1e7
# Kinect TrackingState (0 NotTracked, 1 Inferred, 2 Tracked) -> confidence.
STATE_CONFIDENCE = np.array([0.0, 0.5, 1.0], dtype=np.float32)


def tracking_confidence(path: Path, states: np.ndarray, line_numbers: np.ndarray) -> np.ndarray:
    """Tracking states ``[..., 25]`` (0, 1, 2) -> confidence; another value names its line.

    ``line_numbers`` (same shape, broadcastable) holds the 1-based file line of each state.
    """
    bad = ~np.isin(states, (0, 1, 2))
    if bad.any():
        at = tuple(np.argwhere(bad)[0])
        line = np.broadcast_to(line_numbers, states.shape)[at]
        raise corrupt(path, int(line), f"{KINECT_V2.joints[at[-1]]} has tracking state {states[at]:g}; "
                                       "expected 0 (not tracked), 1 (inferred) or 2 (tracked)")
    return STATE_CONFIDENCE[states.astype(np.int64)]


class KinectCSVSource(Source):
    scheme = "kinect-csv"
    help = "Kinect V2 body CSV (KinectReader format: ticks, then 25 x X,Y,Z,state)"
    example = "kinect-csv:recordings/joints.csv"

    def open(self) -> None:
        path = Path(self.target)
        lines = read_lines(path, self.scheme)
        while lines and not lines[-1].strip():  # trailing blank lines are harmless
            lines.pop()
        if not lines:
            raise corrupt(path, 1, "the file has no frames")
        j = KINECT_V2.num_joints
        rows = numeric_rows(path, lines, 1, 1 + 4 * j, sep=",")   # [F, 101]
        ticks = rows[:, 0]
        back = np.flatnonzero(np.diff(ticks) <= 0)
        if back.size:
            raise corrupt(path, back[0] + 2, "timestamp does not increase (lines out of order?)")
        per_joint = rows[:, 1:].reshape(len(rows), j, 4)          # [F, 25, (x, y, z, state)]
        self._t = ticks / TICKS_PER_SECOND
        self._joints = KINECT_V2.to_canonical(per_joint[..., :3])  # [F, 25, 3] metres
        self._conf = tracking_confidence(path, per_joint[..., 3], np.arange(1, len(rows) + 1)[:, None])
        self.layout = KINECT_V2
        self.fps = 30.0

    def frames(self) -> Iterator[Frame]:
        ids = np.zeros(1, dtype=np.int32)
        for t, joints, conf in zip(self._t, self._joints, self._conf):
            yield Frame(t=float(t), body_ids=ids, joints=joints[None], confidence=conf[None])
