"""``bodytalk broker`` on loopback: two publishers through ZeroMQ's proxy to one subscriber."""
from __future__ import annotations

import contextlib
import dataclasses
import threading

import pytest

from bodytalk.stream import broker, schema
from bodytalk.stream.transport import Forwarder, Publisher, Subscriber
from tests.helpers import free_addr, run_bodytalk, start_bodytalk, stop
from tests.stream import wire


def _running(cfg: broker.BrokerConfig):
    forwarder = Forwarder(cfg.pub, cfg.sources, cfg.listen, cfg.hwm)
    b = broker.Broker(cfg, forwarder)
    halt = threading.Event()
    thread = threading.Thread(target=b.run, kwargs={"stop": halt}, daemon=True)
    thread.start()
    return forwarder, halt, thread


@contextlib.contextmanager
def _two_publishers(**cfg):
    """A running broker with a publisher it connects to (``bound``, as a capture) and one that
    connects to its --xsub (``connecting``); everything is stopped and closed afterwards."""
    bound = Publisher("tcp://127.0.0.1:*")
    forwarder, halt, thread = _running(broker.BrokerConfig(
        pub="tcp://127.0.0.1:*", sources=(bound.addr,), listen="tcp://127.0.0.1:*", **cfg))
    connecting = Publisher(forwarder.listen, bind=False)
    try:
        yield bound, connecting, forwarder
    finally:
        halt.set()
        thread.join(timeout=5)
        connecting.close()
        bound.close()
        forwarder.close()
    assert not thread.is_alive()


def _collect(sub: Subscriber, want: int, timeout: float = 5.0) -> list[schema.Message]:
    got = []
    while len(got) < want and (m := sub.recv(timeout=timeout)) is not None:
        got.append(m[0])
    return got


def test_two_publishers_reach_one_subscriber_through_the_broker():
    """One publisher binds (the broker connects to it, as to a capture); the other connects to the
    broker's --xsub. Both streams arrive whole and in order; the broker's heartbeat counts them."""
    with _two_publishers(status_every=0.1) as (bound, connecting, forwarder), \
            Subscriber(forwarder.pub, prefixes=["skeleton.frame.", "status.broker"]) as sub:
        a, b = (dataclasses.replace(wire.frame(), sensor=s) for s in ("kinect0", "kinect1"))
        for pub, probe in ((bound, a), (connecting, b)):   # both paths are up before counting
            wire.connect(pub, sub, probe)
        for seq in range(20):
            bound.send(dataclasses.replace(a, seq=seq))
            connecting.send(dataclasses.replace(b, seq=seq))
        frames = [m for m in _collect(sub, 60, timeout=0.5) if isinstance(m, schema.SkeletonFrame)]
        by_sensor = {s: [m.seq for m in frames if m.sensor == s] for s in ("kinect0", "kinect1")}
        assert by_sensor == {"kinect0": list(range(20)), "kinect1": list(range(20))}
        beats = [m for m in _collect(sub, 3) if isinstance(m, schema.Status)]
        assert beats and beats[-1].component == "broker" and beats[-1].state == "running"
        assert beats[-1].counters["in_frames"] >= 40 * 2   # topic + body per message, at least
        assert beats[-1].counters["out_frames"] >= 40 * 2


def test_the_broker_forwards_bytes_unchanged_and_subscriptions_upstream():
    """What a subscriber asks for is what it gets: prefixes filter through the proxy, and a
    malformed message is passed on for the subscriber to drop and count (the broker never decodes)."""
    pub = Publisher("tcp://127.0.0.1:*")
    forwarder, halt, thread = _running(broker.BrokerConfig(pub="tcp://127.0.0.1:*", sources=(pub.addr,)))
    try:
        with Subscriber(forwarder.pub, prefixes=["emotion."]) as sub:
            wire.connect(pub, sub, wire.emotion())
            pub.send(wire.frame())                                          # not subscribed to
            pub.send_frames(wire.raw(b"emotion.k.1", {"v": 1, "type": "emotion"}))  # malformed
            pub.send(wire.emotion(), ts=123.0)
            got = sub.recv(timeout=5)
            assert got is not None and got[1] == 123.0
            wire.assert_same(got[0], wire.emotion())
            assert sub.recv(timeout=0.3) is None
            assert sub.dropped == 1
    finally:
        halt.set()
        thread.join(timeout=5)
        pub.close()
        forwarder.close()


def test_broker_config_refuses_nothing_to_forward():
    with pytest.raises(ValueError, match="nothing to forward"):
        broker.BrokerConfig(pub="tcp://127.0.0.1:*")


def test_command_line_forwards_and_reports_bad_addresses():
    pub_addr, out_addr = free_addr(), free_addr()
    proc = start_bodytalk(["broker", "--from", pub_addr, "--pub", out_addr, "--duration", "20"])
    try:
        with Publisher(pub_addr) as pub, Subscriber(out_addr, prefixes=["skeleton.frame."]) as sub:
            wire.connect(pub, sub, wire.frame())   # through a broker in another process
    finally:
        out, err = stop(proc)
    assert proc.returncode == 0, err
    bad = run_bodytalk(["broker", "--from", "not-an-address"])
    assert bad.returncode == 2 and "cannot use address 'not-an-address'" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert run_bodytalk(["broker"]).returncode == 2


def test_the_broker_runs_curve_on_both_sides(tmp_path):
    """With keys, the broker's XSUB is a CURVE client of the captures it connects to and a CURVE
    server for publishers that connect to it; its XPUB is a CURVE server for subscribers."""
    from bodytalk.stream import keys, security

    keys.init(tmp_path / "keys")
    security.configure(tmp_path / "keys")
    with _two_publishers() as (bound, connecting, forwarder), \
            Subscriber(forwarder.pub, prefixes=["skeleton.frame."]) as sub:
        for pub, sensor in ((bound, "kinect0"), (connecting, "kinect1")):
            wire.connect(pub, sub, dataclasses.replace(wire.frame(), sensor=sensor))
        security.configure(None)   # a subscriber without keys hears nothing
        with Subscriber(forwarder.pub, prefixes=["skeleton.frame."]) as stranger:
            for _ in range(20):
                bound.send(wire.frame())
            assert stranger.recv(timeout=0.3) is None
