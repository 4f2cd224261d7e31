"""The capture process: read a source at its native rate, publish frames and windows.

Publishes (PUB, binds ``--pub``):
  skeleton.frame.<sensor>          every frame, source layout, canonical space
  skeleton.window.<sensor>.<body>  sliding windows per body, unified joint set (``layout`` names
                                   the source joint set, for the model's layout embedding); a
                                   body that leaves, or a source that ends, before one window is
                                   full gives one window padded by reflection (``padded``,
                                   ``real_frames``)
  status.capture_<sensor>          heartbeat: rate, frames, windows, overruns; "ended"/"error"

Examples:
  bodytalk capture --source synthetic:?bodies=3
  bodytalk capture --source bvh:walk.bvh --loop --speed 2
  bodytalk capture --source kinect-csv:joints.csv --pub tcp://0.0.0.0:5555 --duration 30
"""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass

from bodytalk.capture import lsl_outlet
from bodytalk.capture import source as sources
from bodytalk.stream.pacing import Pacer
from bodytalk.capture.windowing import Window, WindowConfig, Windower
from bodytalk.stream import schema, security, topics
from bodytalk.stream.transport import Heartbeat, Publisher, TransportError

log = logging.getLogger("bodytalk.capture")


@dataclass(frozen=True)
class CaptureConfig:
    source: str
    pub: str = topics.DEFAULT_CAPTURE_ADDR
    window: float = 2.0
    hop: float = 0.5
    speed: float = 1.0
    loop: bool = False
    duration: float | None = None
    warmup: float = 0.3   # seconds after bind before the first message (ZeroMQ slow joiner)
    lsl: bool = False     # also publish frames as LSL streams (capture.lsl_outlet)
    stagger: bool = True  # spread the bodies' window phases over the hop (windowing.py says why)

    def __post_init__(self) -> None:
        security.check_addresses(self.pub)
        if self.speed < 0:
            raise ValueError("--speed must be >= 0 (0 = as fast as possible)")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("--duration must be > 0")
        WindowConfig(self.window, self.hop)  # validates window/hop


class Capture:
    """One source on the bus, shaped like the server and the worker: ``step`` publishes one frame (paced
    to its time) and the windows it closes, ``beat`` sends the heartbeat, ``run`` reads the source to its
    end or ``duration``, restarting a file source with ``loop``. The publisher is passed in, so tests
    drive it step by step."""

    def __init__(self, cfg: CaptureConfig, src: sources.Source, pub: Publisher) -> None:
        self.cfg, self.src, self.pub = cfg, src, pub
        self.heartbeat = Heartbeat(pub, f"capture_{src.sensor}")
        self.counts = {"frames": 0, "windows": 0, "overruns": 0, "loops": 0}
        self.offset = 0.0   # seconds added to the source's clock, so a looped file's time never goes back
        self.lsl = self.windower = self.pacer = None
        if hasattr(src, "on_status"):  # live sources report their disconnects and reconnects
            src.on_status = lambda state, message: self.heartbeat.tick(
                state, force=True, counters={**self.counts, **src.counters}, message=message)

    def open(self) -> bool:
        """Open the source (its SDK, file or socket); False, with an "error" status, when it fails."""
        try:
            self.src.open()
        except sources.SourceError as err:
            self.heartbeat.tick("error", force=True, message=str(err))
            log.error("%s", err)
            return False
        src = self.src
        self.lsl = lsl_outlet.FrameOutlet(src.sensor, src.layout, src.fps) if self.cfg.lsl else None
        self.windower = Windower(WindowConfig(self.cfg.window, self.cfg.hop, fps=src.fps, stagger=self.cfg.stagger))
        self.pacer = Pacer(0 if src.live else self.cfg.speed, period=1 / src.fps)
        return True

    def step(self, frame: sources.Frame) -> float:
        """Publish one frame and the windows it closes; returns its time on the bus clock."""
        src, t = self.src, frame.t + self.offset
        self.pacer.wait(t)
        self.pub.send(schema.SkeletonFrame(
            sensor=src.sensor, seq=self.counts["frames"], t_capture=t, layout=src.layout.id,
            body_ids=frame.body_ids, joints=frame.joints, confidence=frame.confidence))
        if self.lsl is not None:
            self.lsl.push(frame.body_ids, frame.joints, frame.confidence)
        unified = src.layout.to_unified(frame.joints, frame.confidence)
        self._send(self.windower.push(t, frame.body_ids, *unified, frame.labels))
        self.counts["frames"] += 1
        return t

    def _send(self, windows: list[Window]) -> None:
        src = self.src
        for w in windows:
            self.pub.send(schema.SkeletonWindow(
                sensor=src.sensor, body=str(w.body), seq=w.seq, t_start=w.t_start,
                t_end=w.t_end, fps=src.fps, layout=src.layout.id, joints=w.joints,
                confidence=w.confidence, interpolated=w.interpolated, labels=w.labels,
                padded=w.padded, real_frames=w.real_frames))
            self.counts["windows"] += 1

    def beat(self, rate_hz: float) -> None:
        self.counts["overruns"] = self.pacer.overruns
        self.heartbeat.tick(rate_hz=rate_hz, counters={**self.counts, **getattr(self.src, "counters", {})})

    def end(self, message: str) -> None:
        """The source ended (or ``duration``): the padded window of every body that never filled one,
        then the "ended" status."""
        self._send(self.windower.flush())
        self.counts["overruns"] = self.pacer.overruns
        self.heartbeat.tick("ended", force=True, counters=dict(self.counts), message=message)

    def restart(self, first_t: float, last_t: float) -> None:
        """Loop a file: continue the clock across the restart so timestamps never go back; the jump in
        pose must not be bridged by a window, so windows restart (after the padded window of a body
        that never filled one)."""
        self.counts["loops"] += 1
        self.offset = last_t + 1 / self.src.fps - first_t
        self._send(self.windower.flush())
        self.src.close()
        self.src.open()

    def run(self) -> int:
        """Read the opened source until it ends (or ``duration``); returns a process exit code."""
        start = rate_t = time.monotonic()
        rate_n, last_t = 0, None
        if self.cfg.duration is not None and hasattr(self.src, "stop_at"):
            self.src.stop_at = start + self.cfg.duration   # a live source ends on time even while silent
        try:
            while True:
                first_t = None
                for frame in self.src.frames():
                    first_t = frame.t if first_t is None else first_t
                    last_t = self.step(frame)
                    rate_n += 1
                    now = time.monotonic()
                    if now - rate_t >= 1.0:
                        self.beat(rate_n / (now - rate_t))
                        rate_t, rate_n = now, 0
                    if self.cfg.duration is not None and now - start >= self.cfg.duration:
                        self.end("duration reached")
                        return 0
                if self.cfg.duration is not None and time.monotonic() - start >= self.cfg.duration:
                    self.end("duration reached")
                    return 0
                if not self.cfg.loop or last_t is None:
                    break
                self.restart(first_t, last_t)
            self.end("source ended")
            log.info("source ended after %d frames, %d windows", self.counts["frames"], self.counts["windows"])
            return 0
        except sources.SourceError as err:
            self.heartbeat.tick("disconnected", force=True, counters=dict(self.counts), message=str(err))
            log.error("%s", err)
            return 1


