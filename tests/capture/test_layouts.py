"""The unified mapping of every layout: a T-pose written in each source's own units and axes (as
its SDK or file format documents them) must land in canonical space where the body is."""
from __future__ import annotations

import numpy as np
import pytest

from bodytalk.capture import layouts
from bodytalk.capture.layouts import U, UNIFIED_JOINTS, Z_UP_TO_Y_UP
from bodytalk.capture.layouts_known import (AZURE_KINECT, KINECT_V2, MEDIAPIPE, NTU, bvh_layout)

# T-pose in the body frame: (person's left, up, person's forward), metres, feet on the floor.
BODY = {
    "pelvis": (0, 0.95, 0), "spine": (0, 1.15, 0), "thorax": (0, 1.40, 0), "neck": (0, 1.50, 0),
    "head": (0, 1.62, 0), "l_ear": (0.08, 1.62, 0), "r_ear": (-0.08, 1.62, 0),
    "l_shoulder": (0.18, 1.42, 0), "l_elbow": (0.45, 1.42, 0), "l_wrist": (0.70, 1.42, 0),
    "r_shoulder": (-0.18, 1.42, 0), "r_elbow": (-0.45, 1.42, 0), "r_wrist": (-0.70, 1.42, 0),
    "l_hip": (0.10, 0.92, 0), "l_knee": (0.10, 0.50, 0), "l_ankle": (0.10, 0.08, 0),
    "r_hip": (-0.10, 0.92, 0), "r_knee": (-0.10, 0.50, 0), "r_ankle": (-0.10, 0.08, 0),
}
LIMBS = [j for j in UNIFIED_JOINTS if j[:2] in ("l_", "r_")]


def sided(pattern: str, part: str, left: str, right: str) -> dict[str, str]:
    return {pattern.format(left): f"l_{part}", pattern.format(right): f"r_{part}"}


# Source joint -> body point, per joint set; joints not listed (hand tips, toes, clavicles, eyes)
# sit on their parent.
KINECT_NAMES = {"SpineBase": "pelvis", "SpineMid": "spine", "SpineShoulder": "thorax",
                "Neck": "neck", "Head": "head"}
AZURE_NAMES = {"PELVIS": "pelvis", "SPINE_NAVEL": "spine", "SPINE_CHEST": "thorax",
               "NECK": "neck", "HEAD": "head", **sided("EAR_{}", "ear", "LEFT", "RIGHT")}
MEDIAPIPE_NAMES = {**sided("{}_ear", "ear", "left", "right")}
BANDAI_NAMES = {"Hips": "pelvis", "Spine": "spine", "Chest": "thorax", "Neck": "neck", "Head": "head"}
CMU_NAMES = {"Hips": "pelvis", "Spine": "spine", "Spine1": "thorax", "Neck": "neck", "Head": "head"}
for part, kinect, azure, mp, bandai, cmu in [
        ("shoulder", "Shoulder", "SHOULDER", "shoulder", "UpperArm", "Arm"),
        ("elbow", "Elbow", "ELBOW", "elbow", "LowerArm", "ForeArm"),
        ("wrist", "Wrist", "WRIST", "wrist", "Hand", "Hand"),
        ("hip", "Hip", "HIP", "hip", "UpperLeg", "UpLeg"),
        ("knee", "Knee", "KNEE", "knee", "LowerLeg", "Leg"),
        ("ankle", "Ankle", "ANKLE", "ankle", "Foot", "Foot")]:
    KINECT_NAMES |= sided(kinect + "{}", part, "Left", "Right")
    AZURE_NAMES |= sided(azure + "_{}", part, "LEFT", "RIGHT")
    MEDIAPIPE_NAMES |= sided("{}_" + mp, part, "left", "right")
    BANDAI_NAMES |= sided(bandai + "_{}", part, "L", "R")
    CMU_NAMES |= sided("{}" + cmu, part, "Left", "Right")

