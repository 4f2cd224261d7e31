"""``bodytalk health``: exit 0 on a fresh heartbeat, 1 on a stale, refused or missing one, in bounded time."""
from __future__ import annotations

import threading
import time

import pytest

from bodytalk.stream import health, schema
from bodytalk.stream.transport import Publisher, Subscriber
from tests.helpers import free_addr, run_bodytalk


class _Beating:
    """A component's heartbeat every 0.1 s on a background thread (sender time shifted by ``lag``)."""

    def __init__(self, addr: str, component: str = "server", state: str = "running", lag: float = 0.0):
        self.pub = Publisher(addr)
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(component, state, lag), daemon=True)
        self.thread.start()

    def _run(self, component: str, state: str, lag: float) -> None:
        seq = 0
        while not self.halt.wait(0.1):
            seq += 1
            self.pub.send(schema.Status(component=component, state=state, seq=seq, rate_hz=2.0),
                          ts=time.time() - lag)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.halt.set()
        self.thread.join(timeout=5)
        self.pub.close()


def _check(addr: str, **kw) -> tuple[health.Verdict, float]:
    cfg = health.HealthConfig(sub=addr, **kw)
    t0 = time.monotonic()
    with Subscriber(addr, prefixes=["status.server"]) as sub:
        verdict = health.check(cfg, sub)
    return verdict, time.monotonic() - t0


def test_fresh_heartbeat_is_healthy():
    addr = free_addr()
    with _Beating(addr):
        verdict, took = _check(addr, max_age=3.0)
    assert verdict.healthy and verdict.code == 0, verdict.line
    assert verdict.line.startswith("server: healthy (state running")
    assert took < 3.0


@pytest.mark.parametrize("beating, expect", [
    (None, "no heartbeat (status.server) on"),                        # nothing publishes
    (dict(lag=30.0), "stale (state running, heartbeat 30"),          # a replayed / frozen clock
    (dict(state="error"), "unhealthy (state error"),                 # alive but failing
    (dict(component="server2"), "no heartbeat"),                     # a prefix twin is not it
])
def test_stale_refused_or_missing_heartbeat_is_unhealthy_within_max_age(beating, expect):
    addr = free_addr()
    if beating is None:
        verdict, took = _check(addr, max_age=0.6)
    else:
        with _Beating(addr, **beating):
            verdict, took = _check(addr, max_age=0.6)
    assert not verdict.healthy and verdict.code == 1
    assert expect in verdict.line, verdict.line
    assert took < 0.6 + 0.5   # bounded: a probe must never hang


def test_accepting_another_state():
    addr = free_addr()
    with _Beating(addr, state="disconnected"):
        verdict, _ = _check(addr, max_age=3.0, accept=("running", "disconnected"))
    assert verdict.healthy, verdict.line


def test_command_line_exit_codes():
    addr = free_addr()
    with _Beating(addr):
        ok = run_bodytalk(["health", "--sub", addr, "--component", "server", "--max-age", "5"])
    assert ok.returncode == 0 and "server: healthy" in ok.stdout, ok.stderr
    t0 = time.monotonic()
    missing = run_bodytalk(["health", "--sub", addr, "--max-age", "0.5"])
    assert missing.returncode == 1 and "no heartbeat" in missing.stderr
    assert time.monotonic() - t0 < 15   # interpreter start + 0.5 s, on a busy machine
    for bad in (["--max-age", "0"], ["--component", "a.b"], ["--sub", "nowhere"]):
        out = run_bodytalk(["health", *bad])
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
