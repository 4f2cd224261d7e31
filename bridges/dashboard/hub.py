"""Bus messages as dashboard updates, and the fan-out to browsers.

Updates are small JSON objects (``t``: frame, emotion, text, status, left). Each browser has its
own outbox: frames are conflated (only the newest frame of each sensor waits), everything else
waits in a bounded queue (the oldest goes first when a browser falls behind), so a slow browser
loses stale frames and never slows the bus or the other browsers. A browser that connects gets a
snapshot: the newest frame per sensor, the newest reading per body, the recent timeline and the
components' health.
"""
from __future__ import annotations

import asyncio
import collections

from bodytalk.bridges import bus, skeleton
from bodytalk.stream import schema

OUTBOX = 256          # queued non-frame updates per browser
TIMELINE = 600        # readings kept for a browser that connects later (all bodies)
DIGITS = 3            # joint coordinates are sent in mm
MAX_COMPONENTS = 64   # heartbeats shown


class Outbox:
    """One browser's pending updates; ``get`` waits for the next one."""

    def __init__(self) -> None:
        self.frames: dict[str, dict] = {}   # sensor -> newest frame not yet sent
        self.queue: collections.deque = collections.deque(maxlen=OUTBOX)
        self.dropped = 0
        self.wake = asyncio.Event()

    def put(self, update: dict) -> None:
        if update["t"] == "frame":
            if update["sensor"] in self.frames:
                self.dropped += 1
            self.frames[update["sensor"]] = update
        else:
            if len(self.queue) == self.queue.maxlen:
                self.dropped += 1
            self.queue.append(update)
        self.wake.set()

    async def get(self) -> dict:
        while not (self.queue or self.frames):
            self.wake.clear()
            await self.wake.wait()
        if self.queue:
            return self.queue.popleft()
        return self.frames.pop(next(iter(self.frames)))


class Hub:
    """The dashboard's view of the bus; ``publish`` may be called from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.clients: set[Outbox] = set()
        self.frames: dict[str, dict] = {}
        self.readings: dict[str, dict] = {}
        self.timeline: collections.deque = collections.deque(maxlen=TIMELINE)
        self.health: dict[str, dict] = {}

    def publish(self, update: dict) -> None:
        self.loop.call_soon_threadsafe(self._deliver, update)

    def _deliver(self, update: dict) -> None:
        kind = update["t"]
        if kind == "frame":
            if update["bodies"]:
                self.frames[update["sensor"]] = update
            else:
                self.frames.pop(update["sensor"], None)
        elif kind == "emotion":
            self.readings[update["id"]] = update
            if update["status"] == "ok":
                self.timeline.append({k: update[k] for k in ("id", "ts", "stable_label", "confidence", "color")})
        elif kind == "status":
            self.health[update["component"]] = update
            if len(self.health) > MAX_COMPONENTS:  # bounded whatever names a peer sends
                del self.health[min(self.health, key=lambda c: self.health[c]["ts"])]
        elif kind == "left":
            self.readings.pop(update["id"], None)
            for sensor in [s for s, f in self.frames.items() if any(b["id"] == update["id"] for b in f["bodies"])]:
                del self.frames[sensor]  # the sensor's next frame brings it back without the body
        for client in self.clients:
            client.put(update)

    def connect(self) -> Outbox:
        box = Outbox()
        box.put({"t": "snapshot", "timeline": list(self.timeline), "readings": list(self.readings.values()),
                 "health": list(self.health.values())})
        for frame in self.frames.values():
            box.put(frame)
        self.clients.add(box)
        return box

    def disconnect(self, box: Outbox) -> None:
        self.clients.discard(box)


class DashboardBridge(bus.Bridge):
    """Bus messages in, dashboard updates out to ``hub``."""

    def __init__(self, hub: Hub, intake, forget_after: float = bus.FORGET_AFTER) -> None:
        super().__init__(intake, forget_after)
        self.hub = hub

    def handle(self, msg: schema.Message, ts: float) -> None:
        update = None
        if isinstance(msg, schema.SkeletonFrame):
            ids = [str(b) for b in msg.body_ids.tolist()]
            joints = msg.joints.round(DIGITS).tolist()  # [B, J, 3] canonical metres, Y up
            update = {"t": "frame", "sensor": msg.sensor, "ts": ts, "bones": skeleton.bones(msg),
                      "bodies": [{"id": skeleton.body_id(msg.sensor, b), "joints": j} for b, j in zip(ids, joints)]}
        elif isinstance(msg, schema.EmotionEvent):
            label = msg.stable_label or msg.label
            update = {"t": "emotion", "id": skeleton.body_id(msg.sensor, msg.body), "ts": ts,
                      "status": msg.status, "reason": msg.reason, "label": msg.label,
                      "stable_label": msg.stable_label, "confidence": msg.probs.get(label, 0.0) if label else 0.0,
                      "probs": msg.probs, "explanation": msg.explanation, "window_seq": msg.window_seq,
                      "mgs": [m.get("name") for m in msg.mgs if isinstance(m, dict)],
                      "latency_ms": msg.latency_ms.get("total"),
                      "color": _hex(skeleton.label_color(label if msg.status == "ok" else None))}
        elif isinstance(msg, schema.EmotionText):
            update = {"t": "text", "id": skeleton.body_id(msg.sensor, msg.body), "window_seq": msg.window_seq,
                      "index": msg.index, "text": msg.text, "done": msg.done}
        elif isinstance(msg, schema.Status):
            update = {"t": "status", "component": msg.component, "state": msg.state, "ts": ts,
                      "rate_hz": msg.rate_hz, "drops": msg.drops, "queue_depth": msg.queue_depth,
                      "message": msg.message}
        if update is not None:
            self.hub.publish(update)

    def left(self, key: tuple[str, str]) -> None:
        self.hub.publish({"t": "left", "id": skeleton.body_id(*key)})


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb)