BANDAI_PARENTS = {
    "joint_Root": None, "Hips": "joint_Root", "Spine": "Hips", "Chest": "Spine", "Neck": "Chest",
    "Head": "Neck", "Shoulder_L": "Chest", "UpperArm_L": "Shoulder_L", "LowerArm_L": "UpperArm_L",
    "Hand_L": "LowerArm_L", "Shoulder_R": "Chest", "UpperArm_R": "Shoulder_R",
    "LowerArm_R": "UpperArm_R", "Hand_R": "LowerArm_R", "UpperLeg_L": "Hips",
    "LowerLeg_L": "UpperLeg_L", "Foot_L": "LowerLeg_L", "Toes_L": "Foot_L", "UpperLeg_R": "Hips",
    "LowerLeg_R": "UpperLeg_R", "Foot_R": "LowerLeg_R", "Toes_R": "Foot_R",
}
CMU_PARENTS = {
    "Hips": None, "LeftUpLeg": "Hips", "LeftLeg": "LeftUpLeg", "LeftFoot": "LeftLeg",
    "RightUpLeg": "Hips", "RightLeg": "RightUpLeg", "RightFoot": "RightLeg", "Spine": "Hips",
    "Spine1": "Spine", "Neck": "Spine1", "Head": "Neck", "LeftShoulder": "Spine1",
    "LeftArm": "LeftShoulder", "LeftForeArm": "LeftArm", "LeftHand": "LeftForeArm",
    "RightShoulder": "Spine1", "RightArm": "RightShoulder", "RightForeArm": "RightArm",
    "RightHand": "RightForeArm",
}


def bvh_rig(parents: dict[str, str | None], scale=0.01, rotation=layouts.IDENTITY):
    names = tuple(parents)
    return bvh_layout(names, layouts.parents_from(names, parents), scale, rotation)


def body_frame_pose(layout: layouts.Layout, names: dict[str, str]) -> np.ndarray:
    """``[J, 3]`` body-frame T-pose for the layout's joints (unlisted joints on their parent)."""
    pose = np.full((layout.num_joints, 3), np.nan)
    while np.isnan(pose).any():
        for j, name in enumerate(layout.joints):
            if name in names:
                pose[j] = BODY[names[name]]
            elif not np.isnan(pose[layout.parents[j]]).any():
                pose[j] = pose[layout.parents[j]]
    return pose


# How each source writes a body-frame point (L, Up, F) of a person facing it (cameras 2.5 m
# away, 0.8 m above the floor) -- from each SDK's documentation, not from layouts_known.
def kinect(p):     # metres; x to the sensor's left (= the person's right), y up, z away from it
    return np.stack([-p[:, 0], p[:, 1] - 0.8, 2.5 - p[:, 2]], axis=-1)


def azure(p):      # millimetres; x right in the image (= the person's left), y down, z away
    return np.stack([p[:, 0], 0.8 - p[:, 1], 2.5 - p[:, 2]], axis=-1) * 1000


def mediapipe(p):  # world landmarks: metres from the hip centre; x image right, y down, z away
    return np.stack([p[:, 0], 0.95 - p[:, 1], -p[:, 2]], axis=-1)


def bvh_y_up(p):   # centimetres, Y up, the rig facing +Z (its left is +X)
    return p * 100


def bvh_z_up(p):   # centimetres, Z up, the rig facing -Y (its left is +X)
    return np.stack([p[:, 0], -p[:, 2], p[:, 1]], axis=-1) * 100


CAMERA = np.array([[-1, 0, 0], [0, 1, 0], [0, 0, -1]])  # canonical axes of a person facing a camera
CASES = {  # layout, names, writer, body frame -> canonical (rotation, offset)
    "kinect_v2": (lambda: KINECT_V2, KINECT_NAMES, kinect, CAMERA, (0, -0.8, 2.5)),
    "ntu": (lambda: NTU, KINECT_NAMES, kinect, CAMERA, (0, -0.8, 2.5)),
    "azure_kinect": (lambda: AZURE_KINECT, AZURE_NAMES, azure, CAMERA, (0, -0.8, 2.5)),
    "mediapipe": (lambda: MEDIAPIPE, MEDIAPIPE_NAMES, mediapipe, CAMERA, (0, -0.95, 0)),
    "bvh-bandai": (lambda: bvh_rig(BANDAI_PARENTS), BANDAI_NAMES, bvh_y_up, np.eye(3), (0, 0, 0)),
    "bvh-cmu": (lambda: bvh_rig(CMU_PARENTS), CMU_NAMES, bvh_y_up, np.eye(3), (0, 0, 0)),
    "bvh-cmu z-up": (lambda: bvh_rig(CMU_PARENTS, rotation=Z_UP_TO_Y_UP), CMU_NAMES, bvh_z_up,
                     np.eye(3), (0, 0, 0)),
}


