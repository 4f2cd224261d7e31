"""CurveZMQ on loopback: keys from `bodytalk keys`, who gets in, who is refused and counted, and
the address checks that run before any socket is made."""
from __future__ import annotations

import shutil

import pytest
import zmq.auth

from bodytalk.cli import main as cli
from bodytalk.stream import keys, schema, security
from bodytalk.stream.transport import Heartbeat, Publisher, Puller, Pusher, Subscriber, TransportError
from tests.stream import wire


@pytest.fixture(scope="module")
def keydir(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys") / "keys"
    assert keys.main(["init", str(d)]) == 0
    return d


@pytest.fixture(scope="module")
def stranger(keydir, tmp_path_factory):
    """The right server public key, but a client key nobody authorised."""
    d = tmp_path_factory.mktemp("stranger")
    shutil.copy(keydir / "server.key", d / "server.key")
    zmq.auth.create_certificates(d, "client")
    return d


def _received(pub, sub, n: int = 60) -> int:
    got = 0
    for _ in range(n):
        pub.send(wire.status())
        got += sub.recv(timeout=0.02) is not None
    return got


def test_keys_init_writes_certificates_and_never_overwrites(keydir, capsys):
    assert {p.name for p in keydir.iterdir()} >= {"server.key", "server.key_secret", "client.key",
                                                   "client.key_secret", "authorized"}
    assert (keydir / "server.key_secret").stat().st_mode & 0o077 == 0
    assert zmq.auth.load_certificate(keydir / "authorized" / "client.key")[0] == \
        zmq.auth.load_certificate(keydir / "client.key")[0]
    assert keys.main(["init", str(keydir)]) == 2
    assert "never overwritten" in capsys.readouterr().err


def test_authorised_client_receives_others_get_nothing_and_are_counted(keydir, stranger):
    security.configure(keydir)
    with Publisher("tcp://127.0.0.1:*") as pub, Subscriber(pub.addr) as good:
        wire.connect(pub, good, wire.status())
        security.configure(stranger)
        wrong = Subscriber(pub.addr)
        security.configure(None)
        none = Subscriber(pub.addr)
        before = security.refused_peers()
        try:
            assert _received(pub, wrong) == 0 and _received(pub, none, 20) == 0
            assert _received(pub, good, 5) == 5
        finally:
            wrong.close()
            none.close()
        assert security.refused_peers() > before
        # ... and the count goes out on the status topic
        security.configure(keydir)
        while good.recv(timeout=0.1) is not None:
            pass
        Heartbeat(pub, "server").tick(force=True)
        msg, _ = good.recv(timeout=1.0)
        assert msg.component == "server" and msg.counters["auth_refused"] >= 1


def test_the_work_port_ignores_unauthenticated_workers(keydir, stranger):
    security.configure(keydir)
    with Puller("tcp://127.0.0.1:*") as pull:
        security.configure(stranger)
        with Pusher(pull.addr, block=False) as intruder:
            for _ in range(20):
                intruder.send(wire.prompt_work())
            assert pull.recv(timeout=0.5) is None
        security.configure(None)
        with Pusher(pull.addr, block=False) as plain:
            plain.send(wire.prompt_work())
            assert pull.recv(timeout=0.3) is None
        security.configure(keydir)
        with Pusher(pull.addr) as worker:
            worker.send(wire.prompt_work())
            got = pull.recv(timeout=2.0)
            assert got is not None and isinstance(got[0], schema.PromptWork)


def test_a_public_bind_without_keys_is_refused_unless_insecure(keydir):
    with pytest.raises(TransportError, match="refusing to bind tcp://0.0.0.0:.* without keys.*keys init"):
        Publisher("tcp://0.0.0.0:*")
    security.configure(None, insecure=True)
    Publisher("tcp://0.0.0.0:*").close()
    security.configure(keydir)
    Publisher("tcp://0.0.0.0:*").close()


@pytest.mark.parametrize("addr, why", [
    ("garbage", "expected tcp://HOST:PORT"),
    ("tcp://256.1.1.1:5555", "not an IP address"),
    ("tcp://127.0.0.1:99999", "port must be 1-65535"),
    ("tcp://127.0.0.1", "expected tcp://HOST:PORT"),
    ("udp://127.0.0.1:5", "expected tcp://HOST:PORT"),
])
def test_malformed_addresses_give_one_line(addr, why, capsys):
    with pytest.raises(security.BadAddress, match=why):
        Publisher(addr)
    assert cli(["capture", "--source", "synthetic:", "--pub", addr, "--duration", "0.1"]) == 2
    assert cli(["tail", "--sub", addr, "--count", "1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_good_addresses_pass():
    for addr in ("tcp://127.0.0.1:*", "tcp://localhost:5555", "tcp://*:5555", "tcp://[::1]:5555",
                 "tcp://eth0:5555", "ipc:///tmp/x", "inproc://a", "tcp://robot-3.lab:5556"):
        assert security.check_address(addr) == addr


def test_only_loopback_addresses_count_as_local():
    assert security.is_local("tcp://127.0.0.1:5557") and security.is_local("tcp://localhost:5557")
    assert security.is_local("ipc:///tmp/bodytalk-work")
    assert not security.is_local("tcp://0.0.0.0:5557") and not security.is_local("tcp://*:5557")
    assert not security.is_local("tcp://192.168.1.20:5557")


def test_missing_keys_folder_is_one_line(tmp_path):
    with pytest.raises(security.KeysError, match="does not exist.*keys init"):
        security.configure(tmp_path / "nope")


def test_the_client_library_takes_keys(keydir, stranger):
    import bodytalk
    security.configure(keydir)
    with Publisher("tcp://127.0.0.1:*") as pub:
        security.configure(None)   # the robot's process has no policy of its own: keys= decides
        ev = wire.emotion()
        for folder, expect in ((keydir, True), (stranger, False)):
            with bodytalk.subscribe(pub.addr, keys=str(folder)) as sub:
                got = None
                for _ in range(30):
                    pub.send(ev)
                    if (got := sub.poll(0.03)) is not None:
                        break
                assert (got is not None) == expect


def test_serve_checks_its_addresses_before_loading_a_model(caplog):
    from bodytalk.model.serving import server
    assert server.main(["--pub", "tcp://127.0.0.1:99999", "--model", "/nonexistent-checkpoint"]) == 2
    assert "port must be 1-65535" in caplog.text and "nonexistent" not in caplog.text


def test_a_zap_endpoint_still_held_by_a_stopped_handler_is_waited_for(keydir):
    # libzmq frees an inproc endpoint asynchronously after its socket closes: a ZAP handler started right
    # after another stopped can find the endpoint still bound. It waits (briefly) instead of failing.
    import threading

    ctx = zmq.Context()
    holder = ctx.socket(zmq.REP)
    holder.bind("inproc://zeromq.zap.01")
    threading.Timer(0.2, holder.close).start()
    try:
        security._authenticator(ctx, security.Keys(keydir))
        assert security.refused_peers() == 0
    finally:
        security.stop_authenticators()
        ctx.term()


def test_a_zap_endpoint_that_stays_taken_is_an_error(keydir):
    ctx = zmq.Context()
    holder = ctx.socket(zmq.REP)
    holder.bind("inproc://zeromq.zap.01")
    try:
        with pytest.raises(zmq.ZMQError):
            security._authenticator(ctx, security.Keys(keydir))
    finally:
        holder.close()
        ctx.term()
