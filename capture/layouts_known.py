"""The joint sets bodytalk knows: Kinect V2 / NTU RGB+D, Azure Kinect, MediaPipe, BVH rig families.

Left and right are always the person's own (anatomical) sides.
"""
from __future__ import annotations

import numpy as np

from bodytalk.capture.layouts import (FLIP_XY, IDENTITY, UNIFIED_JOINTS, Layout, mean_of, one_to_one,
                                      parents_from, register)

# --- Kinect V2 (SDK JointType order). Camera space: metres, x to the sensor's left, y up,
# z out of the sensor (right-handed) -- already canonical.
KINECT_V2_JOINTS = (
    "SpineBase", "SpineMid", "Neck", "Head", "ShoulderLeft", "ElbowLeft", "WristLeft", "HandLeft",
    "ShoulderRight", "ElbowRight", "WristRight", "HandRight", "HipLeft", "KneeLeft", "AnkleLeft",
    "FootLeft", "HipRight", "KneeRight", "AnkleRight", "FootRight", "SpineShoulder",
    "HandTipLeft", "ThumbLeft", "HandTipRight", "ThumbRight",
)
_KINECT_V2_PARENTS = {
    "SpineBase": None, "SpineMid": "SpineBase", "Neck": "SpineShoulder", "Head": "Neck",
    "ShoulderLeft": "SpineShoulder", "ElbowLeft": "ShoulderLeft", "WristLeft": "ElbowLeft",
    "HandLeft": "WristLeft", "ShoulderRight": "SpineShoulder", "ElbowRight": "ShoulderRight",
    "WristRight": "ElbowRight", "HandRight": "WristRight", "HipLeft": "SpineBase",
    "KneeLeft": "HipLeft", "AnkleLeft": "KneeLeft", "FootLeft": "AnkleLeft",
    "HipRight": "SpineBase", "KneeRight": "HipRight", "AnkleRight": "KneeRight",
    "FootRight": "AnkleRight", "SpineShoulder": "SpineMid", "HandTipLeft": "HandLeft",
    "ThumbLeft": "WristLeft", "HandTipRight": "HandRight", "ThumbRight": "WristRight",
}
_KINECT_V2_UNIFIED = one_to_one({
    "pelvis": "SpineBase", "spine": "SpineMid", "thorax": "SpineShoulder", "neck": "Neck",
    "head": "Head", "l_shoulder": "ShoulderLeft", "l_elbow": "ElbowLeft", "l_wrist": "WristLeft",
    "r_shoulder": "ShoulderRight", "r_elbow": "ElbowRight", "r_wrist": "WristRight",
    "l_hip": "HipLeft", "l_knee": "KneeLeft", "l_ankle": "AnkleLeft",
    "r_hip": "HipRight", "r_knee": "KneeRight", "r_ankle": "AnkleRight",
})
KINECT_V2 = register(Layout(
    id="kinect_v2", joints=KINECT_V2_JOINTS, parents=parents_from(KINECT_V2_JOINTS, _KINECT_V2_PARENTS),
    units="m", axes="x sensor-left, y up, z out of the sensor", unified=_KINECT_V2_UNIFIED))
# NTU RGB+D was captured with Kinect V2: same joints, same order, same camera space.
NTU = register(Layout(
    id="ntu", joints=KINECT_V2_JOINTS, parents=KINECT_V2.parents, units="m",
    axes=KINECT_V2.axes, unified=_KINECT_V2_UNIFIED))

