"""``bvh:PATH`` -- a BVH motion-capture file, any rig of a known family (``layouts_known.BVH_FAMILIES``).

``bvhio`` reads the hierarchy; the MOTION block is read here with numpy (bvhio builds one object
per joint per frame and reports no line numbers) and posed with vectorised forward kinematics
(``bvh_fk``). Options:

- ``scale=F``: file units -> metres. Without it the factor is inferred from the rig's size: the
  candidate among ``CANDIDATE_SCALES`` that makes the standing height closest to 1.7 m.
- ``up=y|z``: the file's up axis (default y); ``z`` rotates with ``layouts.Z_UP_TO_Y_UP``.

One body (id 0), confidence 1, time ``frame / fps`` with fps from ``Frame Time``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np

from bodytalk.capture.layouts import IDENTITY, Z_UP_TO_Y_UP, Layout
from bodytalk.capture.layouts_known import bvh_layout
from bodytalk.capture.source import Frame, Source, SourceError
from bodytalk.capture.sources.bvh_fk import Skeleton, forward_kinematics, local_transforms, path_length
from bodytalk.capture.sources.text_rows import corrupt, numeric_rows, read_lines

# metres per file unit: m, cm, mm, inch, and CMU's ASF length unit (inch / 0.45).
CANDIDATE_SCALES = (1.0, 0.01, 0.001, 0.0254, 0.056444)
STANDING_HEIGHT_M = 1.7
# Head joint (skull base) to ankle joint is about 0.86 of stature (anthropometric tables: head
# joint ~0.90 H, ankle ~0.04 H), so a bone-length path gives the height of any posed rig.
HEAD_TO_ANKLE_PER_HEIGHT = 0.86
UP_AXES = {"y": IDENTITY, "z": Z_UP_TO_Y_UP}


class BVHSource(Source):
    scheme = "bvh"
    help = "BVH motion-capture file (Bandai, CMU, Mixamo rigs); options scale=METRES_PER_UNIT, up=y|z"
    example = "bvh:data/walk.bvh?up=y"

    def open(self) -> None:
        path = Path(self.target)
        lines = read_lines(path, self.scheme)
        motion_line, frames, frame_time = _motion_header(path, lines)
        skel = _hierarchy(path)
        motion = _motion(path, lines, motion_line, frames, skel.num_channels)

        up = self.option("up", "y").lower()
        if up not in UP_AXES:
            raise SourceError(f"bvh: option up={up!r}: expected one of {', '.join(UP_AXES)}")
        try:
            rig = bvh_layout(skel.names, skel.parents, 1.0)  # finds the unified joints
        except ValueError as err:
            raise SourceError(f"bvh: {path}: {err}; rename the joints or add the rig's family "
                              "to layouts_known.BVH_FAMILIES") from None
        height = standing_height(skel, motion, rig)  # file units
        scale = self.option("scale", None, float)
        if scale is None:
            scale = nearest_scale(height)
        elif not scale > 0:
            raise SourceError(f"bvh: option scale={scale} must be > 0 (metres per file unit)")

        self.layout = bvh_layout(skel.names, skel.parents, scale, UP_AXES[up])
        self.fps = 1.0 / frame_time
        self.height_m = height * scale  # the performer's estimated standing height
        self._joints = self.layout.to_canonical(forward_kinematics(skel, motion))  # [F, J, 3] m

    def frames(self) -> Iterator[Frame]:
        ids = np.zeros(1, dtype=np.int32)
        conf = np.ones((1, self.layout.num_joints), dtype=np.float32)
        for i, joints in enumerate(self._joints):
            yield Frame(t=i / self.fps, body_ids=ids, joints=joints[None], confidence=conf)


def standing_height(skel: Skeleton, motion: np.ndarray, layout: Layout) -> float:
    """The performer's standing height in file units, from bone lengths (not from a pose).

    Bone lengths come from the first frame's local translations (position channels may replace
    offsets); the head-to-ankle path over them does not depend on the pose, so rigs whose rest
    pose is not standing (Bandai's lies along X) are measured right.
    """
    trans, _ = local_transforms(skel, motion[:1])
    bones = np.linalg.norm(trans[0], axis=-1)  # [J] length of the bone to each joint's parent
    bones[np.asarray(skel.parents) < 0] = 0.0  # a root's translation is a position, not a bone
    head = _joint(layout, "head")
    ankles = [path_length(skel, bones, head, _joint(layout, a)) for a in ("l_ankle", "r_ankle")]
    return float(np.mean(ankles)) / HEAD_TO_ANKLE_PER_HEIGHT


def nearest_scale(height: float) -> float:
    """The candidate factor that makes ``height`` closest to ``STANDING_HEIGHT_M``."""
    if not height > 0:
        raise SourceError("bvh: cannot infer units from a rig of zero size: give ?scale=")
    return min(CANDIDATE_SCALES, key=lambda s: abs(math.log(height * s / STANDING_HEIGHT_M)))


def _joint(layout: Layout, unified: str) -> int:
    (name,) = layout.unified[unified]  # BVH families map one to one
    return layout.index(name)


def _motion_header(path: Path, lines: list[str]) -> tuple[int, int, float]:
    """Index of the ``MOTION`` line, the declared frame count and the frame time."""
    start = next((i for i, text in enumerate(lines) if text.split()[:1] == ["MOTION"]), None)
    if start is None:
        raise corrupt(path, len(lines), "no MOTION section before the end of the file (truncated?)")
    frames_i, time_i = start + 1, start + 2
    tokens = lines[frames_i].split() if frames_i < len(lines) else []
    if len(tokens) != 2 or tokens[0] != "Frames:" or not tokens[1].isdigit():
        raise corrupt(path, frames_i + 1, "expected 'Frames: N' after MOTION")
    tokens = lines[time_i].split() if time_i < len(lines) else []
    try:
        frame_time = float(tokens[2]) if tokens[:2] == ["Frame", "Time:"] and len(tokens) == 3 else 0.0
    except ValueError:
        frame_time = 0.0
    if not frame_time > 0:
        raise corrupt(path, time_i + 1, "expected 'Frame Time: SECONDS' (> 0) after the frame count")
    return start, int(lines[frames_i].split()[1]), frame_time


def _hierarchy(path: Path) -> Skeleton:
    """The HIERARCHY block through bvhio, flattened depth-first (the order of the motion columns)."""
    import bvhio

    try:
        root = bvhio.readAsBvh(str(path), loadKeyFrames=False).Root
    except SyntaxError as err:  # bvhio's line numbers restart in every joint: quote the line instead
        raise SourceError(f"{path}: bad HIERARCHY at {(err.text or '').strip()!r}: {err.msg}") from None
    except (ValueError, IndexError) as err:
        raise SourceError(f"{path}: bad HIERARCHY: {err}") from None
    names, parents, offsets, channels = [], [], [], []
    stack = [(root, -1)]
    while stack:
        joint, parent = stack.pop()
        names.append(joint.Name)
        parents.append(parent)
        offsets.append(tuple(joint.Offset))
        channels.append(tuple(joint.Channels))
        stack.extend((child, len(names) - 1) for child in reversed(joint.Children))
    try:
        return Skeleton(tuple(names), tuple(parents), np.array(offsets, dtype=np.float64), tuple(channels))
    except ValueError as err:
        raise SourceError(f"{path}: {err}") from None


def _motion(path: Path, lines: list[str], motion_line: int, frames: int, width: int) -> np.ndarray:
    """The motion rows ``[F, C]``; a wrong count or a bad value names its line."""
    first = motion_line + 3  # index of the first data line
    end = len(lines)
    while end > first and not lines[end - 1].strip():  # trailing blank lines are harmless
        end -= 1
    rows = numeric_rows(path, lines[first:end], first + 1, width)
    if len(rows) != frames:
        raise corrupt(path, motion_line + 2, f"header says {frames} frames but {len(rows)} motion "
                                             "lines follow")
    if frames == 0:
        raise corrupt(path, motion_line + 2, "the file has no frames")
    return rows