def run(cfg: CaptureConfig, pub: Publisher | None = None) -> int:
    """Capture ``cfg.source`` onto ``pub`` (or a publisher bound on ``cfg.pub``); a process exit code."""
    src = sources.create(cfg.source)
    own_pub = pub is None
    pub = pub or Publisher(cfg.pub)
    capture = Capture(cfg, src, pub)
    try:
        # Subscribers need a moment to connect after the bind (ZeroMQ slow joiner); waiting before
        # opening the source means even an open failure's status reaches them.
        time.sleep(cfg.warmup)
        return capture.run() if capture.open() else 1
    finally:
        src.close()
        if own_pub:
            time.sleep(0.1)  # let the last status leave before the socket closes
            pub.close()


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="bodytalk capture", description=__doc__,
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, help="source URI, e.g. synthetic:, bvh:FILE (see `bodytalk sources`)")
    p.add_argument("--pub", default=topics.DEFAULT_CAPTURE_ADDR, help="address to publish on (default %(default)s)")
    p.add_argument("--window", type=float, default=2.0, help="window length in seconds (default %(default)s)")
    p.add_argument("--hop", type=float, default=0.5, help="seconds between window starts (default %(default)s)")
    p.add_argument("--speed", type=float, default=1.0, help="1 = native rate, 2 = twice as fast, 0 = as fast as possible")
    p.add_argument("--loop", action="store_true", help="restart a file source when it ends")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--stagger", action=argparse.BooleanOptionalAction, default=True,
                   help="spread the bodies' windows over the hop, so a server gets a steady stream instead "
                        "of one burst per hop (each body's first window comes up to one hop later)")
    p.add_argument("--lsl", action="store_true",
                   help="also publish frames as LSL streams bodytalk.<sensor>.<body> (LabRecorder)")
    security.add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = security.parse_args(build_parser(), argv)
    try:
        cfg = CaptureConfig(source=args.source, pub=args.pub, window=args.window, hop=args.hop,
                            speed=args.speed, loop=args.loop, duration=args.duration, lsl=args.lsl,
                            stagger=args.stagger)
        return run(cfg)
    except (ValueError, sources.SourceError, TransportError, lsl_outlet.LSLUnavailable) as err:
        log.error("%s", err)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
