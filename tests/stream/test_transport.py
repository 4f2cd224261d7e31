"""The transport on real sockets: loopback TCP on free ports (``tcp://127.0.0.1:*``) and inproc
where a test needs every message queued the moment ``send`` returns."""
from __future__ import annotations

import dataclasses
import itertools
import logging
import threading

import pytest

from bodytalk.stream import schema
from bodytalk.stream.transport import AddressInUse, Heartbeat, Publisher, Puller, Pusher, Subscriber
from tests.stream import wire

_inproc = (f"inproc://test-transport-{i}" for i in itertools.count())


def drain(sub: Subscriber, timeout: float = 0.3) -> list[schema.Message]:
    out = []
    while (got := sub.recv(timeout=timeout)) is not None:
        out.append(got[0])
    return out


def test_pub_sub_on_loopback_filters_by_prefix():
    with Publisher("tcp://127.0.0.1:*") as pub, \
            Subscriber(pub.addr, prefixes=["skeleton.frame.kinect0", "status."]) as sub:
        assert pub.addr.startswith("tcp://127.0.0.1:") and not pub.addr.endswith("*")
        wire.connect(pub, sub, wire.status())
        other = dataclasses.replace(wire.frame(), sensor="azure1")
        sent = [wire.frame(seq=1), wire.window(), other, wire.emotion(), wire.frame(seq=2), wire.status()]
        for msg in sent:
            pub.send(msg, ts=100.0)
        got = drain(sub)
        assert [m.topic for m in got] == ["skeleton.frame.kinect0"] * 2 + ["status.capture"]
        assert [m.seq for m in got] == [1, 2, 3]
        assert sub.received >= 3 and sub.dropped == 0


def test_slow_subscriber_with_small_hwm_does_not_block_the_publisher():
    with Publisher("tcp://127.0.0.1:*", hwm=10) as pub, \
            Subscriber(pub.addr, prefixes=["skeleton.window."], hwm=10) as sub:
        wire.connect(pub, sub, wire.window())
        n = 3000  # 36 MB of windows: more than the HWMs and the kernel's socket buffers hold
        windows = [dataclasses.replace(wire.window(), seq=i) for i in range(n)]
        sender = threading.Thread(target=lambda: [pub.send(w) for w in windows])
        sender.start()  # the subscriber reads nothing meanwhile
        sender.join(timeout=60)
        assert not sender.is_alive(), "the publisher blocked on a slow subscriber"
        seqs = [w.seq for w in drain(sub)]
        # ZeroMQ drops at the full queue: what got through is in order, without repeats, and
        # most of the burst is lost (the subscriber never stalled the sender).
        assert 0 < len(seqs) < n // 2
        assert seqs == sorted(set(seqs))
        pub.send(dataclasses.replace(wire.window(), seq=n))  # caught up: fresh data flows again
        got = sub.recv(timeout=5)
        assert got is not None and got[0].seq == n


def test_push_pull_delivers_every_message_in_order():
    with Puller("tcp://127.0.0.1:*", hwm=10) as pull, Pusher(pull.addr, hwm=10) as push:
        done = threading.Thread(target=lambda: [push.send(dataclasses.replace(wire.window(), seq=i))
                                                for i in range(200)])
        done.start()  # blocks at the HWM until the puller reads: delivery, not loss
        seqs = [pull.recv(timeout=10)[0].seq for _ in range(200)]
        done.join(timeout=10)
        assert seqs == list(range(200))
        assert pull.recv(timeout=0.05) is None


def test_non_blocking_pusher_without_a_reader_reports_drops_beyond_its_hwm():
    with Pusher(next(_inproc), hwm=5, block=False) as push:  # nobody ever binds this address
        sent = [push.send(wire.status()) for _ in range(20)]
        assert sent[0] is True and sent[-1] is False and sum(sent) < 20


def test_binding_a_held_address_names_it():
    with Publisher("tcp://127.0.0.1:*") as pub:
        with pytest.raises(AddressInUse, match=r"address tcp://127\.0\.0\.1:\d+ is already in use") as info:
            Publisher(pub.addr)
        assert pub.addr in str(info.value) and "choose another address" in str(info.value)
        with pytest.raises(AddressInUse):
            Puller(pub.addr)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Stands in for a Publisher: keeps what would be sent."""

    def __init__(self) -> None:
        self.sent: list[schema.Status] = []

    def send(self, msg, ts=None) -> bool:
        self.sent.append(msg)
        return True


def test_heartbeat_rate_limits_and_forces_state_changes():
    clock = FakeClock()
    out = Recorder()
    beat = Heartbeat(out, "capture", period=1.0, clock=clock)
    assert beat.tick(rate_hz=30.0)               # first: always
    clock.now += 0.5
    assert not beat.tick(rate_hz=30.0)           # within the period: skipped
    clock.now += 0.6
    assert beat.tick(rate_hz=29.0)               # period over
    clock.now += 0.1
    assert beat.tick("error", message="boom")    # state change: at once
    clock.now += 0.1
    assert not beat.tick("error")
    assert beat.tick("error", force=True, counters={"drops": 2})
    assert [(s.state, s.seq) for s in out.sent] == [("running", 1), ("running", 2), ("error", 3), ("error", 4)]
    assert out.sent[1].rate_hz == 29.0 and out.sent[2].message == "boom"
    assert out.sent[3].counters == {"drops": 2} and out.sent[0].topic == "status.capture"
    with pytest.raises(ValueError, match="period must be >= 0"):
        Heartbeat(out, "capture", period=-1)


def test_latest_returns_the_newest_queued_message():
    addr = next(_inproc)
    with Publisher(addr) as pub, Subscriber(addr, prefixes=["status."]) as sub:
        wire.connect(pub, sub, wire.status())
        for seq in range(1, 6):
            pub.send(dataclasses.replace(wire.status(), seq=seq))
        got = sub.latest(timeout=1)
        assert got is not None and got[0].seq == 5
        assert sub.latest(timeout=0.05) is None


def test_a_bad_message_is_dropped_counted_logged_once_and_the_next_received(caplog):
    addr = next(_inproc)
    with Publisher(addr) as pub, Subscriber(addr) as sub:
        wire.connect(pub, sub, wire.status())
        good = wire.frames_of(wire.frame(seq=9))
        with caplog.at_level(logging.WARNING, logger="bodytalk.stream"):
            pub.send_frames(wire.with_header(good, v=2))
            pub.send_frames(wire.with_header(good, v=3))
            pub.send_frames([b"skeleton.frame.kinect0", b"\xc1"])
            pub.send_frames(good)
            got = sub.recv(timeout=1)
        assert got is not None and got[0].seq == 9
        assert sub.drops == {"version": 2, "msgpack": 1} and sub.dropped == 3
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 2  # once per reason
        assert "reason 'version'" in warnings[0] and "schema version 2 != 1" in warnings[0]
        assert addr in warnings[0] and "skeleton.frame.kinect0" in warnings[0]


def test_a_flood_of_bad_messages_does_not_hold_recv_past_its_timeout():
    addr = next(_inproc)
    with Publisher(addr) as pub, Subscriber(addr) as sub:
        wire.connect(pub, sub, wire.status())
        for _ in range(3):
            pub.send_frames([b"status.x", b"\xc1"])
        pub.send(wire.status())
        assert sub.recv(timeout=0) is None and sub.dropped == 1  # gave up at its deadline
        got = sub.recv(timeout=1)
        assert got is not None and got[0].topic == "status.capture" and sub.dropped == 3
