"""What every bridge shares: the bus intake, the ``step / beat / run`` loop, and which bodies are
present (a body leaves when no frame or event has named it for ``forget_after`` seconds)."""
from __future__ import annotations

import argparse
import logging
import signal
import threading
import time

from bodytalk.addresses import is_loopback_host
from bodytalk.stream import schema, security, topics
from bodytalk.stream.transport import Subscriber

log = logging.getLogger("bodytalk.bridges")
DEFAULT_SUB = f"{topics.DEFAULT_CAPTURE_ADDR},{topics.DEFAULT_SERVER_ADDR}"
PREFIXES = (topics.FRAME, topics.EMOTION, topics.STATUS)  # EMOTION also covers emotion.text.
FORGET_AFTER = 5.0  # seconds: a body absent this long has left (its per-body state goes)
MAX_BODIES = 64     # bodies tracked at once; beyond it the longest unseen is forgotten


def add_bus_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sub", default=DEFAULT_SUB,
                   help="bus address(es) to subscribe to, comma-separated: the capture bus for "
                        "skeletons and the server for emotion events (default %(default)s)")
    p.add_argument("--forget-after", type=float, default=FORGET_AFTER, metavar="S",
                   help="seconds without a frame or event before a body counts as gone (default %(default)s)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    security.add_arguments(p)


def subscribe(args: argparse.Namespace) -> Subscriber:
    """The bridge's intake: frames, emotion events and heartbeats from ``--sub``, with the CurveZMQ
    keys of ``--keys`` / ``$BODYTALK_KEYS`` (the one place where they reach the bridges)."""
    security.configure_from(args)
    return Subscriber(args.sub, prefixes=PREFIXES)


def add_server_arguments(p: argparse.ArgumentParser, port: int, what: str) -> None:
    """``--host`` (loopback by default) and ``--port`` of a bridge that serves clients."""
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default %(default)s: this machine only)")
    p.add_argument("--port", type=int, default=port, help=f"{what} port (default %(default)s; 0 picks a free one)")


def start(args: argparse.Namespace) -> threading.Event:
    """What every bridge's ``main`` does first: SIGTERM stops it as Ctrl-C does, and serving
    beyond loopback is said out loud. Returns the stop event."""
    if not is_loopback_host(getattr(args, "host", "127.0.0.1")):
        log.warning("serving on %s: anyone who can reach this port sees the skeletons", args.host)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


class Presence:
    """Bodies ``(sensor, body)`` by the monotonic time they were last named."""

    def __init__(self, forget_after: float = FORGET_AFTER, max_bodies: int = MAX_BODIES) -> None:
        if not forget_after > 0:
            raise ValueError(f"--forget-after must be > 0 seconds, got {forget_after}")
        self.forget_after, self.max_bodies = forget_after, max_bodies
        self.seen: dict[tuple[str, str], float] = {}

    def touch(self, key: tuple[str, str], now: float) -> tuple[str, str] | None:
        """Mark a body present; returns the body forgotten to make room for it, if any."""
        new = key not in self.seen
        self.seen[key] = now
        if new and len(self.seen) > self.max_bodies:
            oldest = min(self.seen, key=self.seen.get)
            del self.seen[oldest]
            return oldest
        return None

    def expire(self, now: float) -> list[tuple[str, str]]:
        """Forget and return the bodies unseen for ``forget_after`` seconds."""
        gone = [k for k, t in self.seen.items() if now - t > self.forget_after]
        for k in gone:
            del self.seen[k]
        return gone


class Bridge:
    """A bus client that turns messages into another protocol. Subclasses implement ``handle``
    (one decoded message and its sender ts) and may extend ``beat`` (called about once a second)."""

    def __init__(self, intake: Subscriber | None, forget_after: float = FORGET_AFTER) -> None:
        """``intake`` None: the caller feeds ``handle`` itself (a session export)."""
        self.intake = intake
        self.presence = Presence(forget_after)
        self.handled = 0

    def handle(self, msg: schema.Message, ts: float) -> None:
        raise NotImplementedError

    def left(self, key: tuple[str, str]) -> None:
        """A body has left (called by ``beat``)."""

    def present(self, msg: schema.Message) -> None:
        """Mark the bodies a frame or event names as present; a body pushed out by the
        ``max_bodies`` bound leaves at once (its per-body state goes, so memory stays bounded)."""
        now = time.monotonic()
        if isinstance(msg, schema.SkeletonFrame):
            keys = [(msg.sensor, str(b)) for b in msg.body_ids.tolist()]
        elif isinstance(msg, schema.EmotionEvent):
            keys = [(msg.sensor, msg.body)]
        else:
            return
        for key in keys:
            gone = self.presence.touch(key, now)
            if gone is not None:
                self.left(gone)

    def step(self, timeout: float = 0.1) -> int:
        """Handle the messages waiting (at least one within ``timeout``); returns how many."""
        n = 0
        got = self.intake.recv(timeout)
        while got is not None and n < 1000:  # bounded: beat still runs under a flood
            self.present(got[0])
            self.handle(*got)
            n += 1
            got = self.intake.recv(0)
        self.handled += n
        return n

    def beat(self) -> None:
        for key in self.presence.expire(time.monotonic()):
            self.left(key)

    def run(self, duration: float | None = None, stop: threading.Event | None = None) -> None:
        start = last_beat = time.monotonic()
        while not (stop and stop.is_set()) and (duration is None or time.monotonic() - start < duration):
            self.step(0.1)
            if time.monotonic() - last_beat >= 1.0:
                self.beat()
                last_beat = time.monotonic()
