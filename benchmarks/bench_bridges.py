"""Bridge benchmark: the latency each bridge adds, emotion event published on the bus -> received
by a ROS 2 DDS reader (``bodytalk ros2``), by a Foxglove WebSocket client (``bodytalk foxglove``)
and by a browser (``bodytalk dashboard``), at 4 bodies.

Not part of the test run. This process publishes what capture and the server would for 4 bodies:
25-joint frames at 30 Hz and one emotion event per body every 0.5 s, each stamped (``ts``, wall
clock) as it is sent. The bridge runs as its own process (the CLI, unchanged), the receiver as
another: a cyclonedds reader of ``/humans/bodies/<id>/expression`` (latency = receive clock -
``header.stamp``, which the bridge copies from ``ts``), a Foxglove protocol client subscribed to
the bodies' emotion channels (receive clock - the JSON's ``stamp``), or headless chromium
(Playwright) with a WebSocket to the dashboard (latency = ``Date.now()`` - the update's ``ts``).
One machine, one clock. Discovery is loopback-only (as in the tests).

Examples:
    python benchmarks/bench_bridges.py                       # 30 s per bridge, Markdown table
    python benchmarks/bench_bridges.py --write BENCHMARKS.md
"""
from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bodytalk.stream import schema
from bodytalk.stream.transport import Publisher

sys.path.insert(0, str(Path(__file__).parent))
import report  # noqa: E402

