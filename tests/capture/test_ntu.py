"""ntu: source -- NTU RGB+D .skeleton files written here (no NTU data ships with the repo)."""
from __future__ import annotations

import numpy as np
import pytest

from bodytalk.capture.layouts import U
from bodytalk.capture.layouts_known import NTU
from bodytalk.capture.source import SourceError, create

# Two NTU tracking ids one apart: beyond float64 precision, so they must be read as integers.
ID_A, ID_B = 72057594037931101, 72057594037931100


def body_block(body_id: int, joints: np.ndarray, states) -> list[str]:
    """The lines of one body: info line, joint count, 25 joint lines."""
    out = [f"{body_id} 0 1 1 1 1 0 0.05 -0.02 2", "25"]
    for (x, y, z), s in zip(joints, states):
        out.append(f"{x:g} {y:g} {z:g} 250.1 180.2 960.3 540.4 0.9 0.1 0.2 0.3 {s}")
    return out


def skeleton(frames: list[list[tuple[int, np.ndarray, list[int]]]]) -> list[str]:
    out = [str(len(frames))]
    for bodies in frames:
        out.append(str(len(bodies)))
        for body_id, joints, states in bodies:
            out += body_block(body_id, joints, states)
    return out


def pose(shift: float) -> np.ndarray:
    """[25, 3] a Kinect V2 body standing 3 m from the sensor, shifted along X."""
    return np.arange(75, dtype=np.float64).reshape(25, 3) / 100 + [shift, 0.0, 3.0]


def write(tmp_path, lines):
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text("\n".join(lines) + "\n")
    return path


def open_ntu(path):
    src = create(f"ntu:{path}")
    src.open()
    return src


def test_bodies_come_and_go_with_stable_small_ids(tmp_path):
    states = [2] * 25
    states[3] = 1  # Head inferred
    a, b = (ID_A, pose(-0.5), states), (ID_B, pose(0.5), [2] * 25)
    src = open_ntu(write(tmp_path, skeleton([[a], [a, b], [], [b]])))
    frames = list(src.frames())
    assert src.layout is NTU and src.fps == 30.0
    assert [f.t for f in frames] == pytest.approx([0, 1 / 30, 2 / 30, 3 / 30])
    assert [f.body_ids.tolist() for f in frames] == [[0], [0, 1], [], [1]]
    assert all(f.body_ids.dtype == np.int32 for f in frames)
    assert frames[2].joints.shape == (0, 25, 3) and frames[2].confidence.shape == (0, 25)
    f = frames[1]
    assert f.joints.dtype == np.float32 and f.joints.shape == (2, 25, 3)
    np.testing.assert_allclose(f.joints[1], pose(0.5), atol=1e-6)
    assert f.confidence[0, 3] == 0.5 and f.confidence[1, 3] == 1.0
    _, conf = src.layout.to_unified(f.joints, f.confidence)
    assert conf[0, U["head"]] == 0.5 and conf[0, U["neck"]] == 1.0


def _lines():
    return skeleton([[(ID_A, pose(0), [2] * 25)], [(ID_A, pose(0), [2] * 25)]])


# Line numbers: 1 frame count, 2 body count, 3 body info, 4 joint count, 5..29 joints of frame 0.
@pytest.mark.parametrize("edit, line, what", [
    (lambda ls: ls[:20], 20, "file ends where 25 joint lines was expected"),
    (lambda ls: ls[:3] + ["24"] + ls[4:], 4, "expected 25 joints"),
    (lambda ls: ls[:6] + [ls[6].replace("250.1", "nan?")] + ls[7:], 7, "'nan\\?'"),
    (lambda ls: ls[:6] + [ls[6] + " 1"] + ls[7:], 7, "expected 12 values, found 13"),
    (lambda ls: ls[:7] + [ls[7][:-1] + "7"] + ls[8:], 8, "Head has tracking state 7"),
    (lambda ls: ls[:2] + ["body 0 1 1 1 1 0 0 0 2"] + ls[3:], 3, "body info line"),
    (lambda ls: ["two"] + ls[1:], 1, "the frame count"),
    (lambda ls: ls + ["1"], 58, "data after the 2 frames"),
])
def test_corrupt_files_name_file_and_line(tmp_path, edit, line, what):
    path = write(tmp_path, edit(_lines()))
    with pytest.raises(SourceError, match=what) as err:
        open_ntu(path)
    assert str(err.value).startswith(f"{path}:{line}:")


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(SourceError, match="no frames"):
        open_ntu(write(tmp_path, ["0"]))
    with pytest.raises(SourceError, match="no such file"):
        open_ntu(tmp_path / "absent.skeleton")
