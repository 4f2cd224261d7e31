"""ZeroMQ sockets for the bus; the only module that creates sockets.

Data streams are PUB/SUB with an explicit high-water mark: a slow subscriber loses old messages,
it never stalls the publisher. Work distribution (worker -> LLM server) is PUSH/PULL, which
delivers or blocks. Messages are schema-encoded multipart frames; a receiver decodes defensively,
drops what is malformed, counts the drop by reason (``DecodeError.reason``: a short fixed key, so
the counter stays small whatever a peer sends), logs it once per reason, and keeps running.
Receivers also refuse any frame above ``schema.MAX_MESSAGE_BYTES`` at the ZeroMQ level
(ZMQ_MAXMSGSIZE: the peer is disconnected before the memory is allocated; not counted as a drop).

Security (CurveZMQ, ``security.py``): with a keys folder (``--keys DIR`` or ``$BODYTALK_KEYS``)
every tcp/ipc socket here encrypts and authenticates; a socket that binds is the CURVE server and
accepts only the client keys in ``DIR/authorized/``. Without keys a socket may bind only a loopback
address unless ``--insecure`` was given. Addresses are checked before any socket is made.
"""
from __future__ import annotations

import collections
import errno
import logging
import math
import time
from typing import Iterable

import zmq

from bodytalk.stream import schema, security, topics
from bodytalk.stream.security import AddressInUse, TransportError  # noqa: F401  (re-exported: callers catch them from the transport)

log = logging.getLogger("bodytalk.stream")

DEFAULT_HWM = 1000  # messages; ~33 s of frames at 30 Hz, far more windows than any subscriber needs

# The per-message hot path, measured on a 5-part frame message (benchmarks/bench_bus.py): OR-ing
# pyzmq's enum flags costs ~2 us each, so flags are plain ints; pyzmq's Socket.send only forwards
# to the backend's send (adding routing-id/group options we do not use) at ~1 us a part, so we
# call the backend's directly; send_multipart adds a type-check pass (3x the cost of the loop).
# Receiving, ``Frame.more`` is cheaper than asking the socket for RCVMORE after every part.
_SNDMORE, _NOBLOCK = int(zmq.SNDMORE), int(zmq.NOBLOCK)
_send = zmq.backend.Socket.send


def _context() -> zmq.Context:
    return zmq.Context.instance()


def _who_holds(addr: str) -> str:
    """Best effort: the process listening on a tcp address, for the error message."""
    try:
        port = int(addr.rsplit(":", 1)[1])
        import psutil
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                proc = psutil.Process(conn.pid)
                return f"process {conn.pid} ({' '.join(proc.cmdline()[:4])})"
    except Exception:  # psutil missing, no permission, not tcp: fall back to a generic hint
        pass
    return "another process"


def _bad_address(addr: str, err: zmq.ZMQError) -> security.BadAddress:
    return security.BadAddress(f"cannot use address {addr.strip()!r} ({err}): expected e.g. "
                               "tcp://127.0.0.1:5555, tcp://0.0.0.0:5555 (bind) or ipc:///tmp/bodytalk")


