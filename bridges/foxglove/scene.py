"""Bus messages as Foxglove messages (``foxglove-sdk``'s ``foxglove.messages``).

Topics (Z up, parent frame ``frame_id``; body id ``<sensor>_<body>``, see ``skeleton.body_id``):
  /bodytalk/scene                  SceneUpdate: per body a sphere per joint, bone lines and a text
                                   with the stable label and latest explanation, coloured by label
  /bodytalk/tf                     FrameTransforms: frame ``body_<id>`` at the body's root joint
  /bodytalk/explanations           Log: each explanation, named by body
  /bodytalk/bodies/<id>/emotion    JSON: label, stable label, confidence and probabilities (plot
                                   ``.probs.happy`` etc.)
``Scene`` keeps the latest label and explanation per body so frames are drawn in the body's colour.
"""
from __future__ import annotations

from dataclasses import dataclass

from bodytalk.bridges import skeleton
from bodytalk.bridges.extras import need
from bodytalk.stream import schema

EXTRA = "foxglove"
SCENE, TF, LOG = "/bodytalk/scene", "/bodytalk/tf", "/bodytalk/explanations"
JOINT_SIZE = 0.06    # m, sphere diameter
BONE_WIDTH = 0.02    # m
TEXT_ABOVE = 0.35    # m above the highest joint
LIFETIME_NS = 500_000_000  # an entity a frame did not renew disappears after this


# JSON schema of the emotion channel, so Foxglove's Plot panel offers the fields.
EMOTION_SCHEMA = {
    "title": "bodytalk.Emotion", "type": "object",
    "properties": {"body": {"type": "string"}, "stamp": {"type": "number"}, "status": {"type": "string"},
                   "label": {"type": ["string", "null"]}, "stable_label": {"type": ["string", "null"]},
                   "confidence": {"type": "number"},
                   "probs": {"type": "object", "additionalProperties": {"type": "number"}},
                   "mgs": {"type": "array", "items": {"type": "string"}},
                   "latency_ms": {"type": ["number", "null"]}}}


def emotion_topic(rid: str) -> str:
    return f"/bodytalk/bodies/{rid}/emotion"


@dataclass
class _Reading:
    label: str | None = None
    explanation: str | None = None


class Scene:
    """Converts bus messages to ``(topic, message)`` pairs; a JSON message is a plain dict."""

    def __init__(self, frame_id: str = "bodytalk") -> None:
        self.fm = need("foxglove.messages", EXTRA)
        self.frame_id = frame_id
        self.readings: dict[tuple[str, str], _Reading] = {}

    def convert(self, msg: schema.Message, ts: float) -> list[tuple[str, object]]:
        if isinstance(msg, schema.SkeletonFrame):
            return self._frame(msg, ts) if len(msg.body_ids) else []
        if isinstance(msg, schema.EmotionEvent):
            return self._event(msg, ts)
        return []

    def forget(self, key: tuple[str, str]) -> None:
        self.readings.pop(key, None)

    def _stamp(self, ts: float):
        sec = int(ts // 1)
        return self.fm.Timestamp(sec, int((ts - sec) * 1e9))

    def _frame(self, frame: schema.SkeletonFrame, ts: float) -> list[tuple[str, object]]:
        fm, stamp = self.fm, self._stamp(ts)
        pos = skeleton.to_z_up(frame.joints)  # [B, J, 3]
        bones = skeleton.bones(frame)
        entities, transforms = [], []
        for b, body in enumerate(frame.body_ids.tolist()):
            reading = self.readings.get((frame.sensor, str(body)), _Reading())
            rid = skeleton.body_id(frame.sensor, str(body))
            r, g, bl = skeleton.label_color(reading.label)
            color = fm.Color(r=r, g=g, b=bl, a=1.0)
            xyz = pos[b].tolist()
            points = [fm.Point3(x=x, y=y, z=z) for x, y, z in xyz]
            spheres = [fm.SpherePrimitive(pose=fm.Pose(position=fm.Vector3(x=x, y=y, z=z)),
                                          size=fm.Vector3(x=JOINT_SIZE, y=JOINT_SIZE, z=JOINT_SIZE), color=color)
                       for x, y, z in xyz]
            lines = [fm.LinePrimitive(type=fm.LinePrimitiveLineType.LineList, thickness=BONE_WIDTH,
                                      points=[points[i] for pair in bones for i in pair], color=color)] if bones else []
            top = pos[b].max(axis=0)
            text = reading.label or "…"
            if reading.explanation:
                text += "\n" + reading.explanation
            label = fm.TextPrimitive(pose=fm.Pose(position=fm.Vector3(x=float(pos[b, 0, 0]), y=float(pos[b, 0, 1]),
                                                                      z=float(top[2]) + TEXT_ABOVE)),
                                     billboard=True, font_size=14.0, scale_invariant=True, color=color, text=text)
            entities.append(fm.SceneEntity(timestamp=stamp, frame_id=self.frame_id, id=f"body_{rid}",
                                           lifetime=fm.Duration(0, LIFETIME_NS), frame_locked=False,
                                           metadata=[fm.KeyValuePair(key="label", value=reading.label or "")],
                                           spheres=spheres, lines=lines, texts=[label]))
            root = pos[b, 0].tolist()
            transforms.append(fm.FrameTransform(timestamp=stamp, parent_frame_id=self.frame_id,
                                                child_frame_id=f"body_{rid}",
                                                translation=fm.Vector3(x=root[0], y=root[1], z=root[2]),
                                                rotation=fm.Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)))
        return [(SCENE, fm.SceneUpdate(entities=entities)), (TF, fm.FrameTransforms(transforms=transforms))]

    def _event(self, ev: schema.EmotionEvent, ts: float) -> list[tuple[str, object]]:
        reading = self.readings.setdefault((ev.sensor, ev.body), _Reading())
        rid = skeleton.body_id(ev.sensor, ev.body)
        label = ev.stable_label or ev.label
        if ev.status == "ok":
            reading.label = label
        out: list[tuple[str, object]] = [(emotion_topic(rid), {
            "body": rid, "stamp": ts, "status": ev.status, "label": ev.label, "stable_label": ev.stable_label,
            "confidence": ev.probs.get(label, 0.0) if label else 0.0, "probs": dict(ev.probs),
            "mgs": [m.get("name") for m in ev.mgs if isinstance(m, dict)],
            "latency_ms": ev.latency_ms.get("total")})]
        if ev.explanation:
            reading.explanation = ev.explanation
            out.append((LOG, self.fm.Log(timestamp=self._stamp(ts), level=self.fm.LogLevel.Info,
                                         message=f"{label}: {ev.explanation}", name=rid)))
        return out
