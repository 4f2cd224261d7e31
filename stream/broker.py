"""``bodytalk broker``: many publishers into one bus address, through ZeroMQ's own XSUB/XPUB proxy.

A robot lab with three Kinects on two PCs runs one ``bodytalk capture`` beside each sensor; the
server, recorder and dashboards then subscribe to the broker's one address instead of a list of
sensor PCs. The forwarding is libzmq's ``zmq_proxy`` (transport.Forwarder): messages pass byte
for byte, subscriptions travel upstream, and nothing here decodes or routes by hand.

Subscribes (XSUB) to the publishers in ``--from`` (they bind, as ``bodytalk capture`` does; the
broker connects and reconnects by itself) and to those that connect to ``--xsub``.
Publishes (XPUB, binds ``--pub``) everything they send, plus its own heartbeat ``status.broker``:
frames and bytes forwarded (``counters``) and the rate of frames in (``rate_hz``).

Examples:
  bodytalk broker --from tcp://10.0.0.11:5555,tcp://10.0.0.12:5555 --pub tcp://0.0.0.0:5559
  bodytalk serve --sub tcp://127.0.0.1:5559                  # every sensor's windows, one address
  bodytalk broker --xsub tcp://0.0.0.0:5558 --pub tcp://0.0.0.0:5559   # publishers connect to :5558
  bodytalk health --sub tcp://127.0.0.1:5559 --component broker        # the broker's own heartbeat
"""
from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from dataclasses import dataclass

from bodytalk.stream import security, topics
from bodytalk.stream.transport import DEFAULT_HWM, Forwarder, Heartbeat, Publisher, TransportError

log = logging.getLogger("bodytalk.broker")


@dataclass(frozen=True)
class BrokerConfig:
    pub: str = topics.DEFAULT_BROKER_ADDR
    sources: tuple[str, ...] = ()   # publishers that bind; the broker connects to each
    listen: str | None = None       # XSUB address publishers connect to
    hwm: int = DEFAULT_HWM          # messages queued per peer before the newest are dropped
    status_every: float = 1.0       # seconds between heartbeats

    def __post_init__(self) -> None:
        if not self.sources and not self.listen:
            raise ValueError("nothing to forward: give --from ADDR[,ADDR...] (publishers that bind) "
                             "and/or --xsub ADDR (for publishers that connect)")
        if self.hwm < 1 or not self.status_every > 0:
            raise ValueError("--hwm must be >= 1 and the status period > 0 seconds")


class Broker:
    """The forwarder plus a heartbeat; the proxy itself runs in libzmq on a thread of its own."""

    def __init__(self, cfg: BrokerConfig, forwarder: Forwarder) -> None:
        self.cfg, self.forwarder = cfg, forwarder
        # The heartbeat enters the proxy through its inproc door, like any publisher's status.
        self.status_pub = Publisher(forwarder.status_addr, bind=False)
        self.heartbeat = Heartbeat(self.status_pub, "broker", cfg.status_every)
        self._last: tuple[float, int] | None = None
        self.failure: str | None = None   # why the proxy ended by itself (it runs until stopped)

    def beat(self) -> bool:
        """Send ``status.broker`` with the proxy's counters; False when the proxy did not answer."""
        stats = self.forwarder.stats()
        if stats is None:
            return False
        now = time.monotonic()
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = (stats["in_frames"] - self._last[1]) / (now - self._last[0])
        self._last = (now, stats["in_frames"])
        self.heartbeat.tick(rate_hz=max(rate, 0.0), counters=stats, force=True)
        return True

    def _forward(self) -> None:
        try:
            self.forwarder.run()
        except Exception as err:   # libzmq's error, reported by run() and the exit code
            self.failure = f"{type(err).__name__}: {err}"

    def run(self, duration: float | None = None, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        proxy = threading.Thread(target=self._forward, name="broker-proxy", daemon=True)
        proxy.start()
        start = time.monotonic()
        try:
            while not stop.is_set() and proxy.is_alive():
                if duration is not None and time.monotonic() - start >= duration:
                    break
                self.beat()
                stop.wait(self.cfg.status_every)
        finally:
            self.heartbeat.tick("ended", force=True)
            time.sleep(0.05)   # let the last status pass the proxy before it stops
            self.forwarder.stop()
            proxy.join(timeout=5)
            self.status_pub.close()
        if self.failure:
            log.error("the proxy stopped: %s", self.failure)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bodytalk broker", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="sources", default="", metavar="ADDR[,ADDR...]",
                   help="publishers to connect to (each `bodytalk capture --pub` address), comma-separated")
    p.add_argument("--xsub", default=None, metavar="ADDR",
                   help="also bind this address for publishers that connect (e.g. tcp://0.0.0.0:5558)")
    p.add_argument("--pub", default=topics.DEFAULT_BROKER_ADDR,
                   help="address subscribers connect to (default %(default)s)")
    p.add_argument("--hwm", type=int, default=DEFAULT_HWM,
                   help="messages queued per peer before the newest are dropped (default %(default)s)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    security.add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = security.parse_args(build_parser(), argv)
    sources = tuple(s.strip() for s in args.sources.split(",") if s.strip())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())   # docker stop / a pod's end: a clean exit
    try:
        cfg = BrokerConfig(pub=args.pub, sources=sources, listen=args.xsub, hwm=args.hwm)
        forwarder = Forwarder(cfg.pub, cfg.sources, cfg.listen, cfg.hwm)
    except (ValueError, TransportError) as err:
        log.error("%s", err)
        return 2
    log.info("broker: %s%s -> %s", ", ".join(sources) or "", f" + publishers on {forwarder.listen}"
             if forwarder.listen else "", forwarder.pub)
    with forwarder:
        broker = Broker(cfg, forwarder)
        try:
            broker.run(args.duration, stop)
        except KeyboardInterrupt:
            pass
    return 1 if broker.failure else 0


if __name__ == "__main__":
    raise SystemExit(main())
