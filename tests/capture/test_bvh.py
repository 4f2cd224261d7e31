"""bvh: source -- forward kinematics checked by hand, units, axes, rig families, corrupt files,
and every file of the Bandai-Namco data set when the shared data is present."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bodytalk.capture.layouts import U
from bodytalk.capture.source import SourceError, create

# A CMU-style rig in a T-pose, centimetres, Y up, facing +Z (so the person's left is +X).
# "LeftShoulder" is the clavicle; the shoulder joint is "LeftArm".
CMU_RIG = [  # name, parent, offset
    ("Hips", None, (0, 0, 0)),
    ("LeftUpLeg", "Hips", (10, -5, 0)), ("LeftLeg", "LeftUpLeg", (0, -42, 0)),
    ("LeftFoot", "LeftLeg", (0, -42, 0)), ("LeftToeBase", "LeftFoot", (0, -5, 12)),
    ("RightUpLeg", "Hips", (-10, -5, 0)), ("RightLeg", "RightUpLeg", (0, -42, 0)),
    ("RightFoot", "RightLeg", (0, -42, 0)), ("RightToeBase", "RightFoot", (0, -5, 12)),
    ("Spine", "Hips", (0, 10, 0)), ("Spine1", "Spine", (0, 20, 0)),
    ("Neck", "Spine1", (0, 20, 0)), ("Head", "Neck", (0, 10, 0)),
    ("LeftShoulder", "Spine1", (3, 15, 0)), ("LeftArm", "LeftShoulder", (15, 0, 0)),
    ("LeftForeArm", "LeftArm", (28, 0, 0)), ("LeftHand", "LeftForeArm", (25, 0, 0)),
    ("RightShoulder", "Spine1", (-3, 15, 0)), ("RightArm", "RightShoulder", (-15, 0, 0)),
    ("RightForeArm", "RightArm", (-28, 0, 0)), ("RightHand", "RightForeArm", (-25, 0, 0)),
]
HIP_HEIGHT = 97.0
ZXY = ("Zrotation", "Xrotation", "Yrotation")
XYZ = ("Xrotation", "Yrotation", "Zrotation")
POS = ("Xposition", "Yposition", "Zposition")


def bvh_text(rig, rows, root_order=ZXY, joint_order=ZXY, unit=1.0, frame_time=1 / 30,
             extra_channels=None) -> str:
    """BVH text for ``rig``; the root has 6 channels, other joints 3 (or ``extra_channels[name]``)."""
    extra_channels = extra_channels or {}
    children = {name: [c for c, p, _ in rig if p == name] for name, _, _ in rig}
    offsets = {name: np.asarray(off, float) * unit for name, _, off in rig}
    out = ["HIERARCHY"]

    def joint(name, depth, root=False):
        pad = "  " * depth
        chans = POS + root_order if root else extra_channels.get(name, joint_order)
        out.extend([f"{pad}{'ROOT' if root else 'JOINT'} {name}", pad + "{",
                    f"{pad}  OFFSET {' '.join(f'{v:g}' for v in offsets[name])}",
                    f"{pad}  CHANNELS {len(chans)} {' '.join(chans)}"])
        for child in children[name]:
            joint(child, depth + 1)
        if not children[name]:
            out.extend([f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET 0 {unit:g} 0", pad + "  }"])
        out.append(pad + "}")

    joint(rig[0][0], 0, root=True)
    out += ["MOTION", f"Frames: {len(rows)}", f"Frame Time: {frame_time:.7f}"]
    out += [" ".join(f"{v:g}" for v in row) for row in rows]
    return "\n".join(out) + "\n"


def rest_rows(rig, frames=1, unit=1.0, root_rot=(0, 0, 0), extra=None):
    """Motion rows: the root at hip height with ``root_rot`` (in root channel order), all else 0."""
    extra = extra or {}
    row = [0, HIP_HEIGHT * unit, 0, *root_rot]
    for name, parent, _ in rig[1:]:
        row += extra.get(name, [0, 0, 0])
    return [row] * frames


def write(tmp_path: Path, text: str, name="take.bvh") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def open_bvh(path: Path, query: str = ""):
    src = create(f"bvh:{path}{query}")
    src.open()
    return src


def unified(src, frame):
    uj, _ = src.layout.to_unified(frame.joints, frame.confidence)
    return uj[0]  # [17, 3] of body 0


def test_cmu_rig_clavicle_is_not_the_shoulder(tmp_path):
    src = open_bvh(write(tmp_path, bvh_text(CMU_RIG, rest_rows(CMU_RIG))))
    frame = next(src.frames())
    uj = unified(src, frame)
    assert src.layout.id == "bvh-cmu" and src.layout.scale == 0.01
    # LeftArm = hips + Spine + Spine1 + LeftShoulder + LeftArm offsets = (18, 97 + 45, 0) cm
    np.testing.assert_allclose(uj[U["l_shoulder"]], [0.18, 1.42, 0.0], atol=1e-6)
    np.testing.assert_allclose(uj[U["r_shoulder"]], [-0.18, 1.42, 0.0], atol=1e-6)
    np.testing.assert_allclose(uj[U["l_ankle"]], [0.10, 0.08, 0.0], atol=1e-6)
    assert uj[U["head"], 1] > uj[U["pelvis"], 1] > uj[U["l_knee"], 1]


def test_frames_carry_one_body_full_confidence_and_frame_times(tmp_path):
    src = open_bvh(write(tmp_path, bvh_text(CMU_RIG, rest_rows(CMU_RIG, frames=4), frame_time=0.04)))
    frames = list(src.frames())
    assert src.fps == pytest.approx(25.0)
    assert [f.t for f in frames] == pytest.approx([0.0, 0.04, 0.08, 0.12])
    f = frames[0]
    assert f.body_ids.dtype == np.int32 and f.body_ids.tolist() == [0]
    assert f.joints.dtype == np.float32 and f.joints.shape == (1, len(CMU_RIG), 3)
    assert f.confidence.dtype == np.float32 and (f.confidence == 1).all()


def test_root_yaw_of_90_degrees_turns_left_arm_to_minus_z(tmp_path):
    # Ry(90) maps +X to -Z: the left shoulder at (18, 45, 0) from the hips goes to (0, 45, -18).
    rows = rest_rows(CMU_RIG, root_rot=(0, 0, 90))  # ZXY order: the third channel is Y
    uj = unified(src := open_bvh(write(tmp_path, bvh_text(CMU_RIG, rows))), next(src.frames()))
    np.testing.assert_allclose(uj[U["l_shoulder"]], [0.0, 1.42, -0.18], atol=1e-6)


@pytest.mark.parametrize("order, expected_cm", [
    (ZXY, (0, 18, 45)),   # Rz(90) @ Rx(90) @ (18, 45, 0): Rx -> (18, 0, 45), Rz -> (0, 18, 45)
    (XYZ, (-45, 0, 18)),  # Rx(90) @ Rz(90) @ (18, 45, 0): Rz -> (-45, 18, 0), Rx -> (-45, 0, 18)
])
def test_rotation_order_is_the_channel_order(tmp_path, order, expected_cm):
    angles = {"Xrotation": 90, "Yrotation": 0, "Zrotation": 90}
    rows = rest_rows(CMU_RIG, root_rot=[angles[c] for c in order])
    src = open_bvh(write(tmp_path, bvh_text(CMU_RIG, rows, root_order=order)))
    uj = unified(src, next(src.frames()))
    expected = (np.array(expected_cm) + [0, HIP_HEIGHT, 0]) * 0.01
    np.testing.assert_allclose(uj[U["l_shoulder"]], expected, atol=1e-6)


def test_child_rotation_composes_with_its_parent(tmp_path):
    # LeftArm bends the forearm chain by Rz(90): elbow at shoulder + (0, 28, 0), i.e. arm raised.
    rows = rest_rows(CMU_RIG, extra={"LeftArm": [90, 0, 0]})  # ZXY: the first channel is Z
    uj = unified(src := open_bvh(write(tmp_path, bvh_text(CMU_RIG, rows))), next(src.frames()))
    np.testing.assert_allclose(uj[U["l_elbow"]], [0.18, 1.70, 0.0], atol=1e-6)
    np.testing.assert_allclose(uj[U["l_wrist"]], [0.18, 1.95, 0.0], atol=1e-6)


def test_position_channels_replace_the_offset(tmp_path):
    # Bandai keys every joint with 6 channels whose positions repeat the offsets.
    six = {"LeftArm": POS + ZXY}
    rows = rest_rows(CMU_RIG, extra={"LeftArm": [15, 0, 0, 0, 0, 0]})
    uj = unified(src := open_bvh(write(tmp_path, bvh_text(CMU_RIG, rows, extra_channels=six))),
                 next(src.frames()))
    np.testing.assert_allclose(uj[U["l_shoulder"]], [0.18, 1.42, 0.0], atol=1e-6)


@pytest.mark.parametrize("unit, scale", [(1.0, 0.01), (10.0, 0.001), (0.01, 1.0), (1 / 2.54, 0.0254),
                                         (1 / 5.6444, 0.056444)])
def test_units_are_inferred_from_the_rig_height(tmp_path, unit, scale):
    src = open_bvh(write(tmp_path, bvh_text(CMU_RIG, rest_rows(CMU_RIG, unit=unit), unit=unit)))
    assert src.layout.scale == scale
    uj = unified(src, next(src.frames()))
    assert uj[U["head"], 1] == pytest.approx(1.57, abs=1e-4)  # 97 + 60 cm whatever the unit


def test_scale_option_overrides_the_inference(tmp_path):
    src = open_bvh(write(tmp_path, bvh_text(CMU_RIG, rest_rows(CMU_RIG))), "?scale=0.02")
    assert src.layout.scale == 0.02
    assert unified(src, next(src.frames()))[U["head"], 1] == pytest.approx(3.14, abs=1e-4)


def test_z_up_files_are_rotated_to_y_up(tmp_path):
    # Z-up copy of the rig: (x, y, z) Y-up -> (x, -z, y) Z-up; the root height moves to Zposition.
    rig = [(n, p, (o[0], -o[2], o[1])) for n, p, o in CMU_RIG]
    rows = [[0, 0, HIP_HEIGHT] + row[3:] for row in rest_rows(CMU_RIG)]
    path = write(tmp_path, bvh_text(rig, rows))
    y_up = unified(src := open_bvh(write(tmp_path, bvh_text(CMU_RIG, rest_rows(CMU_RIG)), "y.bvh")),
                   next(src.frames()))
    z_up = unified(src := open_bvh(path, "?up=z"), next(src.frames()))
    np.testing.assert_allclose(z_up, y_up, atol=1e-6)
    as_is = unified(src := open_bvh(path), next(src.frames()))
    assert not as_is[U["head"], 1] > as_is[U["pelvis"], 1] + 0.3  # without up=z the body lies down


def test_mixamo_prefix_is_stripped(tmp_path):
    rig = [(f"mixamorig:{n}", p and f"mixamorig:{p}", o) for n, p, o in CMU_RIG]
    src = open_bvh(write(tmp_path, bvh_text(rig, rest_rows(rig))))
    assert src.layout.unified["l_shoulder"] == {"mixamorig:LeftArm": 1.0}


def test_unknown_rig_names_the_missing_joints(tmp_path):
    rig = [(n.replace("Head", "Skull"), p and p.replace("Head", "Skull"), o) for n, p, o in CMU_RIG]
    with pytest.raises(SourceError, match="no joint for head"):
        open_bvh(write(tmp_path, bvh_text(rig, rest_rows(rig))))


def _corrupt(tmp_path, edit):
    lines = bvh_text(CMU_RIG, rest_rows(CMU_RIG, frames=3)).splitlines()
    motion = lines.index("MOTION") + 1  # 1-based number of the MOTION line
    return write(tmp_path, "\n".join(edit(lines, motion)) + "\n"), motion


@pytest.mark.parametrize("edit, line, what", [  # line: the 1-based line named, from MOTION's line m
    (lambda ls, m: ls[:m + 3] + [ls[m + 3] + " 1.5"] + ls[m + 4:], lambda m: m + 4,
     "expected 66 values, found 67"),
    (lambda ls, m: ls[:m + 4] + [ls[m + 4].replace("97", "nine", 1)] + ls[m + 5:], lambda m: m + 5, "'nine'"),
    (lambda ls, m: ls[:-1], lambda m: m + 1, "header says 3 frames but 2"),
    (lambda ls, m: ls[:m - 1], lambda m: m - 1, "no MOTION section"),
    (lambda ls, m: ls[:m] + ["Frames: three"] + ls[m + 1:], lambda m: m + 1, "Frames: N"),
])
def test_corrupt_files_name_file_and_line(tmp_path, edit, line, what):
    path, motion = _corrupt(tmp_path, edit)
    with pytest.raises(SourceError, match=what) as err:
        open_bvh(path)
    assert str(err.value).startswith(f"{path}:{line(motion)}:")


def test_corrupt_hierarchy_quotes_the_offending_line(tmp_path):
    path, _ = _corrupt(tmp_path, lambda ls, m: [ls[0], "ROOT Hips", "OFFSET 0 0 0"] + ls[m - 1:])
    with pytest.raises(SourceError, match="bad HIERARCHY at 'OFFSET 0 0 0'") as err:
        open_bvh(path)
    assert str(err.value).startswith(str(path))


def test_missing_file_and_bad_option(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        open_bvh(tmp_path / "absent.bvh")
    with pytest.raises(SourceError, match="up="):
        open_bvh(write(tmp_path, bvh_text(CMU_RIG, rest_rows(CMU_RIG))), "?up=x")


@pytest.mark.shared_data
def test_every_bandai_file(shared_data):
    """174 clips: parse, 22 joints at 30 fps in cm, standing height, body upright, sides right."""
    files = sorted(shared_data("bandai-namco-ds1", "data").glob("*.bvh"))
    assert len(files) == 174
    left_ok, left_seen = 0, 0
    for path in files:
        src = open_bvh(path)
        assert (src.layout.id, src.layout.num_joints, src.layout.scale) == ("bvh-bandai", 22, 0.01)
        assert src.fps == pytest.approx(30.0, rel=1e-4)
        joints = np.stack([f.joints[0] for f in src.frames()])       # [F, 22, 3] metres
        uj, _ = src.layout.to_unified(joints, np.ones(joints.shape[:2], np.float32))
        y = uj[..., 1]
        ankles = np.minimum(y[:, U["l_ankle"]], y[:, U["r_ankle"]])
        assert ((y[:, U["head"]] > y[:, U["pelvis"]]) & (y[:, U["pelvis"]] > ankles)).mean() > 0.95, path
        assert 1.4 < src.height_m < 2.0, path
        # the rig stands up along canonical Y at least once (head ~0.86 of the height above ankles)
        assert (y[:, U["head"]] - ankles).max() > 0.8 * 0.86 * src.height_m, path
        # facing from ankle -> ball of foot where the foot is near flat; left = up x facing
        toes = [src.layout.index(n) for n in ("Toes_L", "Toes_R")]
        feet = [src.layout.index(n) for n in ("Foot_L", "Foot_R")]
        facing = (joints[:, toes] - joints[:, feet]).sum(axis=1) * [1, 0, 1]
        usable = np.linalg.norm(facing, axis=-1) > 0.08
        left = np.cross([0.0, 1.0, 0.0], facing[usable])
        side = ((uj[usable, U["l_shoulder"]] - uj[usable, U["r_shoulder"]]) * left).sum(-1)
        assert usable.sum() == 0 or (side > 0).mean() > 0.5, path
        left_ok, left_seen = left_ok + (side > 0).sum(), left_seen + usable.sum()
    assert left_ok / left_seen > 0.95
