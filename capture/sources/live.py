"""Shared pieces of the live sources: a reading loop that survives disconnects.

A live source (sensor SDK or network stream) implements four small hooks and ``LiveSource``
runs the loop around them:

- ``setup()``       once, from ``open()``: import the SDK, bind sockets, set ``layout``/``fps``.
                    Errors a retry cannot fix (missing SDK, wrong platform, port in use, bad
                    options) raise ``SourceError`` here.
- ``connect()``     (re)establish the link; raise ``LinkDown`` (or ``OSError``) when the peer is
                    not there. Listeners that only wait for datagrams keep the default no-op.
- ``receive(t)``    one packet, or None when nothing arrived within ``t`` seconds; ``LinkDown``
                    when the transport is gone.
- ``decode(p)``     a ``Frame``, or None for a packet that carries none (a description, half of
                    a frame). A bad packet raises ``Malformed`` (or a parsing error): it is
                    counted by reason and dropped, never ends capture.

A link is *down* when connecting fails, the transport closes, or no frame arrives for
``timeout`` seconds. The loop then reports "disconnected" (log + ``on_status``), retries with
exponential back-off and reports "running" with "reconnected ..." when frames flow again. With
``?reconnect=0`` a disconnect raises ``SourceError`` instead (the capture loop then ends).

Frame times are this machine's ``time.monotonic()`` at receipt: sensor clocks restart when a
sensor does, and the windower needs times that never go back.
"""
from __future__ import annotations

import importlib
import json
import logging
import math
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, ClassVar, Hashable, Iterable, Iterator

import numpy as np

from bodytalk.capture.source import Frame, Source, SourceError

log = logging.getLogger("bodytalk.capture.live")

StatusHook = Callable[[str, str], None]   # (state, message): "disconnected" | "running"


class Malformed(ValueError):
    """A packet that does not decode; the message is the reason it is counted under."""


class LinkDown(ConnectionError):
    """The peer or device is gone (refused, closed, unplugged); the loop reconnects."""


# What a decoder may raise on hostile or truncated input besides ``Malformed``.
DECODE_ERRORS = (ValueError, KeyError, IndexError, TypeError, AttributeError, struct.error,
                 UnicodeDecodeError, json.JSONDecodeError)


@dataclass(frozen=True)
class LinkConfig:
    """Disconnect detection and retry timing, from ``?timeout=&backoff=&backoff_max=&reconnect=``."""
    timeout: float = 2.0       # seconds without a frame that count as a disconnect
    backoff: float = 0.25      # first retry delay in seconds, doubled after each failed attempt
    backoff_max: float = 5.0   # longest delay between attempts
    reconnect: bool = True     # False: a disconnect raises SourceError

    def __post_init__(self) -> None:
        if not (self.timeout > 0 and self.backoff > 0 and self.backoff_max >= self.backoff):
            raise SourceError(f"live source: need timeout > 0 and 0 < backoff <= backoff_max, got "
                              f"timeout={self.timeout} backoff={self.backoff} "
                              f"backoff_max={self.backoff_max}")

    @classmethod
    def from_options(cls, src: Source) -> "LinkConfig":
        return cls(timeout=src.option("timeout", cls.timeout, float),
                   backoff=src.option("backoff", cls.backoff, float),
                   backoff_max=src.option("backoff_max", cls.backoff_max, float),
                   reconnect=src.option("reconnect", "1") not in ("0", "false", "no"))


