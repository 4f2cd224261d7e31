"""bodytalk.subscribe: filters, heartbeat-watched reconnection, and a light import."""
import subprocess
import sys
import threading

import pytest

import bodytalk
from bodytalk.client import Subscription
from bodytalk.stream import schema
from bodytalk.stream.transport import Publisher
from tests.helpers import REPO_ROOT, free_addr


def event(body="1", p=0.9, seq=1, sensor="kinect0", status="ok"):
    if status != "ok":
        return schema.EmotionEvent(sensor=sensor, body=body, window_seq=seq, t_start=0.0, t_end=2.0, status=status)
    rest = (1 - p) / 2
    return schema.EmotionEvent(sensor=sensor, body=body, window_seq=seq, t_start=0.0, t_end=2.0, status="ok",
                               label="happy", stable_label="happy", probs={"neutral": rest, "happy": p, "sad": rest})


def handshake(pub, sub, probe):
    """Send ``probe`` until the subscription yields it (ZeroMQ drops what is sent before a SUB is
    connected); returns what arrived."""
    for _ in range(200):
        pub.send(probe)
        got = sub.poll(0.05)
        if got is not None:
            return got
    raise AssertionError("the subscription never connected")


def test_filters_by_body_sensor_body_and_confidence():
    addr = free_addr()
    with Publisher(addr) as pub, bodytalk.subscribe(addr, bodies=["1", "kinect0.2"], min_confidence=0.5) as sub:
        handshake(pub, sub, event(seq=0))
        sent = [event("1", .9, 1), event("3", .9, 2), event("2", .6, 3), event("2", .9, 4, sensor="other"),
                event("1", .3, 5), event("1", seq=6, status="insufficient_data"), event("1", .8, 7)]
        for ev in sent:
            pub.send(ev)
        got = []
        while (ev := sub.poll(1.0)) is not None:
            if ev.window_seq:  # probes of the handshake still in flight have seq 0
                got.append((ev.sensor, ev.body, ev.window_seq))
    assert got == [("kinect0", "1", 1), ("kinect0", "2", 3), ("kinect0", "1", 7)]


def test_without_min_confidence_every_status_comes_through():
    addr = free_addr()
    with Publisher(addr) as pub, bodytalk.subscribe(addr) as sub:
        handshake(pub, sub, event(seq=0))
        pub.send(event("4", seq=1, status="insufficient_data"))
        got = [ev for ev in iter(lambda: sub.poll(1.0), None) if ev.window_seq]
    assert [(ev.body, ev.status) for ev in got] == [("4", "insufficient_data")]


def test_silence_recreates_the_socket_and_events_resume():
    addr = free_addr()
    sub = Subscription(addr, silence=0.5)
    try:
        with Publisher(addr) as pub:
            handshake(pub, sub, event(seq=0))
        # The server is gone: nothing, not even heartbeats, for longer than `silence`.
        assert sub.poll(1.5) is None
        assert sub.reconnects >= 1
        with Publisher(addr) as pub:   # the restarted server, same address
            resumed = handshake(pub, sub, event(seq=9))
        assert resumed.window_seq == 9
    finally:
        sub.close()


def test_heartbeats_keep_the_connection():
    addr = free_addr()
    stop = threading.Event()
    with Publisher(addr) as pub, Subscription(addr, silence=2.0) as sub:
        handshake(pub, sub, event(seq=0))

        def beat():
            while not stop.wait(0.1):
                pub.send(schema.Status(component="server", state="running"))

        thread = threading.Thread(target=beat)
        thread.start()
        try:
            assert [ev for ev in iter(lambda: sub.poll(3.0), None) if ev.window_seq] == []  # statuses are not events
        finally:
            stop.set()
            thread.join()
        assert sub.reconnects == 0


@pytest.mark.parametrize("kw, match", [({"min_confidence": 1.5}, "min_confidence"),
                                       ({"topic": "skeleton.window."}, "emotion topic"),
                                       ({"silence": 0}, "silence")])
def test_bad_arguments_say_what_is_wrong(kw, match):
    with pytest.raises(ValueError, match=match):
        bodytalk.subscribe(free_addr(), **kw)


def test_closed_subscription_refuses_to_poll():
    sub = bodytalk.subscribe(free_addr())
    sub.close()
    with pytest.raises(RuntimeError, match="closed"):
        sub.poll(0)


def test_import_bodytalk_subscribe_stays_light():
    code = "import sys, bodytalk; bodytalk.subscribe; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]
