"""The capture process: read a source at its native rate, publish frames and windows.

Publishes (PUB, binds ``--pub``):
  skeleton.frame.<sensor>          every frame, source layout, canonical space
  skeleton.window.<sensor>.<body>  sliding windows per body, unified joint set (``layout`` names
                                   the source joint set, for the model's layout embedding)
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
from bodytalk.capture.windowing import WindowConfig, Windower
from bodytalk.stream import schema, topics
from bodytalk.stream.transport import AddressInUse, Heartbeat, Publisher

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
        if self.speed < 0:
            raise ValueError("--speed must be >= 0 (0 = as fast as possible)")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("--duration must be > 0")
        WindowConfig(self.window, self.hop)  # validates window/hop


def run(cfg: CaptureConfig, pub: Publisher | None = None) -> int:
    """Run until the source ends (or ``duration``); returns a process exit code."""
    src = sources.create(cfg.source)
    own_pub = pub is None
    pub = pub or Publisher(cfg.pub)
    heartbeat = Heartbeat(pub, f"capture_{src.sensor}")
    counts = {"frames": 0, "windows": 0, "overruns": 0, "loops": 0}
    if hasattr(src, "on_status"):  # live sources report their disconnects and reconnects
        src.on_status = lambda state, message: heartbeat.tick(
            state, force=True, counters={**counts, **src.counters}, message=message)
    try:
        # Subscribers need a moment to connect after the bind (ZeroMQ slow joiner); waiting before
        # opening the source means even an open failure's status reaches them.
        time.sleep(cfg.warmup)
        try:
            src.open()
        except sources.SourceError as err:
            heartbeat.tick("error", force=True, message=str(err))
            log.error("%s", err)
            return 1
        lsl = lsl_outlet.FrameOutlet(src.sensor, src.layout, src.fps) if cfg.lsl else None
        windower = Windower(WindowConfig(cfg.window, cfg.hop, fps=src.fps, stagger=cfg.stagger))
        pacer = Pacer(0 if src.live else cfg.speed, period=1 / src.fps)
        start = time.monotonic()
        offset, last_t = 0.0, None
        rate_t, rate_n = start, 0
        while True:
            first_t = None
            for frame in src.frames():
                first_t = frame.t if first_t is None else first_t
                t = frame.t + offset
                pacer.wait(t)
                _publish(pub, src, frame, t, counts["frames"])
                if lsl is not None:
                    lsl.push(frame.body_ids, frame.joints, frame.confidence)
                unified = src.layout.to_unified(frame.joints, frame.confidence)
                for w in windower.push(t, frame.body_ids, *unified, frame.labels):
                    pub.send(schema.SkeletonWindow(
                        sensor=src.sensor, body=str(w.body), seq=w.seq, t_start=w.t_start,
                        t_end=w.t_end, fps=src.fps, layout=src.layout.id, joints=w.joints,
                        confidence=w.confidence, interpolated=w.interpolated, labels=w.labels))
                    counts["windows"] += 1
                counts["frames"] += 1
                rate_n += 1
                last_t = t
                now = time.monotonic()
                if now - rate_t >= 1.0:
                    counts["overruns"] = pacer.overruns
                    heartbeat.tick(rate_hz=rate_n / (now - rate_t),
                                   counters={**counts, **getattr(src, "counters", {})})
                    rate_t, rate_n = now, 0
                if cfg.duration is not None and now - start >= cfg.duration:
                    heartbeat.tick("ended", force=True, counters=dict(counts), message="duration reached")
                    return 0
            if not cfg.loop or last_t is None:
                break
            # Continue the clock across the loop so timestamps never go back; the jump in pose
            # must not be bridged by a window, so windows restart.
            counts["loops"] += 1
            offset = last_t + 1 / src.fps - first_t
            windower = Windower(windower.cfg)
            src.close()
            src.open()
        counts["overruns"] = pacer.overruns
        heartbeat.tick("ended", force=True, counters=dict(counts), message="source ended")
        log.info("source ended after %d frames, %d windows", counts["frames"], counts["windows"])
        return 0
    except sources.SourceError as err:
        heartbeat.tick("disconnected", force=True, counters=dict(counts), message=str(err))
        log.error("%s", err)
        return 1
    finally:
        src.close()
        if own_pub:
            time.sleep(0.1)  # let the last status leave before the socket closes
            pub.close()


def _publish(pub: Publisher, src: sources.Source, frame: sources.Frame, t: float, seq: int) -> None:
    pub.send(schema.SkeletonFrame(
        sensor=src.sensor, seq=seq, t_capture=t, layout=src.layout.id, body_ids=frame.body_ids,
        joints=frame.joints, confidence=frame.confidence))


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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = CaptureConfig(source=args.source, pub=args.pub, window=args.window, hop=args.hop,
                            speed=args.speed, loop=args.loop, duration=args.duration, lsl=args.lsl,
                            stagger=args.stagger)
        return run(cfg)
    except (ValueError, sources.SourceError, AddressInUse, lsl_outlet.LSLUnavailable) as err:
        log.error("%s", err)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
