"""Bus messages as ROS 2 messages (REP-155 / ROS4HRI), built with the ``rosbags`` typestore.

The typestore is ROS 2 Jazzy's (std_msgs, geometry_msgs, tf2_msgs, ...) plus the three hri_msgs
types we publish, whose definitions below are hri_msgs 2.x's verbatim: the RIHS01 type hash that
Iron/Jazzy readers compare is computed from them, so they must not be edited.

Mapping (body id ``<sensor>_<body>``, see ``skeleton.body_id``):
  /humans/bodies/tracked                      hri_msgs/IdsList   bodies in the latest frames
  /humans/bodies/<id>/expression              hri_msgs/Expression  stable label, valence, arousal
  /humans/bodies/<id>/expression_details      std_msgs/String    JSON: probabilities, explanation, latency
  /humans/bodies/<id>/gesture                 hri_msgs/Gesture   micro-gestures with an hri constant
  /tf                                         tf2_msgs/TFMessage frame ``body_<id>`` and one per joint
REP-155 puts Expression under /humans/faces/<id>/; a body-level expression is our extension in the
REP's per-id style.
"""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np

from bodytalk.bridges import skeleton
from bodytalk.bridges.extras import need
from bodytalk.stream import schema

EXTRA = "ros2"

HRI_MSGS = {
    "hri_msgs/msg/IdsList": "std_msgs/Header header\nstring[] ids\n",
    "hri_msgs/msg/Expression": (
        "std_msgs/Header header\n"
        + "".join(f'string {c.upper()}="{c}"\n' for c in (
            "neutral", "angry", "sad", "happy", "surprised", "disgusted", "scared", "pleading",
            "vulnerable", "despaired", "guilty", "disappointed", "embarrassed", "horrified",
            "skeptical", "annoyed", "furious", "suspicious", "rejected", "bored", "tired", "asleep",
            "confused", "amazed", "excited"))
        + "string expression\nfloat32 valence\nfloat32 arousal\nfloat32 confidence\n"),
    "hri_msgs/msg/Gesture": (
        "std_msgs/Header header\nuint8 HANDS_ON_FACE = 1\nuint8 ARMS_CROSSED = 2\n"
        "uint8 LEFT_HAND_RAISED = 3\nuint8 RIGHT_HAND_RAISED = 4\nuint8 BOTH_HANDS_RAISED = 5\n"
        "uint8 WAVING = 6\nuint8 OTHER = 0\nuint8 gesture\n"),
}

# Our labels -> hri_msgs/Expression constants; a label without one is sent as it is.
EXPRESSION = {"neutral": "neutral", "happy": "happy", "sad": "sad", "angry": "angry",
              "fearful": "scared", "surprised": "surprised", "disgusted": "disgusted"}
# Valence and arousal of each label (Russell's circumplex, in [-1, 1]); an event's values are the
# probability-weighted mean over its labels, so an uncertain reading sits between them.
VALENCE_AROUSAL = {"neutral": (0.0, 0.0), "happy": (0.8, 0.5), "sad": (-0.7, -0.4),
                   "angry": (-0.6, 0.8), "fearful": (-0.7, 0.7), "surprised": (0.2, 0.8),
                   "disgusted": (-0.7, 0.3)}
# Micro-gestures -> hri_msgs/Gesture constants; the others have no match and are not published.
GESTURE = {"touch_face": 1, "cover_face": 1, "fold_arms": 2}

TRACKED = "/humans/bodies/tracked"
TF = "/tf"


def body_topic(rid: str, leaf: str) -> str:
    return f"/humans/bodies/{rid}/{leaf}"


@lru_cache(maxsize=1)
def typestore():
    """ROS 2 Jazzy's types plus ``HRI_MSGS``."""
    typesys = need("rosbags.typesys", EXTRA)
    store = typesys.get_typestore(typesys.Stores.ROS2_JAZZY)
    types = {}
    for name, text in HRI_MSGS.items():
        types.update(typesys.get_types_from_msg(text, name))
    store.register(types)
    return store


def valence_arousal(probs: dict) -> tuple[float, float]:
    v = sum(p * VALENCE_AROUSAL.get(k, (0.0, 0.0))[0] for k, p in probs.items())
    a = sum(p * VALENCE_AROUSAL.get(k, (0.0, 0.0))[1] for k, p in probs.items())
    return float(np.clip(v, -1, 1)), float(np.clip(a, -1, 1))


def _header(ts: float, frame_id: str):
    T = typestore().types
    sec = int(ts // 1)
    return T["std_msgs/msg/Header"](T["builtin_interfaces/msg/Time"](sec, int((ts - sec) * 1e9)), frame_id)


def ids_list(ids: list[str], ts: float):
    return typestore().types["hri_msgs/msg/IdsList"](_header(ts, ""), list(ids))


def expression(ev: schema.EmotionEvent, ts: float):
    """The stable label (the label until hysteresis has one) with its probability as confidence;
    None for an event without a reading."""
    label = ev.stable_label or ev.label
    if ev.status != "ok" or label is None:
        return None
    valence, arousal = valence_arousal(ev.probs)
    return typestore().types["hri_msgs/msg/Expression"](
        _header(ts, ""), EXPRESSION.get(label, label), valence, arousal, float(ev.probs.get(label, 0.0)))


def details(ev: schema.EmotionEvent, ts: float):
    """What Expression has no field for, as JSON in a std_msgs/String."""
    body = {k: getattr(ev, k) for k in ("status", "reason", "label", "stable_label", "probs",
                                         "explanation", "unsupported", "mgs", "latency_ms",
                                         "window_seq", "t_start", "t_end")}
    body["stamp"] = ts
    return typestore().types["std_msgs/msg/String"](json.dumps(body, separators=(",", ":")))


def gestures(ev: schema.EmotionEvent, ts: float) -> list:
    T = typestore().types
    codes = sorted({GESTURE[m.get("name")] for m in ev.mgs if isinstance(m, dict) and m.get("name") in GESTURE})
    return [T["hri_msgs/msg/Gesture"](_header(ts, ""), np.uint8(c)) for c in codes]


def transforms(frame: schema.SkeletonFrame, ts: float, parent: str):
    """tf2_msgs/TFMessage: per body ``body_<id>`` at its first joint and ``body_<id>/<joint>`` for
    each joint, all children of ``parent`` (identity rotations: joints are positions)."""
    T = typestore().types
    Vec, Quat = T["geometry_msgs/msg/Vector3"], T["geometry_msgs/msg/Quaternion"]
    Stamped, Transform = T["geometry_msgs/msg/TransformStamped"], T["geometry_msgs/msg/Transform"]
    out = []
    pos = skeleton.to_z_up(frame.joints)  # [B, J, 3]
    joint_names = skeleton.joint_names(frame)
    for b, body in enumerate(frame.body_ids.tolist()):
        name = "body_" + skeleton.body_id(frame.sensor, str(body))
        children = [(name, pos[b, 0])] + [(f"{name}/{j}", pos[b, i]) for i, j in enumerate(joint_names)]
        for child, p in children:
            out.append(Stamped(_header(ts, parent), child,
                               Transform(Vec(*map(float, p)), Quat(0.0, 0.0, 0.0, 1.0))))
    return T["tf2_msgs/msg/TFMessage"](out)


TYPE_OF_LEAF = {"expression": "hri_msgs/msg/Expression", "expression_details": "std_msgs/msg/String",
                "gesture": "hri_msgs/msg/Gesture"}
