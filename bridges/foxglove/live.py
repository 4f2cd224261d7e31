"""``bodytalk foxglove``: a live Foxglove server fed by the bus.

Open the Foxglove app, "Open connection" -> Foxglove WebSocket -> ``ws://127.0.0.1:8765``. A 3D
panel shows the skeletons (``/bodytalk/scene``, coloured by stable label, with the label and
explanation as text; set the display frame to ``bodytalk``); a Log panel shows
``/bodytalk/explanations``; a Plot panel plots ``/bodytalk/bodies/<id>/emotion.probs.<label>``.
Binds loopback unless ``--host`` is given: the stream shows people's movement.

Examples:
  bodytalk foxglove
  bodytalk foxglove --sub tcp://10.0.0.5:5555,tcp://10.0.0.5:5556 --host 0.0.0.0 --port 8765
"""
from __future__ import annotations

import argparse
import logging
import time

from bodytalk.bridges import bus, skeleton
from bodytalk.bridges.extras import ExtraMissing, need
from bodytalk.bridges.foxglove.scene import EMOTION_SCHEMA, EXTRA, Scene, emotion_topic
from bodytalk.stream import schema

log = logging.getLogger("bodytalk.foxglove")


class ServerSink:
    """Foxglove SDK channels (created per topic on first use) on a WebSocket server."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8765) -> None:
        self.fg = need("foxglove", EXTRA)
        self.channels_mod = need("foxglove.channels", EXTRA)
        self.server = self.fg.start_server(name="bodytalk", host=host, port=port)
        self.port = self.server.port
        self.channels: dict[str, object] = {}

    def log(self, topic: str, msg, log_time: int) -> None:
        ch = self.channels.get(topic)
        if ch is None:
            ch = self.channels[topic] = (
                self.fg.Channel(topic, schema=EMOTION_SCHEMA, message_encoding="json") if isinstance(msg, dict)
                else getattr(self.channels_mod, type(msg).__name__ + "Channel")(topic))
        ch.log(msg, log_time=log_time)

    def forget(self, topic: str) -> None:
        """Close a body's channel when it leaves (the app drops it from its topic list)."""
        ch = self.channels.pop(topic, None)
        if ch is not None:
            ch.close()

    def close(self) -> None:
        self.server.stop()


class FoxgloveBridge(bus.Bridge):
    def __init__(self, sink, intake, frame_id: str = "bodytalk", forget_after: float = bus.FORGET_AFTER) -> None:
        super().__init__(intake, forget_after)
        self.sink, self.scene = sink, Scene(frame_id)
        self.logged = 0

    def handle(self, msg: schema.Message, ts: float) -> None:
        log_time = time.time_ns()
        for topic, out in self.scene.convert(msg, ts):
            self.sink.log(topic, out, log_time)
            self.logged += 1

    def left(self, key: tuple[str, str]) -> None:
        self.scene.forget(key)
        self.sink.forget(emotion_topic(skeleton.body_id(*key)))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bodytalk foxglove", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    bus.add_bus_arguments(p)
    bus.add_server_arguments(p, 8765, "WebSocket")
    p.add_argument("--frame-id", default="bodytalk", help="frame of the skeletons (default %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop = bus.start(args)
    sink = None
    try:
        sink = ServerSink(args.host, args.port)
        print(f"Foxglove: open ws://{args.host}:{sink.port} in the Foxglove app", flush=True)
        with bus.subscribe(args) as sub:
            FoxgloveBridge(sink, sub, args.frame_id, args.forget_after).run(args.duration, stop)
    except (ExtraMissing, ValueError) as err:
        log.error("%s", err)
        return 2
    except RuntimeError as err:  # the SDK's error for a port in use
        log.error("cannot serve on %s:%d: %s", args.host, args.port, err)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        if sink is not None:
            sink.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
