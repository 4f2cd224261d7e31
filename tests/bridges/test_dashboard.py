"""``bodytalk dashboard``: the page and its script come from the package (no CDN), the WebSocket
streams a snapshot then live updates, and a slow browser's outbox drops stale frames, bounded."""
from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request

import pytest

ws_client = pytest.importorskip("websockets.sync.client", reason="the dashboard extra (websockets) is not installed")

from bodytalk.bridges.dashboard.hub import OUTBOX, Outbox  # noqa: E402
from bodytalk.bridges.dashboard.server import Dashboard  # noqa: E402
from bodytalk.stream import schema  # noqa: E402
from bodytalk.stream.transport import Publisher, Subscriber  # noqa: E402
from tests.helpers import free_addr  # noqa: E402
from tests.bridges.messages import event, frame  # noqa: E402


@pytest.fixture
def dashboard():
    """A dashboard on a free loopback port fed by an in-process bus; yields (publisher, port)."""
    addr, stop = free_addr(), threading.Event()
    with Publisher(addr) as pub, Subscriber(addr, prefixes=("",)) as sub:
        dash = Dashboard(sub, port=0)
        thread = threading.Thread(target=asyncio.run, args=(dash.serve(stop, 30),), daemon=True)
        thread.start()
        assert dash.ready.wait(10)
        yield pub, dash.port
        stop.set()
        thread.join(10)


def get(port: int, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def test_the_page_is_served_from_the_package_without_external_urls(dashboard) -> None:
    _, port = dashboard
    status, kind, page = get(port, "/")
    assert status == 200 and kind.startswith("text/html")
    assert b'src="/app.js"' in page and b'href="/style.css"' in page
    for path in ("/", "/app.js", "/style.css"):
        status, _, body = get(port, path)
        assert status == 200 and b"http://" not in body and b"https://" not in body and b"//cdn" not in body
    assert get(port, "/../../etc/passwd")[0] == 404 and get(port, "/nope")[0] == 404


def test_the_stream_sends_a_snapshot_then_live_updates(dashboard) -> None:
    pub, port = dashboard
    with ws_client.connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["t"] == "snapshot"
        seen: dict[str, dict] = {}
        end, n = time.monotonic() + 15, 0
        while len(seen) < 4 and time.monotonic() < end:
            n += 1
            pub.send(frame(n))
            pub.send(event(n))
            pub.send(schema.EmotionText(sensor="kinect0", body="3", window_seq=n, text="Arms ", index=0))
            pub.send(schema.Status(component="server", state="running", rate_hz=3.0))
            try:
                while True:
                    u = json.loads(ws.recv(timeout=0.05))
                    seen[u["t"]] = u
            except TimeoutError:
                pass
    assert seen["frame"]["bodies"][0]["id"] == "kinect0_3" and len(seen["frame"]["bodies"][0]["joints"]) == 25
    assert len(seen["frame"]["bones"]) == 24
    emo = seen["emotion"]
    assert emo["stable_label"] == "fearful" and emo["confidence"] == 0.6 and emo["mgs"] == ["fold_arms"]
    assert emo["explanation"] == "Arms drawn in." and emo["color"].startswith("#")
    assert seen["text"]["text"] == "Arms " and seen["status"]["component"] == "server"
    # A browser that connects later gets the readings and the timeline in its snapshot.
    with ws_client.connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5) as late:
        snap = json.loads(late.recv(timeout=5))
    assert snap["readings"][0]["id"] == "kinect0_3" and snap["timeline"] and snap["health"]


def test_a_slow_browser_gets_the_newest_frame_and_a_bounded_queue() -> None:
    async def scenario() -> None:
        box = Outbox()
        for n in range(100):
            box.put({"t": "frame", "sensor": "k", "seq": n})
        for n in range(OUTBOX + 50):
            box.put({"t": "emotion", "seq": n})
        got = [await box.get() for _ in range(OUTBOX + 1)]
        assert [u["seq"] for u in got if u["t"] == "frame"] == [99]
        events = [u["seq"] for u in got if u["t"] == "emotion"]
        assert events == list(range(50, OUTBOX + 50))  # the oldest went first
        assert box.dropped == 99 + 50
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(box.get(), 0.05)  # empty: waits, no busy loop
    asyncio.run(scenario())