def tpose_unified(case: str):
    make, names, write, to_canonical, offset = CASES[case]
    layout = make()
    native = write(body_frame_pose(layout, names))
    joints = layout.to_canonical(native)
    uj, conf = layout.to_unified(joints, np.ones(layout.num_joints, np.float32))
    expected = np.array([BODY[j] for j in UNIFIED_JOINTS]) @ to_canonical.T + offset
    left = to_canonical @ [1, 0, 0]  # the person's left in canonical space
    return layout, uj, conf, expected, left


@pytest.mark.parametrize("case", list(CASES))
def test_tpose_lands_where_the_body_is(case):
    layout, uj, conf, expected, left = tpose_unified(case)
    assert uj.shape == (17, 3) and uj.dtype == np.float32 and (conf == 1).all()
    limbs = [U[j] for j in LIMBS]
    np.testing.assert_allclose(uj[limbs], expected[limbs], atol=1e-5)
    # MediaPipe has no spine joints: its torso joints are means of hips / shoulders / ears
    torso_tol = 0.04 if layout.id == "mediapipe" else 1e-5
    np.testing.assert_allclose(uj, expected, atol=torso_tol)
    assert uj[U["head"], 1] > uj[U["neck"], 1] > uj[U["pelvis"], 1] > uj[U["l_knee"], 1]
    for a, b in [("l_shoulder", "r_shoulder"), ("l_wrist", "r_wrist"), ("l_hip", "r_hip")]:
        assert (uj[U[a]] - uj[U[b]]) @ left > 0.1, f"{layout.id}: {a} is not on the person's left"


def test_every_registered_layout_has_rows_summing_to_one():
    for case in CASES:  # registers the BVH rigs
        CASES[case][0]()
    assert {"kinect_v2", "ntu", "azure_kinect", "mediapipe", "bvh-bandai", "bvh-cmu"} <= set(layouts.known())
    for layout_id in layouts.known():
        w = layouts.get(layout_id).weights
        assert w.shape == (17, layouts.get(layout_id).num_joints)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6, err_msg=layout_id)
        assert (w >= 0).all(), layout_id


def test_cmu_clavicle_is_not_the_shoulder():
    assert bvh_rig(CMU_PARENTS).unified["l_shoulder"] == {"LeftArm": 1.0}


def test_axis_conversions():
    # Azure: millimetres, y down -> metres, y up (and x mirrored with it: a rotation, not a flip)
    np.testing.assert_allclose(AZURE_KINECT.to_canonical(np.array([[100.0, -200.0, 2000.0]])),
                               [[-0.1, 0.2, 2.0]], atol=1e-6)
    np.testing.assert_allclose(MEDIAPIPE.to_canonical(np.array([[0.1, -0.5, 0.2]])),
                               [[-0.1, 0.5, 0.2]], atol=1e-6)
    np.testing.assert_allclose(KINECT_V2.to_canonical(np.array([[0.1, 0.2, 2.0]])),
                               [[0.1, 0.2, 2.0]], atol=1e-6)
    for layout in (AZURE_KINECT, MEDIAPIPE, bvh_rig(CMU_PARENTS, rotation=Z_UP_TO_Y_UP)):
        assert np.linalg.det(layout.rotation) == pytest.approx(1.0)  # stays right-handed


def test_confidence_is_the_minimum_of_contributing_joints():
    conf = np.ones(MEDIAPIPE.num_joints, np.float32)
    conf[MEDIAPIPE.index("left_hip")] = 0.3
    conf[MEDIAPIPE.index("left_ear")] = 0.6
    conf[MEDIAPIPE.index("left_pinky")] = 0.0  # used by no unified joint
    _, uconf = MEDIAPIPE.to_unified(np.zeros((MEDIAPIPE.num_joints, 3), np.float32), conf)
    expected = {"pelvis": 0.3, "spine": 0.3, "l_hip": 0.3, "neck": 0.6, "head": 0.6}
    for j in UNIFIED_JOINTS:
        assert uconf[U[j]] == pytest.approx(expected.get(j, 1.0)), j
    # batched: [T, B, J] -> [T, B, 17]
    kconf = np.ones((4, 2, KINECT_V2.num_joints), np.float32)
    kconf[3, 1, KINECT_V2.index("KneeRight")] = 0.5
    _, kc = KINECT_V2.to_unified(np.zeros((4, 2, 25, 3), np.float32), kconf)
    assert kc.shape == (4, 2, 17) and kc[3, 1, U["r_knee"]] == 0.5 and (kc[:3] == 1).all()