BODIES = 4
LOOPBACK_DDS = ('<CycloneDDS><Domain Id="any"><General><Interfaces><NetworkInterface name="lo"/></Interfaces>'
                '<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>'
                '<Peers><Peer address="127.0.0.1"/></Peers></Discovery></Domain></CycloneDDS>')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def feed(addr: str, seconds: float, stop: threading.Event) -> None:
    """4 bodies: frames at 30 Hz, an event per body every 0.5 s (staggered, as the server's are)."""
    rng = np.random.default_rng(0)
    with Publisher(addr) as pub:
        start, n = time.monotonic(), 0
        while not stop.is_set() and time.monotonic() - start < seconds:
            n += 1
            pub.send(schema.SkeletonFrame(sensor="bench", seq=n, t_capture=n / 30, layout="kinect_v2",
                                          body_ids=np.arange(1, BODIES + 1, dtype=np.int32),
                                          joints=rng.normal(size=(BODIES, 25, 3)).astype(np.float32),
                                          confidence=np.ones((BODIES, 25), np.float32)))
            if n % 4 == 0:  # 7.5 events/s in all: each body every ~0.53 s
                body = str(n // 4 % BODIES + 1)
                pub.send(schema.EmotionEvent(sensor="bench", body=body, window_seq=n, t_start=0.0, t_end=2.0,
                                             status="ok", label="sad", stable_label="sad",
                                             probs={"sad": 0.7, "neutral": 0.3}, explanation="Head lowered.",
                                             latency_ms={"total": 30.0}))
            time.sleep(max(0.0, start + n / 30 - time.monotonic()))


@contextlib.contextmanager
def bridge(verb: str, extra: list[str], seconds: float, env: dict | None = None):
    """``bodytalk VERB --sub ADDR EXTRA...`` running; yields the function that starts the feed."""
    addr = f"tcp://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "bodytalk.cli", verb, "--sub", addr, *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(addr, seconds, stop))
    try:
        yield feeder.start
    finally:
        stop.set()
        if feeder.is_alive():
            feeder.join()
        proc.terminate()
        proc.wait(10)


def dds_reader(domain: int, seconds: float, out: mp.Queue) -> None:
    os.environ["CYCLONEDDS_URI"] = LOOPBACK_DDS
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    from bodytalk.bridges.ros2 import dds
    dp, ros_type = DomainParticipant(domain), "hri_msgs/msg/Expression"
    q = dds.qos(ros_type)
    readers = [DataReader(dp, Topic(dp, f"rt/humans/bodies/bench_{b}/expression", dds.idl_type(ros_type), qos=q), qos=q)
               for b in range(1, BODIES + 1)]
    out.put("ready")
    lat, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        for r in readers:
            for s in r.take(N=20):
                if type(s).__name__ != "InvalidSample":
                    now = time.time()
                    lat.append(now - (s.header.stamp.sec + s.header.stamp.nanosec / 1e9))
        time.sleep(0.0005)
    out.put(lat)


def bench_ros2(seconds: float, warmup: float) -> list[float]:
    domain = random.randrange(100, 232)
    q: mp.Queue = mp.get_context("spawn").Queue()
    reader = mp.get_context("spawn").Process(target=dds_reader, args=(domain, seconds + warmup, q))
    env = {**os.environ, "CYCLONEDDS_URI": LOOPBACK_DDS}
    with bridge("ros2", ["--domain", str(domain)], seconds + warmup + 2, env) as start_feed:
        reader.start()
        q.get(timeout=60)
        start_feed()
        lat = q.get(timeout=seconds + warmup + 60)
    reader.join(10)
    return lat[int(len(lat) * warmup / (seconds + warmup)):]  # drop the warm-up (discovery, first writers)


def foxglove_client(port: int, seconds: float, warmup: float, out: mp.Queue) -> None:
    """Subscribes to every ``/bodytalk/bodies/*/emotion`` channel the server advertises."""
    import json

    from websockets.sync.client import connect

    lat, t0, next_id = [], time.monotonic(), 1
    with connect(f"ws://127.0.0.1:{port}", subprotocols=["foxglove.sdk.v1", "foxglove.websocket.v1"]) as ws:
        while time.monotonic() - t0 < seconds + warmup:
            try:
                msg = ws.recv(timeout=0.5)
            except TimeoutError:
                continue
            now = time.time()
            if isinstance(msg, str):
                body = json.loads(msg)
                if body.get("op") == "advertise":
                    subs = [{"id": next_id + i, "channelId": c["id"]} for i, c in enumerate(body["channels"])
                            if c["topic"].endswith("/emotion")]
                    next_id += len(body["channels"])
                    if subs:
                        ws.send(json.dumps({"op": "subscribe", "subscriptions": subs}))
            elif msg[0] == 1 and time.monotonic() - t0 > warmup:
                # message data: opcode (1 byte), subscription id (4), log time (8), then the JSON
                lat.append(now - json.loads(msg[13:])["stamp"])
    out.put(lat)


def bench_foxglove(seconds: float, warmup: float) -> list[float]:
    port = free_port()
    q: mp.Queue = mp.get_context("spawn").Queue()
    client = mp.get_context("spawn").Process(target=foxglove_client, args=(port, seconds, warmup, q))
    with bridge("foxglove", ["--port", str(port)], seconds + warmup + 30) as start_feed:
        time.sleep(2.0)  # the server binds
        client.start()
        start_feed()
        lat = q.get(timeout=seconds + warmup + 60)
    client.join(10)
    return lat


def bench_browser(seconds: float, warmup: float) -> list[float]:
    from playwright.sync_api import sync_playwright

    port = free_port()
    with bridge("dashboard", ["--port", str(port)], seconds + warmup + 30) as start_feed, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        page = browser.new_page(bypass_csp=True)
        for _ in range(100):
            try:
                page.goto(f"http://127.0.0.1:{port}/", timeout=2000)
                break
            except Exception:
                time.sleep(0.2)
        start_feed()
        lat = page.evaluate("""([seconds, warmup]) => new Promise((done) => {
            const lat = [], ws = new WebSocket("ws://" + location.host + "/ws"), t0 = Date.now();
            ws.onmessage = (m) => { const u = JSON.parse(m.data);
                if (u.t === "emotion" && Date.now() - t0 > warmup * 1000) lat.push(Date.now() / 1000 - u.ts); };
            setTimeout(() => { ws.close(); done(lat); }, (seconds + warmup) * 1000);
        })""", [seconds, warmup])
        browser.close()
    return lat


def row(name: str, lat: list[float]) -> str:
    ms = np.asarray(lat) * 1000
    return (f"| {name} | {len(ms)} | {np.percentile(ms, 50):.1f} ms | {np.percentile(ms, 95):.1f} ms | "
            f"{ms.max():.1f} ms |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0, help="measured seconds per bridge")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds left out at the start")
    p.add_argument("--write", type=Path, default=None, help="replace the bridges section of this file")
    args = p.parse_args(argv)
    machine = report.machine()
    rows = [row("bus → `bodytalk ros2` → DDS reader (hri_msgs/Expression)", bench_ros2(args.seconds, args.warmup)),
            row("bus → `bodytalk foxglove` → WebSocket client (emotion JSON channel)",
                bench_foxglove(args.seconds, args.warmup)),
            row("bus → `bodytalk dashboard` → browser (WebSocket in chromium)", bench_browser(args.seconds, args.warmup))]
    table = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {machine}.",
        f"Command: `python benchmarks/bench_bridges.py --seconds {args.seconds:g} --warmup {args.warmup:g}`. "
        f"{BODIES} bodies: 25-joint frames at 30 Hz and 7.5 emotion events/s on the bus.", "",
        "| path (emotion event published → received) | events | p50 | p95 | max |", "|---|---|---|---|---|", *rows])
    return report.publish(table, args.write, "bench_bridges")


if __name__ == "__main__":
    raise SystemExit(main())