class _Socket:
    def __init__(self, kind: int, addr: str, bind: bool, hwm: int,
                 policy: security.Policy | None = None) -> None:
        self.addr, self.policy = addr, policy
        self.sock = _context().socket(kind)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM if kind in (zmq.PUB, zmq.PUSH, zmq.XPUB) else zmq.RCVHWM, hwm)
        self._bind = bind
        self._configure()
        if bind:
            self.addr = self.bind(addr)
        else:
            self.connect(addr)

    def bind(self, addr: str) -> str:
        """Bind one more address; returns it with a ``*`` port resolved. The socket is closed when
        the address is taken (AddressInUse names who holds it) or refused (no keys on a public
        address, see ``security``). CURVE options are set per endpoint, so one socket may bind as
        the CURVE server and connect as a client (the broker's XSUB)."""
        try:
            addr = security.check_address(addr)
            security.secure(self.sock, [addr], True, self.policy)
            self.sock.bind(addr)
        except zmq.ZMQError as err:
            self.sock.close()
            if err.errno == errno.EADDRINUSE:
                raise AddressInUse(
                    f"address {addr} is already in use by {_who_holds(addr)}: stop it "
                    f"or choose another address") from None
            raise _bad_address(addr, err) from None
        except BaseException:
            self.sock.close()
            raise
        return self.sock.getsockopt_string(zmq.LAST_ENDPOINT)  # "tcp://host:*" -> its port

    def connect(self, addr: str) -> None:
        # A connecting socket may take several endpoints, comma-separated (one SUB for the
        # capture bus and the event bus, as the recorder in `bodytalk demo --record` does).
        for endpoint in addr.split(","):
            try:
                endpoint = security.check_address(endpoint)
                security.secure(self.sock, [endpoint], False, self.policy)
                self.sock.connect(endpoint)
            except zmq.ZMQError as err:
                self.sock.close()
                raise _bad_address(endpoint, err) from None
            except BaseException:
                self.sock.close()
                raise

    def _configure(self) -> None:
        """Socket options that must be set before bind/connect."""

    def close(self) -> None:
        self.sock.close(linger=0)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Sender(_Socket):
    _send_flags = 0  # an int: _NOBLOCK for a Pusher that drops instead of blocking

    def send(self, msg: schema.Message, ts: float | None = None) -> bool:
        """Encode and send; False when the peer queue is full and the message was dropped."""
        return self.send_frames(schema.encode(msg, ts))

    def send_frames(self, frames: list) -> bool:
        """Send raw multipart frames (replay). False when the peer queue is full (dropped)."""
        # Copying sends (zero-copy frames only pay off above 64 kB). ZeroMQ decides on the first
        # part whether a message fits; the rest of a started message always goes.
        sock, flags = self.sock, self._send_flags
        try:
            for part in frames[:-1]:
                _send(sock, part, flags | _SNDMORE)
            _send(sock, frames[-1], flags)
            return True
        except zmq.Again:
            return False