# --- Azure Kinect Body Tracking (k4abt_joint_id_t order): millimetres, x right, y down, z forward.
AZURE_JOINTS = (
    "PELVIS", "SPINE_NAVEL", "SPINE_CHEST", "NECK", "CLAVICLE_LEFT", "SHOULDER_LEFT", "ELBOW_LEFT",
    "WRIST_LEFT", "HAND_LEFT", "HANDTIP_LEFT", "THUMB_LEFT", "CLAVICLE_RIGHT", "SHOULDER_RIGHT",
    "ELBOW_RIGHT", "WRIST_RIGHT", "HAND_RIGHT", "HANDTIP_RIGHT", "THUMB_RIGHT", "HIP_LEFT",
    "KNEE_LEFT", "ANKLE_LEFT", "FOOT_LEFT", "HIP_RIGHT", "KNEE_RIGHT", "ANKLE_RIGHT", "FOOT_RIGHT",
    "HEAD", "NOSE", "EYE_LEFT", "EAR_LEFT", "EYE_RIGHT", "EAR_RIGHT",
)
_AZURE_PARENTS = {
    "PELVIS": None, "SPINE_NAVEL": "PELVIS", "SPINE_CHEST": "SPINE_NAVEL", "NECK": "SPINE_CHEST",
    "CLAVICLE_LEFT": "SPINE_CHEST", "SHOULDER_LEFT": "CLAVICLE_LEFT", "ELBOW_LEFT": "SHOULDER_LEFT",
    "WRIST_LEFT": "ELBOW_LEFT", "HAND_LEFT": "WRIST_LEFT", "HANDTIP_LEFT": "HAND_LEFT",
    "THUMB_LEFT": "WRIST_LEFT", "CLAVICLE_RIGHT": "SPINE_CHEST", "SHOULDER_RIGHT": "CLAVICLE_RIGHT",
    "ELBOW_RIGHT": "SHOULDER_RIGHT", "WRIST_RIGHT": "ELBOW_RIGHT", "HAND_RIGHT": "WRIST_RIGHT",
    "HANDTIP_RIGHT": "HAND_RIGHT", "THUMB_RIGHT": "WRIST_RIGHT", "HIP_LEFT": "PELVIS",
    "KNEE_LEFT": "HIP_LEFT", "ANKLE_LEFT": "KNEE_LEFT", "FOOT_LEFT": "ANKLE_LEFT",
    "HIP_RIGHT": "PELVIS", "KNEE_RIGHT": "HIP_RIGHT", "ANKLE_RIGHT": "KNEE_RIGHT",
    "FOOT_RIGHT": "ANKLE_RIGHT", "HEAD": "NECK", "NOSE": "HEAD", "EYE_LEFT": "HEAD",
    "EAR_LEFT": "HEAD", "EYE_RIGHT": "HEAD", "EAR_RIGHT": "HEAD",
}
AZURE_KINECT = register(Layout(
    id="azure_kinect", joints=AZURE_JOINTS, parents=parents_from(AZURE_JOINTS, _AZURE_PARENTS),
    units="mm", axes="x right, y down, z forward", scale=0.001, rotation=FLIP_XY,
    unified={**one_to_one({
        "pelvis": "PELVIS", "spine": "SPINE_NAVEL", "thorax": "SPINE_CHEST", "neck": "NECK",
        "head": "HEAD", "l_shoulder": "SHOULDER_LEFT", "l_elbow": "ELBOW_LEFT",
        "l_wrist": "WRIST_LEFT", "r_shoulder": "SHOULDER_RIGHT", "r_elbow": "ELBOW_RIGHT",
        "r_wrist": "WRIST_RIGHT", "l_hip": "HIP_LEFT", "l_knee": "KNEE_LEFT",
        "l_ankle": "ANKLE_LEFT", "r_hip": "HIP_RIGHT", "r_knee": "KNEE_RIGHT",
        "r_ankle": "ANKLE_RIGHT"})}))

# --- MediaPipe Pose world landmarks: metres, origin between the hips, x right, y down, z away.
MEDIAPIPE_JOINTS = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)
_MP_PARENT = {
    "left_hip": None, "right_hip": "left_hip", "left_shoulder": "left_hip",
    "right_shoulder": "right_hip", "nose": "left_shoulder",
    **{n: "nose" for n in MEDIAPIPE_JOINTS[1:11]},
    "left_elbow": "left_shoulder", "right_elbow": "right_shoulder", "left_wrist": "left_elbow",
    "right_wrist": "right_elbow", "left_pinky": "left_wrist", "right_pinky": "right_wrist",
    "left_index": "left_wrist", "right_index": "right_wrist", "left_thumb": "left_wrist",
    "right_thumb": "right_wrist", "left_knee": "left_hip", "right_knee": "right_hip",
    "left_ankle": "left_knee", "right_ankle": "right_knee", "left_heel": "left_ankle",
    "right_heel": "right_ankle", "left_foot_index": "left_ankle", "right_foot_index": "right_ankle",
}
MEDIAPIPE = register(Layout(
    id="mediapipe", joints=MEDIAPIPE_JOINTS, parents=parents_from(MEDIAPIPE_JOINTS, _MP_PARENT),
    units="m", axes="x right, y down, z away from the camera", rotation=FLIP_XY,
    unified={
        # MediaPipe has no spine joints: pelvis/thorax are the hip/shoulder midpoints,
        # spine their midpoint, neck 2/3 of the way from thorax to the ears.
        "pelvis": mean_of("left_hip", "right_hip"),
        "spine": mean_of("left_hip", "right_hip", "left_shoulder", "right_shoulder"),
        "thorax": mean_of("left_shoulder", "right_shoulder"),
        "neck": {"left_shoulder": 1 / 3, "right_shoulder": 1 / 3, "left_ear": 1 / 6, "right_ear": 1 / 6},
        "head": mean_of("left_ear", "right_ear"),
        **one_to_one({
            "l_shoulder": "left_shoulder", "l_elbow": "left_elbow", "l_wrist": "left_wrist",
            "r_shoulder": "right_shoulder", "r_elbow": "right_elbow", "r_wrist": "right_wrist",
            "l_hip": "left_hip", "l_knee": "left_knee", "l_ankle": "left_ankle",
            "r_hip": "right_hip", "r_knee": "right_knee", "r_ankle": "right_ankle"}),
    }))

