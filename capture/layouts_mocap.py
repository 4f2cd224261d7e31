"""Joint sets of the live motion-capture systems: Xsens MVN, OptiTrack Motive, Rokoko Studio.

Registered on import of ``capture.layouts`` (through ``layouts_known``), so a session recorded from
one of these sensors replays without its source module. Positions are joint origins: a segment
named for a bone gives the joint at the bone's start (Xsens "LeftUpperArm" is the shoulder).
Left and right are the person's own sides.
"""
from __future__ import annotations

import numpy as np

from bodytalk.capture.layouts import IDENTITY, Z_UP_TO_Y_UP, Layout, one_to_one, parents_from, register

# Unity (and so Rokoko Studio) is left-handed: x right, y up, z forward. Mirroring x gives a
# right-handed frame with x to the person's left when they face +z, as the canonical axes say.
MIRROR_X = np.diag([-1.0, 1.0, 1.0]).astype(np.float32)


def _chain(root: str, links: dict[str, str | None]) -> dict[str, str | None]:
    return {root: None, **links}


# --- Xsens MVN network streamer, segment ids 1..23 in this order (MVN real-time network
# streaming protocol, segment table). Pose datagrams (MXTP02): centimetres, Z up, right-handed.
XSENS_JOINTS = (
    "Pelvis", "L5", "L3", "T12", "T8", "Neck", "Head",
    "RightShoulder", "RightUpperArm", "RightForeArm", "RightHand",
    "LeftShoulder", "LeftUpperArm", "LeftForeArm", "LeftHand",
    "RightUpperLeg", "RightLowerLeg", "RightFoot", "RightToe",
    "LeftUpperLeg", "LeftLowerLeg", "LeftFoot", "LeftToe",
)
_XSENS_PARENTS = _chain("Pelvis", {
    "L5": "Pelvis", "L3": "L5", "T12": "L3", "T8": "T12", "Neck": "T8", "Head": "Neck",
    **{f"{s}Shoulder": "T8" for s in ("Left", "Right")},
    **{f"{s}UpperArm": f"{s}Shoulder" for s in ("Left", "Right")},
    **{f"{s}ForeArm": f"{s}UpperArm" for s in ("Left", "Right")},
    **{f"{s}Hand": f"{s}ForeArm" for s in ("Left", "Right")},
    **{f"{s}UpperLeg": "Pelvis" for s in ("Left", "Right")},
    **{f"{s}LowerLeg": f"{s}UpperLeg" for s in ("Left", "Right")},
    **{f"{s}Foot": f"{s}LowerLeg" for s in ("Left", "Right")},
    **{f"{s}Toe": f"{s}Foot" for s in ("Left", "Right")},
})
XSENS = register(Layout(
    id="xsens", joints=XSENS_JOINTS, parents=parents_from(XSENS_JOINTS, _XSENS_PARENTS),
    units="cm", axes="x forward, y left, z up (MVN)", scale=0.01, rotation=Z_UP_TO_Y_UP,
    unified=one_to_one({
        "pelvis": "Pelvis", "spine": "L3", "thorax": "T8", "neck": "Neck", "head": "Head",
        "l_shoulder": "LeftUpperArm", "l_elbow": "LeftForeArm", "l_wrist": "LeftHand",
        "r_shoulder": "RightUpperArm", "r_elbow": "RightForeArm", "r_wrist": "RightHand",
        "l_hip": "LeftUpperLeg", "l_knee": "LeftLowerLeg", "l_ankle": "LeftFoot",
        "r_hip": "RightUpperLeg", "r_knee": "RightLowerLeg", "r_ankle": "RightFoot"})))