class LiveSource(Source):
    """A source read from a device or a network peer; see the module docstring."""

    live = True
    LINK_OPTIONS: ClassVar[str] = "reconnects (timeout=S, backoff=S, backoff_max=S, reconnect=0)"

    def __init__(self, target: str, options: dict[str, str]) -> None:
        super().__init__(target, options)
        self.link = LinkConfig.from_options(self)
        self.on_status: StatusHook | None = None  # set by the capture loop to publish status
        self.counters: Counter[str] = Counter()   # packets, malformed, disconnects, reconnects
        self.malformed_reasons: Counter[str] = Counter()
        self._up = False                          # a connect() succeeded and was not dropped
        self._down_since: float | None = None     # set while reported disconnected
        self._closed = False                      # close() ends frames(), from any thread
        self.stop_at: float | None = None         # time.monotonic() at which frames() ends, frames or not

    # --- hooks -------------------------------------------------------------------------------
    def setup(self) -> None:
        """Import the SDK, bind sockets, set ``layout`` and ``fps``."""

    def connect(self) -> None:
        """(Re)establish the link; raise ``LinkDown`` when the peer is not there."""

    def disconnect(self) -> None:
        """Drop the link (idempotent); ``close()`` calls it too."""

    def receive(self, timeout: float):
        """One packet, or None after ``timeout`` seconds of silence."""
        raise NotImplementedError

    def decode(self, packet) -> Frame | None:
        """A frame from one packet; raise ``Malformed`` for a bad one."""
        raise NotImplementedError

    # --- the loop ----------------------------------------------------------------------------
    def open(self) -> None:
        self._closed = False
        self.setup()
        self._try_connect()  # a peer that is not up yet is retried by frames(), not fatal

    def close(self) -> None:
        self._closed = True
        self.disconnect()
        self._up = False

    def _running(self) -> bool:
        return not self._closed and (self.stop_at is None or time.monotonic() < self.stop_at)

    def frames(self) -> Iterator[Frame]:
        """Frames until close() or ``stop_at``: a deadline that holds while the peer is silent
        (every wait below is at most half a second, or the back-off cut to the deadline)."""
        delay = self.link.backoff
        last_frame = time.monotonic()
        while self._running():
            if not self._up:
                if not self._try_connect():
                    left = math.inf if self.stop_at is None else self.stop_at - time.monotonic()
                    time.sleep(max(0.0, min(delay, left)))
                    delay = min(2 * delay, self.link.backoff_max)
                    continue
                last_frame = time.monotonic()
            try:
                packet = self.receive(min(self.link.timeout, 0.5))
            except (LinkDown, OSError) as err:
                if self._closed:
                    return
                self._lost(f"connection lost: {err}")
                continue
            now = time.monotonic()
            if packet is None:
                if now - last_frame > self.link.timeout:
                    self._lost(f"no data for {self.link.timeout:g} s")
                continue
            self.counters["packets"] += 1
            try:
                frame = self.decode(packet)
            except (Malformed, *DECODE_ERRORS) as err:
                self._malformed(err)
                continue
            if frame is None:
                continue
            last_frame, delay = now, self.link.backoff
            if self._down_since is not None:
                self.counters["reconnects"] += 1
                self._report("running", f"reconnected to {self.describe()} after "
                                        f"{now - self._down_since:.1f} s")
                self._down_since = None
            yield frame

    def describe(self) -> str:
        """The peer or device in messages, e.g. ``natnet://10.0.0.5``."""
        return f"{self.scheme}:{self.target}"

    def _try_connect(self) -> bool:
        try:
            self.connect()
        except (LinkDown, OSError) as err:
            self._lost(f"cannot connect: {err}")
            return False
        self._up = True
        return True

    def _lost(self, why: str) -> None:
        """Mark the link down; report it once per outage."""
        self.disconnect()
        self._up = False
        if self._down_since is not None:
            return
        if not self.link.reconnect:
            raise SourceError(f"{self.describe()}: {why} (reconnect=0)")
        self._down_since = time.monotonic()
        self.counters["disconnects"] += 1
        self._report("disconnected", f"{self.describe()}: {why}; retrying with back-off up to "
                                     f"{self.link.backoff_max:g} s")

    def _malformed(self, err: Exception) -> None:
        reason = str(err) if isinstance(err, Malformed) else type(err).__name__
        self.counters["malformed"] += 1
        self.malformed_reasons[reason] += 1
        # The first packet of each kind of damage is worth a warning; a flood is not.
        level = logging.WARNING if self.malformed_reasons[reason] == 1 else logging.DEBUG
        log.log(level, "%s: dropped a malformed packet (%s): %s", self.describe(), reason, err)

    def _report(self, state: str, message: str) -> None:
        log.log(logging.WARNING if state == "disconnected" else logging.INFO, "%s", message)
        if self.on_status is not None:
            self.on_status(state, message)


def import_sdk(modules: Iterable[str], needs: str) -> list:
    """Import a sensor SDK's Python modules when the source opens. Any failure becomes one
    ``SourceError`` saying what is needed: bindings fail in many ways besides ImportError
    (pykinect2 raises SyntaxError off Windows, a missing DLL raises OSError, pykinect_azure
    calls ``sys.exit``)."""
    try:
        return [importlib.import_module(name) for name in modules]
    except (Exception, SystemExit) as err:
        raise SourceError(f"{needs} ({type(err).__name__}: {err})") from None


class BodyIds:
    """Small body ids that stay put while a body is tracked, for sensors whose ids are large
    (Kinect's 64-bit tracking ids) or names (Rokoko actors). A key keeps its id for the life of
    the source; a new key gets the next unused id, so ids are never reused for another person."""

    def __init__(self, first: int = 1) -> None:
        self._ids: dict[Hashable, int] = {}
        self._next = first

    def __call__(self, keys: Iterable[Hashable]) -> np.ndarray:
        out = []
        for key in keys:
            if key not in self._ids:
                self._ids[key] = self._next
                self._next += 1
            out.append(self._ids[key])
        return np.asarray(out, dtype=np.int32)  # [B]


