"""Who may talk to a bodytalk socket: address checks and CurveZMQ keys (used by ``transport``).

Threat model (README "Security"): without keys, anyone who can reach a port can read it and feed
it (a fake window, a fake work item that picks the label and the explanation's numbers). So
without keys a socket binds only loopback; a LAN address needs a keys folder (or ``--insecure``
on a network you trust). With keys, every tcp/ipc socket runs CURVE: traffic is encrypted, a
binding socket proves it holds ``server.key_secret`` and accepts only the client public keys in
``DIR/authorized/`` (checked by ZeroMQ's ZAP handler, ``zmq.auth``); refusals are counted and go
out on every ``status.*`` heartbeat as ``counters.auth_refused``.

Keys folder (``bodytalk keys init DIR``, certificate files of ``zmq.auth.create_certificates``)::

    DIR/server.key  server.key_secret   the binding side (capture, serve, record --bind, ...)
    DIR/client.key  client.key_secret   the connecting side (serve's SUB, worker, tail, robots)
    DIR/authorized/*.key                client public keys the binding side accepts

A host that only connects needs ``server.key`` and its ``client.key_secret``; one that only binds
needs ``server.key_secret`` and ``authorized/``.
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from bodytalk.addresses import is_loopback_host

log = logging.getLogger("bodytalk.stream")

KEYS_ENV = "BODYTALK_KEYS"
SCHEMES = ("tcp", "ipc", "inproc")
_HOSTNAME = re.compile(r"^(\*|[A-Za-z0-9_]([A-Za-z0-9_\-.]{0,251}[A-Za-z0-9_])?)$")
MAKE_KEYS = f"make keys with `bodytalk keys init DIR` and pass --keys DIR (or set {KEYS_ENV}=DIR)"


class TransportError(RuntimeError):
    """A socket could not be made as asked (the message is one line, for the user)."""


class AddressInUse(TransportError):
    """Binding failed because another process holds the address."""


class BadAddress(TransportError, ValueError):
    """Not a ZeroMQ address bodytalk accepts."""


class KeysError(TransportError):
    """The keys folder lacks what this socket needs."""


def check_address(addr: str) -> str:
    """``addr`` stripped, or BadAddress: scheme tcp/ipc/inproc; tcp needs host:port with a port in
    1..65535 or ``*`` (ZeroMQ would bind another port for 99999) and a well-formed host."""
    addr = addr.strip()
    scheme, sep, rest = addr.partition("://")
    if not sep or scheme not in SCHEMES or not rest:
        raise BadAddress(f"cannot use address {addr!r}: expected tcp://HOST:PORT, ipc://PATH or inproc://NAME")
    if scheme != "tcp":
        return addr
    host, colon, port = rest.rpartition(":")
    if not colon or not host:
        raise BadAddress(f"cannot use address {addr!r}: expected tcp://HOST:PORT")
    if port != "*" and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise BadAddress(f"cannot use address {addr!r}: the port must be 1-65535 or *, not {port!r}")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ";" in bare:  # tcp://src;dst names the source interface of a connect; check the destination
        bare = bare.rsplit(";", 1)[1]
    try:
        ipaddress.ip_address(bare)
        return addr
    except ValueError:
        pass
    if host.startswith("[") or re.fullmatch(r"[0-9.]+", bare) or not _HOSTNAME.match(bare):
        raise BadAddress(f"cannot use address {addr!r}: {bare!r} is not an IP address, host or interface name")
    return addr


def check_addresses(*addrs: str | None) -> None:
    """Every address (comma lists too; None skipped), for configs that check before slow work."""
    for addr in addrs:
        for one in (addr or "").split(",") if addr else ():
            check_address(one)


def is_local(addr: str) -> bool:
    """Reachable from this host only: inproc, ipc, or tcp on a loopback address."""
    url = urlsplit(addr)
    return url.scheme in ("ipc", "inproc") or (url.scheme == "tcp" and is_loopback_host(url.hostname))


class Keys:
    """A keys folder; each file is read when a socket first needs it."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise KeysError(f"keys folder {self.folder} does not exist: {MAKE_KEYS}")

    def _load(self, name: str, secret: bool) -> tuple[bytes, bytes | None]:
        path = self.folder / (name + (".key_secret" if secret else ".key"))
        try:
            public, private = zmq.auth.load_certificate(path)
        except (OSError, ValueError) as err:
            raise KeysError(f"cannot read {path} ({err}): copy it from the folder `bodytalk keys init` made") \
                from None
        if secret and private is None:
            raise KeysError(f"{path} holds no secret key")
        return public, private

    def server(self) -> tuple[bytes, bytes]:
        return self._load("server", True)  # type: ignore[return-value]

    def server_public(self) -> bytes:
        return self._load("server", False)[0]

    def client(self) -> tuple[bytes, bytes]:
        return self._load("client", True)  # type: ignore[return-value]

    @property
    def authorized(self) -> Path:
        return self.folder / "authorized"