# --- OptiTrack Motive skeleton bones ("Motive" bone naming): metres, Y up, right-handed.
OPTITRACK_JOINTS = (
    "Hip", "Ab", "Chest", "Neck", "Head",
    "LShoulder", "LUArm", "LFArm", "LHand", "RShoulder", "RUArm", "RFArm", "RHand",
    "LThigh", "LShin", "LFoot", "LToe", "RThigh", "RShin", "RFoot", "RToe",
)
_OPTITRACK_PARENTS = _chain("Hip", {
    "Ab": "Hip", "Chest": "Ab", "Neck": "Chest", "Head": "Neck",
    **{f"{s}Shoulder": "Chest" for s in "LR"}, **{f"{s}UArm": f"{s}Shoulder" for s in "LR"},
    **{f"{s}FArm": f"{s}UArm" for s in "LR"}, **{f"{s}Hand": f"{s}FArm" for s in "LR"},
    **{f"{s}Thigh": "Hip" for s in "LR"}, **{f"{s}Shin": f"{s}Thigh" for s in "LR"},
    **{f"{s}Foot": f"{s}Shin" for s in "LR"}, **{f"{s}Toe": f"{s}Foot" for s in "LR"},
})
OPTITRACK = register(Layout(
    id="optitrack", joints=OPTITRACK_JOINTS,
    parents=parents_from(OPTITRACK_JOINTS, _OPTITRACK_PARENTS),
    units="m", axes="y up, right-handed (Motive)", rotation=IDENTITY,
    unified=one_to_one({
        "pelvis": "Hip", "spine": "Ab", "thorax": "Chest", "neck": "Neck", "head": "Head",
        "l_shoulder": "LUArm", "l_elbow": "LFArm", "l_wrist": "LHand",
        "r_shoulder": "RUArm", "r_elbow": "RFArm", "r_wrist": "RHand",
        "l_hip": "LThigh", "l_knee": "LShin", "l_ankle": "LFoot",
        "r_hip": "RThigh", "r_knee": "RShin", "r_ankle": "RFoot"})))

# --- Rokoko Studio live (JSON v3) body bones: world positions in metres, Unity axes.
ROKOKO_JOINTS = (
    "hip", "spine", "chest", "neck", "head",
    "leftShoulder", "leftUpperArm", "leftLowerArm", "leftHand",
    "rightShoulder", "rightUpperArm", "rightLowerArm", "rightHand",
    "leftUpLeg", "leftLeg", "leftFoot", "leftToe", "rightUpLeg", "rightLeg", "rightFoot", "rightToe",
)
_ROKOKO_PARENTS = _chain("hip", {
    "spine": "hip", "chest": "spine", "neck": "chest", "head": "neck",
    **{f"{s}Shoulder": "chest" for s in ("left", "right")},
    **{f"{s}UpperArm": f"{s}Shoulder" for s in ("left", "right")},
    **{f"{s}LowerArm": f"{s}UpperArm" for s in ("left", "right")},
    **{f"{s}Hand": f"{s}LowerArm" for s in ("left", "right")},
    **{f"{s}UpLeg": "hip" for s in ("left", "right")},
    **{f"{s}Leg": f"{s}UpLeg" for s in ("left", "right")},
    **{f"{s}Foot": f"{s}Leg" for s in ("left", "right")},
    **{f"{s}Toe": f"{s}Foot" for s in ("left", "right")},
})
ROKOKO = register(Layout(
    id="rokoko", joints=ROKOKO_JOINTS, parents=parents_from(ROKOKO_JOINTS, _ROKOKO_PARENTS),
    units="m", axes="x right, y up, z forward, left-handed (Unity)", rotation=MIRROR_X,
    unified=one_to_one({
        "pelvis": "hip", "spine": "spine", "thorax": "chest", "neck": "neck", "head": "head",
        "l_shoulder": "leftUpperArm", "l_elbow": "leftLowerArm", "l_wrist": "leftHand",
        "r_shoulder": "rightUpperArm", "r_elbow": "rightLowerArm", "r_wrist": "rightHand",
        "l_hip": "leftUpLeg", "l_knee": "leftLeg", "l_ankle": "leftFoot",
        "r_hip": "rightUpLeg", "r_knee": "rightLeg", "r_ankle": "rightFoot"})))
