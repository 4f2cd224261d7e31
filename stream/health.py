"""``bodytalk health``: is a component alive? Exit 0 on a fresh heartbeat, 1 when it is stale or missing.

Subscribes (SUB, connects ``--sub``) to ``status.<component>`` and waits at most ``--max-age``
seconds for one heartbeat of that exact component (every process sends one about every second)
that is recent (its sender time at most ``--max-age`` seconds old: a replayed session's old
heartbeats do not count) and in an accepted state (``running`` unless ``--accept`` adds others).
Publishes nothing. Made for container probes (a Kubernetes exec probe, a compose healthcheck), so
it always ends within ``--max-age`` seconds plus the connect time, and prints one line:

  exit 0  healthy: the heartbeat's state, age, rate, drops
  exit 1  unhealthy: no heartbeat in time, only stale ones, or a state such as "error" / "ended"
  exit 2  bad arguments or an address it cannot use

The sender time is the component's wall clock: across machines, their clocks must agree (NTP) to
well within ``--max-age``; inside one pod or container they are the same clock.

Examples:
  bodytalk health --sub tcp://127.0.0.1:5556 --component server --max-age 5
  bodytalk health --sub tcp://127.0.0.1:5555 --component capture_kinect0   # status.capture_<sensor>
  bodytalk health --sub tcp://127.0.0.1:5555 --component capture_kinect0 --accept disconnected
  bodytalk health --sub tcp://127.0.0.1:5559 --component broker
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from bodytalk.stream import schema, security, topics
from bodytalk.stream.transport import Subscriber

HEALTHY, UNHEALTHY, USAGE = 0, 1, 2


@dataclass(frozen=True)
class HealthConfig:
    sub: str = topics.DEFAULT_SERVER_ADDR
    component: str = "server"
    max_age: float = 5.0                   # seconds: the longest wait, and the oldest heartbeat accepted
    accept: tuple[str, ...] = ("running",)

    def __post_init__(self) -> None:
        topics.part(self.component)        # one topic segment, as the component named itself
        if not 0 < self.max_age <= 3600:
            raise ValueError(f"--max-age must be in (0, 3600] seconds, got {self.max_age}")


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    line: str

    @property
    def code(self) -> int:
        return HEALTHY if self.healthy else UNHEALTHY


def check(cfg: HealthConfig, sub: Subscriber, clock=time.time, wait_clock=time.monotonic) -> Verdict:
    """Wait for a fresh heartbeat of ``cfg.component`` on ``sub`` (at most ``cfg.max_age`` seconds)."""
    deadline = wait_clock() + cfg.max_age
    stale = None   # the newest heartbeat seen that was too old or in a refused state
    while (left := deadline - wait_clock()) > 0:
        got = sub.recv(timeout=left)
        if got is None:
            break
        msg, ts = got
        # The prefix status.server also matches status.server2: the component must be this one.
        if not isinstance(msg, schema.Status) or msg.component != cfg.component:
            continue
        age = clock() - ts
        facts = f"state {msg.state}, heartbeat {age:.1f} s old, {msg.rate_hz:.1f}/s, {msg.drops} dropped"
        if msg.message:
            facts += f", {msg.message!r}"
        if age > cfg.max_age:
            stale = f"{cfg.component}: stale ({facts}; older than --max-age {cfg.max_age:g} s)"
        elif msg.state not in cfg.accept:
            return Verdict(False, f"{cfg.component}: unhealthy ({facts}; accepted: {', '.join(cfg.accept)})")
        else:
            return Verdict(True, f"{cfg.component}: healthy ({facts})")
    return Verdict(False, stale or f"{cfg.component}: no heartbeat (status.{cfg.component}) on {cfg.sub} "
                                   f"within {cfg.max_age:g} s")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bodytalk health", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sub", default=topics.DEFAULT_SERVER_ADDR,
                   help="address the component publishes its status on (default %(default)s)")
    p.add_argument("--component", default="server",
                   help="component name, as in status.<component> (server, capture_<sensor>, worker_<name>, broker)")
    p.add_argument("--max-age", type=float, default=5.0,
                   help="seconds: how long to wait, and the oldest heartbeat that counts (default %(default)s)")
    p.add_argument("--accept", action="append", default=[], metavar="STATE",
                   help="a further healthy state besides 'running' (repeatable), e.g. 'disconnected' for a "
                        "capture whose sensor may come and go while the process itself is fine")
    p.add_argument("--quiet", action="store_true", help="print nothing; the exit code says it")
    security.add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = security.parse_args(build_parser(), argv)
    try:
        cfg = HealthConfig(sub=args.sub, component=args.component, max_age=args.max_age,
                           accept=("running", *args.accept))
        sub = Subscriber(cfg.sub, prefixes=[topics.status(cfg.component)])
    except ValueError as err:
        print(f"bodytalk health: {err}", file=sys.stderr)
        return USAGE
    with sub:
        try:
            verdict = check(cfg, sub)
        except KeyboardInterrupt:
            return 130
    if not args.quiet:
        print(verdict.line, file=sys.stdout if verdict.healthy else sys.stderr, flush=True)
    return verdict.code


if __name__ == "__main__":
    raise SystemExit(main())