@dataclass(frozen=True)
class Policy:
    keys: Keys | None = None
    insecure: bool = False    # allow binding a non-loopback address without keys


_policy: Policy | None = None


def configure(keys: str | os.PathLike | None = None, insecure: bool = False) -> Policy:
    """Set the policy for the sockets this process makes from now on (``keys`` None: $BODYTALK_KEYS)."""
    global _policy
    folder = keys if keys is not None else os.environ.get(KEYS_ENV) or None
    _policy = Policy(Keys(folder) if folder else None, insecure)
    return _policy


def policy() -> Policy:
    return _policy if _policy is not None else configure()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--keys DIR`` and ``--insecure`` for every process with sockets."""
    g = parser.add_argument_group("security")
    g.add_argument("--keys", default=None, metavar="DIR",
                   help=f"CurveZMQ keys folder from `bodytalk keys init` (default: ${KEYS_ENV}); every "
                        "socket then encrypts and accepts only authorised peers")
    g.add_argument("--insecure", action="store_true",
                   help="allow binding a non-loopback address without keys (a network you trust)")


def configure_from(args: argparse.Namespace) -> Policy:
    return configure(args.keys, args.insecure)


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """A process's command line, with its ``--keys`` / ``--insecure`` policy applied."""
    args = parser.parse_args(argv)
    configure_from(args)
    return args


def secure(sock: zmq.Socket, endpoints: list[str], bind: bool, pol: Policy | None = None) -> None:
    """Apply ``pol`` (default: the process's policy) to a socket before it binds or connects."""
    pol = pol or policy()
    if all(e.startswith("inproc://") for e in endpoints):
        return  # inside this process: nothing to authenticate
    if pol.keys is None:
        public = [e for e in endpoints if not is_local(e)]
        if bind and public and not pol.insecure:
            raise TransportError(f"refusing to bind {public[0]} without keys: anyone on the network could "
                                 f"read or feed it; {MAKE_KEYS}, or pass --insecure on a network you trust")
        return
    if bind:
        sock.curve_publickey, sock.curve_secretkey = pol.keys.server()
        _authenticator(sock.context, pol.keys)
        sock.curve_server = True
    else:
        sock.curve_serverkey = pol.keys.server_public()
        sock.curve_publickey, sock.curve_secretkey = pol.keys.client()


class _Authorized:
    """ZAP callback of ``zmq.auth``: a client key is let in when its public key is in the
    authorized folder; refusals are counted."""

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise KeysError(f"keys folder has no {folder.name}/ of client keys: {MAKE_KEYS}")
        self.folder, self.refused = folder, 0
        self.keys = set(zmq.auth.load_certificates(folder))

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.keys:
            return True
        self.refused += 1
        if self.refused == 1:
            log.warning("refused a peer whose key is not in %s (counted as auth_refused)", self.folder)
        return False


_auth_lock = threading.Lock()
_auth: dict[int, tuple[ThreadAuthenticator, _Authorized]] = {}


def _authenticator(ctx: zmq.Context, keys: Keys) -> None:
    """One ZAP handler thread per context, (re)configured for this keys folder."""
    with _auth_lock:
        auth, provider = _auth.get(id(ctx), (None, None))
        if provider is not None and provider.folder == keys.authorized:
            return
        new = _Authorized(keys.authorized)
        if auth is None:
            auth = _start_authenticator(ctx)
        auth.configure_curve_callback(domain="*", credentials_provider=new)
        _auth[id(ctx)] = (auth, new)


def _start_authenticator(ctx: zmq.Context) -> ThreadAuthenticator:
    """A started ZAP handler. One stopped a moment ago may still hold the context's ZAP endpoint (libzmq
    releases an inproc endpoint asynchronously), so a busy endpoint is tried again for up to a second."""
    deadline = time.monotonic() + 1.0
    while True:
        auth = ThreadAuthenticator(ctx)
        try:
            auth.start()
            return auth
        except zmq.ZMQError as err:
            if getattr(auth, "zap_socket", None) is not None:
                auth.zap_socket.close(linger=0)
            if err.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def refused_peers() -> int:
    """Peers refused by this process's ZAP handlers so far."""
    return sum(p.refused for _, p in _auth.values())


def stop_authenticators() -> None:
    """Stop the ZAP handler threads (and forget their counts); sockets made later start new ones."""
    with _auth_lock:
        for auth, _ in _auth.values():
            auth.stop()
        _auth.clear()
