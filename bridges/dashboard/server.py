"""``bodytalk dashboard``: a live web page of the bus, for a screen at an installation or a laptop.

Open http://127.0.0.1:8080 in a browser: live skeletons per body (a 2D front view, coloured by
stable label), the stable label with its confidence and probabilities, an emotion timeline of the
last minutes, the explanation as it streams in word by word, micro-gestures, and every
component's health (status heartbeats: rate, drops, queue). The page and its script are served
from the package; it needs no network. One port serves the page (HTTP) and the stream
(WebSocket ``/ws``). Binds loopback unless ``--host`` is given: the page shows people's movement.

Examples:
  bodytalk dashboard
  bodytalk dashboard --sub tcp://10.0.0.5:5555,tcp://10.0.0.5:5556 --host 0.0.0.0 --port 8080
"""
from __future__ import annotations

import argparse
import asyncio
import http
import json
import logging
import threading
from importlib import resources

from bodytalk.bridges import bus
from bodytalk.bridges.dashboard.hub import DashboardBridge, Hub
from bodytalk.bridges.extras import ExtraMissing, need
from bodytalk.stream.transport import AddressInUse

log = logging.getLogger("bodytalk.dashboard")
EXTRA = "dashboard"
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
STREAM_PATH = "/ws"


def _static(name: str) -> bytes:
    return resources.files("bodytalk.bridges.dashboard").joinpath("static", name).read_bytes()


class Dashboard:
    """The HTTP + WebSocket server and the bus thread feeding it. ``serve`` runs until ``stop``."""

    def __init__(self, intake, host: str = "127.0.0.1", port: int = 8080,
                 forget_after: float = bus.FORGET_AFTER) -> None:
        self.ws = need("websockets.asyncio.server", EXTRA)
        self.http11 = need("websockets.http11", EXTRA)
        self.datastructures = need("websockets.datastructures", EXTRA)
        self.closed = need("websockets.exceptions", EXTRA).ConnectionClosed
        self.intake, self.host, self.port, self.forget_after = intake, host, port, forget_after
        self.pages = {path: (_static(name), kind) for path, (name, kind) in STATIC.items()}
        self.ready = threading.Event()  # set once the port is bound (``port`` is then the real one)
        self.hub: Hub | None = None

    def _http(self, connection, request):
        path = request.path.split("?", 1)[0]
        if path == STREAM_PATH:
            return None  # the WebSocket handshake goes on
        body, kind = self.pages.get(path, (b"not found\n", "text/plain; charset=utf-8"))
        status = http.HTTPStatus.OK if path in self.pages else http.HTTPStatus.NOT_FOUND
        headers = self.datastructures.Headers([("Content-Type", kind), ("Content-Length", str(len(body))),
                                               ("Cache-Control", "no-store"),
                                               ("Content-Security-Policy", "default-src 'self'; connect-src 'self'")])
        return self.http11.Response(status.value, status.phrase, headers, body)

    async def _client(self, connection) -> None:
        box = self.hub.connect()
        closed = asyncio.ensure_future(connection.wait_closed())  # noticed even while idle
        try:
            while True:
                update = asyncio.ensure_future(box.get())
                await asyncio.wait({update, closed}, return_when=asyncio.FIRST_COMPLETED)
                if closed.done():
                    update.cancel()
                    return
                await connection.send(json.dumps(update.result(), separators=(",", ":")))
        except self.closed:
            pass  # the browser went away mid-send
        finally:
            closed.cancel()
            self.hub.disconnect(box)

    async def serve(self, stop: threading.Event, duration: float | None = None) -> None:
        self.hub = Hub(asyncio.get_running_loop())
        bridge = DashboardBridge(self.hub, self.intake, self.forget_after)
        try:
            server = await self.ws.serve(self._client, self.host, self.port, process_request=self._http,
                                         compression=None, max_size=4096)  # browsers send nothing
        except OSError as err:
            raise AddressInUse(f"cannot serve on {self.host}:{self.port}: {err.strerror}") from None
        self.port = server.sockets[0].getsockname()[1]
        bus_thread = threading.Thread(target=bridge.run, args=(duration, stop), name="dashboard-bus", daemon=True)
        bus_thread.start()
        self.ready.set()
        try:
            while bus_thread.is_alive():
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            server.close()
            await server.wait_closed()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bodytalk dashboard", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    bus.add_bus_arguments(p)
    bus.add_server_arguments(p, 8080, "HTTP")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop = bus.start(args)
    try:
        with bus.subscribe(args) as sub:
            dash = Dashboard(sub, args.host, args.port, args.forget_after)
            threading.Thread(target=_announce, args=(dash,), daemon=True).start()
            asyncio.run(dash.serve(stop, args.duration))
    except (ExtraMissing, AddressInUse, ValueError) as err:
        log.error("%s", err)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _announce(dash: Dashboard) -> None:
    if dash.ready.wait(30):
        print(f"dashboard: http://{dash.host}:{dash.port}/", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
