"""Emotion events in a few lines of Python, for robots and installations.

    import bodytalk

    for event in bodytalk.subscribe("tcp://127.0.0.1:5556", bodies=["1"], min_confidence=0.6):
        print(event.body, event.stable_label, event.probs)

The subscription reconnects by itself. ZeroMQ re-establishes a dropped connection when the server
comes back at the same address; what it cannot notice (a link that died silently, a host that
vanished without closing its connections) is caught by watching the server's heartbeat: after
``silence`` seconds with neither an event nor a ``status.*`` message, the socket is closed and
created afresh. Light: no torch, only ``bodytalk.stream`` (numpy, pyzmq, msgpack).
"""
from __future__ import annotations

import collections
import logging
import time
from collections.abc import Iterable, Iterator

from bodytalk.stream import schema, security, topics
from bodytalk.stream.transport import Subscriber, request_snapshot

log = logging.getLogger("bodytalk.client")


class Subscription(Iterator[schema.EmotionEvent]):
    """An endless iterator of ``EmotionEvent``s; ``poll(timeout)`` waits a bounded time instead.

    ``bodies``: body ids to keep (``"3"``, or ``"kinect0.3"`` for one sensor's body 3); None keeps
    every body. ``min_confidence``: keep events whose label has at least this probability; above 0,
    events without a label (status "insufficient_data") are left out too. ``topic``: the event topic
    prefix (``"emotion.kinect0."`` for one sensor). ``silence``: seconds without any message before
    the socket is re-created (the server's heartbeat comes every second). ``keys``: the CurveZMQ
    keys folder (``bodytalk keys init``; this side needs ``server.key`` and ``client.key_secret``)
    when the server runs with keys; default ``$BODYTALK_KEYS``. ``snapshot``: the server's
    ``--snapshot`` address: the latest event of every body comes first (a late joiner knows the
    state at once), then the live ones; a live event already in the snapshot is not repeated.
    Each event's ``seq`` counts that body's events at the server: a gap means events were lost.
    """

    def __init__(self, addr: str = topics.DEFAULT_SERVER_ADDR, bodies: Iterable[object] | None = None,
                 min_confidence: float = 0.0, topic: str = topics.EMOTION, silence: float = 5.0,
                 hwm: int = 100, keys: str | None = None, snapshot: str | None = None) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        if not topic.startswith(topics.EMOTION):
            raise ValueError(f"topic must be an emotion topic prefix ({topics.EMOTION}...), got {topic!r}")
        if not silence > 0:
            raise ValueError(f"silence must be > 0 seconds, got {silence}")
        self.addr, self.topic, self.silence, self.hwm = addr, topic, silence, hwm
        self.policy = security.Policy(security.Keys(keys)) if keys else None
        self.bodies = None if bodies is None else frozenset(map(str, bodies))
        self.min_confidence = min_confidence
        self.reconnects = 0
        self._sub: Subscriber | None = self._connect()
        self._heard = time.monotonic()
        self._pending: collections.deque[schema.EmotionEvent] = collections.deque()
        self._from_snapshot: set[tuple[str, str, int]] = set()   # (sensor, body, seq) already given
        if snapshot is not None:   # after the SUB connected, so nothing falls between the two
            got = request_snapshot(snapshot, self.topic, policy=self.policy)
            if got is None:
                log.warning("no snapshot from %s: starting with live events", snapshot)
            for ev in got or ():
                if isinstance(ev, schema.EmotionEvent) and self._wanted(ev):
                    self._pending.append(ev)
                    self._from_snapshot.add((ev.sensor, ev.body, ev.seq))

    def _connect(self) -> Subscriber:
        return Subscriber(self.addr, prefixes=[self.topic, topics.STATUS], hwm=self.hwm, policy=self.policy)

    def _wanted(self, ev: schema.EmotionEvent) -> bool:
        if self.bodies is not None and ev.body not in self.bodies and f"{ev.sensor}.{ev.body}" not in self.bodies:
            return False
        if self.min_confidence > 0:
            return ev.status == "ok" and ev.probs.get(ev.label, 0.0) >= self.min_confidence
        return True

    def poll(self, timeout: float | None = None) -> schema.EmotionEvent | None:
        """The next wanted event, or None after ``timeout`` seconds (None waits for ever)."""
        if self._sub is None:
            raise RuntimeError("this subscription is closed")
        if self._pending:
            return self._pending.popleft()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if now - self._heard > self.silence:
                log.info("no message from %s for %.1f s: reconnecting", self.addr, now - self._heard)
                self._sub.close()
                self._sub = self._connect()
                self.reconnects += 1
                self._heard = now
            wait = self._heard + self.silence - now
            if deadline is not None:
                wait = min(wait, deadline - now)
            got = self._sub.recv(max(wait, 0.0))
            if got is not None:
                self._heard = time.monotonic()
                ev = got[0]
                if isinstance(ev, schema.EmotionEvent) and self._wanted(ev) and \
                        (ev.sensor, ev.body, ev.seq) not in self._from_snapshot:
                    return ev
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def __next__(self) -> schema.EmotionEvent:
        return self.poll(None)

    def close(self) -> None:
        if getattr(self, "_sub", None) is not None:
            self._sub.close()
            self._sub = None

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def subscribe(addr: str = topics.DEFAULT_SERVER_ADDR, bodies: Iterable[object] | None = None,
              min_confidence: float = 0.0, topic: str = topics.EMOTION, silence: float = 5.0,
              keys: str | None = None, snapshot: str | None = None) -> Subscription:
    """Iterate over emotion events from the server at ``addr`` (see ``Subscription``)."""
    return Subscription(addr, bodies=bodies, min_confidence=min_confidence, topic=topic, silence=silence,
                        keys=keys, snapshot=snapshot)