# --- BVH rig families. Positions are joint origins, so a BVH joint named for a bone gives the
# joint at the bone's start: Bandai "UpperArm_L" is the shoulder. In CMU/Mixamo rigs
# "LeftShoulder" is the clavicle and "LeftArm" the shoulder joint.
BVH_FAMILIES: dict[str, dict[str, tuple[str, ...]]] = {
    "bandai": {
        "pelvis": ("Hips",), "spine": ("Spine",), "thorax": ("Chest",), "neck": ("Neck",),
        "head": ("Head",), "l_shoulder": ("UpperArm_L",), "l_elbow": ("LowerArm_L",),
        "l_wrist": ("Hand_L",), "r_shoulder": ("UpperArm_R",), "r_elbow": ("LowerArm_R",),
        "r_wrist": ("Hand_R",), "l_hip": ("UpperLeg_L",), "l_knee": ("LowerLeg_L",),
        "l_ankle": ("Foot_L",), "r_hip": ("UpperLeg_R",), "r_knee": ("LowerLeg_R",),
        "r_ankle": ("Foot_R",),
    },
    # CMU (cgspeed conversion) and Mixamo share the naming; Mixamo adds a "mixamorig:" prefix,
    # stripped before matching. Alternatives are tried in order.
    "cmu": {
        "pelvis": ("Hips",), "spine": ("Spine", "LowerBack"), "thorax": ("Spine1", "Spine2"),
        "neck": ("Neck", "Neck1"), "head": ("Head",), "l_shoulder": ("LeftArm",),
        "l_elbow": ("LeftForeArm",), "l_wrist": ("LeftHand",), "r_shoulder": ("RightArm",),
        "r_elbow": ("RightForeArm",), "r_wrist": ("RightHand",), "l_hip": ("LeftUpLeg",),
        "l_knee": ("LeftLeg",), "l_ankle": ("LeftFoot",), "r_hip": ("RightUpLeg",),
        "r_knee": ("RightLeg",), "r_ankle": ("RightFoot",),
    },
}
# Stable list of layout families: the model's layout-embedding vocabulary. Append only.
LAYOUT_FAMILIES = ("unified", "kinect_v2", "ntu", "azure_kinect", "mediapipe", "bvh-bandai",
                   "bvh-cmu", "synthetic", "xsens", "optitrack", "rokoko")


def bvh_layout(joints: tuple[str, ...], parents: tuple[int, ...], scale: float,
               rotation: np.ndarray = IDENTITY) -> Layout:
    """Layout for a BVH rig read from the file's hierarchy; raises if no family maps it."""
    bare = tuple(j.split(":")[-1] for j in joints)  # "mixamorig:LeftArm" -> "LeftArm"
    errors = []
    for family, table in BVH_FAMILIES.items():
        mapping, missing = {}, []
        for uj in UNIFIED_JOINTS:
            hit = next((joints[bare.index(c)] for c in table[uj] if c in bare), None)
            if hit is None:
                missing.append(uj)
            else:
                mapping[uj] = hit
        if not missing:
            return register(Layout(
                id=f"bvh-{family}", joints=joints, parents=parents, units=f"x{scale:g} m",
                axes="BVH rig axes", unified=one_to_one(mapping), scale=scale, rotation=rotation))
        errors.append(f"{family}: no joint for {', '.join(missing)}")
    raise ValueError("BVH rig matches no known family (" + "; ".join(errors) + ")")

# The live motion-capture systems' joint sets (Xsens, OptiTrack, Rokoko) register themselves too.
from bodytalk.capture import layouts_mocap  # noqa: E402,F401