def sanitize(joints: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mark non-finite joints missing: position 0, confidence 0 (the wire takes finite values
    only); clip confidence into [0, 1]. ``joints [B, J, 3]``, ``conf [B, J]``."""
    joints = np.asarray(joints, dtype=np.float32)
    conf = np.clip(np.nan_to_num(np.asarray(conf, dtype=np.float32)), 0.0, 1.0)
    bad = ~np.isfinite(joints).all(axis=-1)
    if bad.any():
        joints = np.where(bad[..., None], np.float32(0), joints)
        conf = np.where(bad, np.float32(0), conf)
    return joints, conf


def make_frame(body_ids: np.ndarray, joints: np.ndarray, conf: np.ndarray) -> Frame:
    """A frame stamped now, with non-finite joints marked missing."""
    joints, conf = sanitize(joints, conf)
    return Frame(t=time.monotonic(), body_ids=np.asarray(body_ids, dtype=np.int32),
                 joints=joints, confidence=conf)


class UdpListener:
    """A bound UDP socket read with a timeout (Xsens, Rokoko and OSC senders push datagrams).

    ``allow``: sender addresses to accept (None: any); a datagram from another sender is dropped
    and counted in ``refused``, so a stranger on the network cannot inject frames."""

    MAX_DATAGRAM = 65536

    def __init__(self, scheme: str, host: str, port: int, allow: frozenset[str] | None = None) -> None:
        # No SO_REUSEADDR: on UDP it would let a second capture share the port silently.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.allow, self.refused = allow, 0
        try:
            self.sock.bind((host, port))
        except OSError as err:
            self.sock.close()
            raise SourceError(f"{scheme}: cannot listen on UDP {host or '0.0.0.0'}:{port}: "
                              f"{err.strerror or err}; is another capture using that port?") from None

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def receive(self, timeout: float) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            data, (sender, _) = self.sock.recvfrom(self.MAX_DATAGRAM)
        except socket.timeout:
            return None
        if self.allow is not None and sender not in self.allow:
            self.refused += 1
            if self.refused == 1:
                log.warning("dropping datagrams from %s: not in ?allow= (counted as refused_sender)", sender)
            return None
        return data

    def close(self) -> None:
        self.sock.close()


def allowed_senders(src: Source) -> frozenset[str] | None:
    """``?allow=IP,IP`` as a set of IPv4 addresses (None: the option is absent)."""
    text = src.option("allow", None)
    if text is None:
        return None
    try:
        return frozenset(socket.inet_ntoa(socket.inet_aton(ip.strip())) for ip in text.split(",") if ip.strip())
    except OSError:
        raise SourceError(f"{src.scheme}: allow={text!r}: expected IPv4 addresses, comma-separated") from None


class UdpSource(LiveSource):
    """A live source fed by datagrams that a sender pushes to a local port (``:PORT``).

    Listens on 127.0.0.1 unless asked: ``?bind=0.0.0.0`` (or a host in the target) opens it to the
    network; ``?allow=IP,IP`` accepts datagrams from those senders only."""

    default_port: ClassVar[int]
    UDP_OPTIONS: ClassVar[str] = "listens on 127.0.0.1 unless bind=0.0.0.0; allow=IP,IP (senders)"
    _udp: UdpListener | None = None

    def setup(self) -> None:
        host, port = host_port(self, self.default_port)
        self._udp = UdpListener(self.scheme, self.option("bind", host or "127.0.0.1"), port, allowed_senders(self))

    @property
    def port(self) -> int:
        return self._udp.port

    def describe(self) -> str:
        return f"{self.scheme} UDP :{self.port}"

    def receive(self, timeout: float) -> bytes | None:
        packet = self._udp.receive(timeout)
        if self._udp.refused:
            self.counters["refused_sender"] = self._udp.refused
        return packet

    def close(self) -> None:
        super().close()
        if self._udp is not None:
            self._udp.close()
            self._udp = None


def host_port(src: Source, default_port: int, default_host: str = "") -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT``, ``HOST`` or empty -> (host, port), with a clear error."""
    host, sep, port = src.target.rpartition(":")
    if not sep:
        host, port = src.target, ""
    try:
        number = int(port) if port else default_port
    except ValueError:
        raise SourceError(f"{src.scheme}: {src.target!r}: port {port!r} is not a number; "
                          f"e.g. {src.example}") from None
    if not 0 <= number < 65536:
        raise SourceError(f"{src.scheme}: port {number} is out of range")
    return host or default_host, number