class _Receiver(_Socket):
    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.drops: collections.Counter[str] = collections.Counter()
        self.received = 0

    def _configure(self) -> None:
        self.sock.setsockopt(zmq.MAXMSGSIZE, schema.MAX_MESSAGE_BYTES)

    def recv_frames(self, timeout: float | None = None) -> list[bytes] | None:
        """Raw multipart frames, or None after ``timeout`` seconds (None waits forever)."""
        sock = self.sock
        try:  # a queued message needs no poll: one call less per message under load
            part = sock.recv(_NOBLOCK, copy=False)
        except zmq.Again:
            if timeout is not None and not sock.poll(math.ceil(timeout * 1000)):
                return None
            part = sock.recv(copy=False)
        parts = [part.bytes]
        while part.more:  # the rest of a message is there once its first part is
            part = sock.recv(copy=False)
            parts.append(part.bytes)
        return parts

    def recv(self, timeout: float | None = None) -> tuple[schema.Message, float] | None:
        """Next valid message and its sender ts; malformed ones are dropped and counted."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            frames = self.recv_frames(left)
            if frames is None:
                return None
            try:
                out = schema.decode(frames)
            except schema.DecodeError as err:
                self._drop(err, frames)
                if deadline is not None and time.monotonic() >= deadline:
                    return None  # a flood of bad messages must not hold the caller past its timeout
                continue
            self.received += 1
            return out

    def _drop(self, err: schema.DecodeError, frames: list[bytes]) -> None:
        self.drops[err.reason] += 1
        if self.drops[err.reason] == 1:  # once per reason; the counts go out in status messages
            log.warning("dropping malformed messages on %s (reason %r, first: topic %r: %s); "
                        "counted in .drops", self.addr, err.reason, bytes(frames[0][:80]), err)

    @property
    def dropped(self) -> int:
        return sum(self.drops.values())


class Publisher(_Sender):
    """PUB socket (binds by default). Never blocks: beyond ``hwm`` queued messages it drops."""

    def __init__(self, addr: str = topics.DEFAULT_CAPTURE_ADDR, hwm: int = DEFAULT_HWM,
                 bind: bool = True) -> None:
        super().__init__(zmq.PUB, addr, bind, hwm)


class Subscriber(_Receiver):
    """SUB socket (connects by default) filtered by topic prefixes.

    ``conflate=True`` keeps only the latest message: ZeroMQ's CONFLATE does not support multipart
    messages, so it is emulated by draining the queue in ``latest()``.
    """

    def __init__(self, addr: str = topics.DEFAULT_CAPTURE_ADDR, prefixes: Iterable[str] = ("",),
                 hwm: int = DEFAULT_HWM, bind: bool = False, policy: security.Policy | None = None) -> None:
        self._prefixes = list(prefixes) or [""]
        super().__init__(zmq.SUB, addr, bind, hwm, policy)

    def _configure(self) -> None:
        super()._configure()
        for p in self._prefixes:
            self.sock.setsockopt(zmq.SUBSCRIBE, p.encode())

    def latest(self, timeout: float | None = None) -> tuple[schema.Message, float] | None:
        """Wait for one message, then drain the queue and return the newest valid one."""
        out = self.recv(timeout)
        while out is not None:
            nxt = self.recv(0)
            if nxt is None:
                break
            out = nxt
        return out


class Pusher(_Sender):
    """PUSH socket (connects by default): work that must be delivered; ``block=False`` drops.

    ``immediate=True`` queues only to live connections (ZMQ_IMMEDIATE): while no peer is up a
    non-blocking send drops at once, instead of filling a queue that a restarted peer would then
    receive as stale work."""

    def __init__(self, addr: str = topics.DEFAULT_WORK_ADDR, hwm: int = 100, bind: bool = False,
                 block: bool = True, immediate: bool = False) -> None:
        self._immediate = immediate
        super().__init__(zmq.PUSH, addr, bind, hwm)
        self._send_flags = 0 if block else _NOBLOCK

    def _configure(self) -> None:
        self.sock.setsockopt(zmq.IMMEDIATE, int(self._immediate))


class Puller(_Receiver):
    """PULL socket (binds by default): the LLM server collects work from many workers."""

    def __init__(self, addr: str = topics.DEFAULT_WORK_ADDR, hwm: int = 100, bind: bool = True) -> None:
        super().__init__(zmq.PULL, addr, bind, hwm)


class SnapshotServer(_Socket):
    """ROUTER (binds): answers "the latest event per body" to late joiners, ZeroMQ's clone pattern.

    A request is one frame, the topic prefix wanted (at most 256 bytes); the reply is one message
    of ``schema.pack_frames`` blobs, one per event. Malformed requests are dropped and counted in
    ``drops``; a reply that cannot be routed (the peer left) is dropped by ZeroMQ."""

    MAX_REQUEST = 256

    def __init__(self, addr: str = topics.DEFAULT_SNAPSHOT_ADDR) -> None:
        super().__init__(zmq.ROUTER, addr, True, 100)
        self.drops: collections.Counter[str] = collections.Counter()

    def _configure(self) -> None:
        self.sock.setsockopt(zmq.MAXMSGSIZE, self.MAX_REQUEST)

    def serve(self, latest) -> int:
        """Answer every waiting request without blocking; ``latest(prefix)`` -> the events to send."""
        answered = 0
        while True:
            try:
                parts = self.sock.recv_multipart(_NOBLOCK)
            except zmq.Again:
                return answered
            if len(parts) != 3 or parts[1] != b"":   # REQ's envelope: identity, empty, request
                self.drops["request"] += 1
                continue
            prefix = parts[2].decode("utf-8", errors="replace")
            blobs = [schema.pack_frames(schema.encode(m)) for m in latest(prefix)]
            try:
                self.sock.send_multipart([parts[0], b"", b"snapshot", *blobs], _NOBLOCK)
            except zmq.Again:
                self.drops["reply"] += 1
            answered += 1


def request_snapshot(addr: str, prefix: str = "", timeout: float = 2.0,
                     policy: security.Policy | None = None) -> list[schema.Message] | None:
    """The latest events a SnapshotServer holds (topics starting with ``prefix``), or None when it
    did not answer within ``timeout`` seconds. Malformed entries are left out."""
    req = _Socket(zmq.REQ, addr, False, 1, policy)
    try:
        req.sock.setsockopt(zmq.MAXMSGSIZE, schema.MAX_MESSAGE_BYTES)
        req.sock.send(prefix.encode()[:SnapshotServer.MAX_REQUEST])
        if not req.sock.poll(math.ceil(timeout * 1000)):
            return None
        parts = req.sock.recv_multipart()
    finally:
        req.close()
    out = []
    for blob in parts[1:] if parts[:1] == [b"snapshot"] else []:
        try:
            out.append(schema.decode(schema.unpack_frames(blob))[0])
        except schema.DecodeError:
            continue
    return out


class Heartbeat:
    """Publishes ``status.<component>`` at most every ``period`` seconds, and at once when the
    state changes or ``force`` is set."""

    def __init__(self, pub: _Sender, component: str, period: float = 1.0,
                 clock=time.monotonic) -> None:
        if not period >= 0:
            raise ValueError(f"heartbeat period must be >= 0 seconds, got {period}")
        self.pub, self.component, self.period = pub, topics.part(component), period
        self._clock = clock
        self._last = -math.inf
        self._seq = 0
        self._state = ""

    def tick(self, state: str = "running", force: bool = False, **fields) -> bool:
        """Send a status now if due; True when one was sent."""
        now = self._clock()
        if not force and state == self._state and now - self._last < self.period:
            return False
        self._last, self._state = now, state
        self._seq += 1
        refused = security.refused_peers()
        if refused:  # peers whose CURVE key is not authorised, counted by the ZAP handler
            fields["counters"] = {**fields.get("counters", {}), "auth_refused": refused}
        self.pub.send(schema.Status(component=self.component, state=state, seq=self._seq, **fields))
        return True


class Forwarder:
    """Many publishers into one bus: ZeroMQ's own proxy (``zmq.proxy_steerable``) from an XSUB to
    an XPUB. Messages are forwarded byte for byte, never decoded (subscribers validate them);
    subscriptions travel upstream, so a publisher sends only what some subscriber asked for.

    The XSUB connects to publishers that bind (``sources``: captures as they are) and binds
    ``listen`` for publishers that connect; frames above ``schema.MAX_MESSAGE_BYTES`` are refused
    there. It also binds ``status_addr`` (inproc), where the broker's own heartbeat enters the
    bus like any publisher's. ``run`` blocks in libzmq until ``stop``; ``stats`` asks the running
    proxy for its counters. Each call of ``stats``/``stop`` uses its own control socket, so they
    may come from any thread."""

    _ids = iter(range(1 << 62))

    def __init__(self, pub: str, sources: Iterable[str] = (), listen: str | None = None,
                 hwm: int = DEFAULT_HWM) -> None:
        n = next(self._ids)
        self.status_addr = f"inproc://bodytalk-forwarder-{n}-status"
        self._control_addr = f"inproc://bodytalk-forwarder-{n}-control"
        self.front = _Receiver(zmq.XSUB, self.status_addr, True, hwm)
        self.back = self.control = None
        try:
            self.listen = self.front.bind(listen) if listen else None
            for source in sources:
                self.front.connect(source)
            self.back = _Socket(zmq.XPUB, pub, True, hwm)
            self.pub = self.back.addr
            self.control = _Socket(zmq.REP, self._control_addr, True, 1)
        except BaseException:
            self.close()
            raise

    def run(self) -> None:
        """Forward until ``stop`` (from another thread)."""
        zmq.proxy_steerable(self.front.sock, self.back.sock, None, self.control.sock)

    def _command(self, command: bytes, timeout: float) -> list[bytes] | None:
        with _Socket(zmq.REQ, self._control_addr, False, 1) as req:
            req.sock.send(command)
            return req.sock.recv_multipart() if req.sock.poll(math.ceil(timeout * 1000)) else None

    def stats(self, timeout: float = 1.0) -> dict[str, int] | None:
        """Frames and bytes in and out so far (``in_frames`` from publishers, ``out_frames`` to
        subscribers), or None when the proxy does not answer within ``timeout`` seconds."""
        reply = self._command(b"STATISTICS", timeout)
        if reply is None or len(reply) != 8:
            return None
        # libzmq's order: frontend msgs in, bytes in, msgs out, bytes out, then the same for the backend
        v = [int.from_bytes(part, "little") for part in reply]
        return {"in_frames": v[0], "in_bytes": v[1], "out_frames": v[6], "out_bytes": v[7]}

    def stop(self, timeout: float = 1.0) -> None:
        self._command(b"TERMINATE", timeout)

    def close(self) -> None:
        for sock in (self.front, self.back, self.control):
            if sock is not None:
                sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

