"""``bodytalk demo``: capture -> emotion server -> live view, on loopback, in one command.

Starts capture (synthetic bodies by default, any --source otherwise) in a child process and the
emotion server on a thread of this one, publishing on the usual addresses so `bodytalk tail` in
another terminal sees the same bus, and shows per body the stable label, probabilities as bars, the latest
grounded explanation and the end-to-end latency. Needs no network and no data beyond the package
(the base LLM comes from `bodytalk models pull`; without it the demo runs on the encoder's fast
label head and says so).

Examples:
  bodytalk demo
  bodytalk demo --source "synthetic:?bodies=4&emotion=sad,happy,angry,fearful" --duration 30
  bodytalk demo --headless --duration 10 > events.jsonl
  bodytalk demo --source bvh:walk_sad.bvh --loop --record demo.mcap
  bodytalk demo --dashboard            # and the browser dashboard on http://127.0.0.1:8080/
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
import threading
import time

from bodytalk.capture import service
from bodytalk.model.constants import LABEL_PATH_HELP
from bodytalk.stream import schema, security, topics
from bodytalk.stream.transport import Publisher, Subscriber, TransportError

log = logging.getLogger("bodytalk.demo")
DEFAULT_SOURCE = "synthetic:?bodies=3&hold=12"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bodytalk demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default=DEFAULT_SOURCE, help="source URI (default %(default)s)")
    p.add_argument("--model", default=None, help="checkpoint folder (default: the packaged demo model)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--headless", action="store_true", help="one JSON line per emotion event instead of the view")
    p.add_argument("--record", metavar="FILE.mcap", default=None, help="record the whole session")
    p.add_argument("--speed", type=float, default=1.0, help="source speed (1 = real time)")
    p.add_argument("--loop", action="store_true", help="restart a file source when it ends")
    p.add_argument("--no-explain", action="store_true", help="labels only, no LLM explanations")
    p.add_argument("--path", choices=("auto", "llm", "head"), default="auto", help=LABEL_PATH_HELP)
    p.add_argument("--explain-every", type=float, default=8.0, help="seconds between explanations per body")
    p.add_argument("--dashboard", nargs="?", type=int, const=8080, default=None, metavar="PORT",
                   help="also serve the live browser dashboard on loopback (port default 8080; "
                        "extra dashboard)")
    p.add_argument("--capture-pub", default=topics.DEFAULT_CAPTURE_ADDR, help="capture address")
    p.add_argument("--events-pub", default=topics.DEFAULT_SERVER_ADDR, help="event address")
    security.add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    from bodytalk.model.registry import load_model
    from bodytalk.model.serving.server import ServeConfig, Server

    args = security.parse_args(build_parser(), argv)
    logging.getLogger().setLevel(logging.WARNING if not args.headless else logging.ERROR)
    try:
        capture_cfg = service.CaptureConfig(source=args.source, pub=args.capture_pub, speed=args.speed,
                                            loop=args.loop, duration=args.duration)
        model = load_model(args.model, with_llm=not args.no_explain)
        path = model.label_path(args.path)
        serve_cfg = ServeConfig(sub=args.capture_pub, pub=args.events_pub, model=args.model, path=path,
                                explain=not args.no_explain, explain_every=args.explain_every)
        if args.dashboard is not None:  # the extra is missing? say so before anything starts
            from bodytalk.bridges.extras import need
            need("websockets.asyncio.server", "dashboard")
        Publisher(args.capture_pub).close()   # taken? say so now; the capture process binds it
        events_pub = Publisher(args.events_pub)
    except (ValueError, FileNotFoundError, RuntimeError) as err:  # RuntimeError: an extra, a TransportError
        log.error("%s", err)
        return 2
    if model.llm is None and not args.no_explain:
        why = ("this checkpoint is encoder-only" if model.cfg.llm is None
               else "base LLM not found (run `bodytalk models pull`)")
        sys.stderr.write(f"bodytalk demo: {why}; labels from the encoder's fast head, no explanations\n")
    stop = threading.Event()
    windows = Subscriber(args.capture_pub, prefixes=[topics.WINDOW])
    events = Subscriber(args.events_pub, prefixes=[topics.EMOTION, topics.STATUS])
    server = Server(serve_cfg, model, events_pub, windows)
    died: list[BaseException] = []
    threads = [threading.Thread(target=_guarded, args=(server.run, stop, died), daemon=True)]
    if args.record:
        from bodytalk.stream.recorder import RecordConfig, run as record
        rec_cfg = RecordConfig(out=args.record, sub=f"{args.capture_pub},{args.events_pub}")
        threads.append(threading.Thread(target=_guarded, args=(lambda stop: record(rec_cfg, stop), stop, died),
                                        daemon=True))
    if args.dashboard is not None:
        threads.append(_dashboard(args, stop))
    # Capture in its own process: on a thread here its per-frame Python work took the GIL from the
    # server's decoding steps (explanations 1.5-2x slower, label p95 55-105 ms vs 33-41 measured).
    capture = multiprocessing.get_context("spawn").Process(
        target=_capture, args=(capture_cfg, args.keys, args.insecure), daemon=True)
    for th in threads:
        th.start()
    capture.start()
    try:
        _show(events, args, capture, stop, explains=server.can_explain)
        if died:
            log.error("the %s stopped: %s: %s", "server" if not threads[0].is_alive() else "recorder",
                      type(died[0]).__name__, died[0], exc_info=died[0])
            return 1
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        capture.terminate()
        capture.join(timeout=10)
        for th in threads:
            th.join(timeout=30)
        for sock in (windows, events, events_pub):
            sock.close()
    return 0 if capture.exitcode in (0, -15) else 1


def _dashboard(args, stop: threading.Event) -> threading.Thread:
    """The dashboard on a thread with its own event loop; its URL goes to stderr (and a browser)."""
    import asyncio
    import webbrowser

    from bodytalk.bridges.bus import PREFIXES
    from bodytalk.bridges.dashboard.server import Dashboard

    sub = Subscriber(f"{args.capture_pub},{args.events_pub}", prefixes=PREFIXES)
    dash = Dashboard(sub, port=args.dashboard)

    def serve() -> None:
        try:
            asyncio.run(dash.serve(stop))
        except TransportError as err:  # the port is taken: the demo goes on without the dashboard
            log.error("dashboard: %s", err)
        finally:
            sub.close()

    def announce() -> None:
        if dash.ready.wait(30):
            url = f"http://127.0.0.1:{dash.port}/"
            sys.stderr.write(f"bodytalk demo: dashboard at {url}\n")
            if not args.headless:
                webbrowser.open(url)
    threading.Thread(target=announce, daemon=True).start()
    return threading.Thread(target=serve, daemon=True)


def _guarded(run, stop: threading.Event, died: list) -> None:
    """A demo thread: if it dies, the demo stops and exits non-zero instead of showing nothing."""
    try:
        run(stop=stop)
    except BaseException as err:  # noqa: BLE001 -- reported by main, with its traceback
        died.append(err)
        stop.set()


def _capture(cfg, keys: str | None, insecure: bool) -> None:
    """The capture process: `bodytalk capture` with the demo's settings; Ctrl+C ends it quietly."""
    try:
        security.configure(keys, insecure)
        sys.exit(service.run(cfg))
    except KeyboardInterrupt:
        sys.exit(0)
    except TransportError as err:
        log.error("%s", err)
        sys.exit(2)


def _show(events: Subscriber, args, capture: multiprocessing.process.BaseProcess, stop: threading.Event,
          explains: bool) -> None:
    """Render events until the capture ends (plus a short drain) or the duration passes."""
    from bodytalk.view import LiveView, print_json

    view = LiveView(title=f"bodytalk demo - {args.source}",
                    no_explanation="…" if explains else "(labels only: no LLM in this run)")
    ended_at = None
    live = None
    if not args.headless:
        from rich.live import Live
        live = Live(view.render(), refresh_per_second=4, screen=False)
        live.start()
    try:
        while (ended_at is None or time.monotonic() - ended_at < 2.0) and not stop.is_set():
            got = events.recv(timeout=0.25)
            if got is not None:
                msg = got[0]
                if args.headless and isinstance(msg, schema.EmotionEvent):
                    print_json(msg)
                view.update(msg)
            if live is not None:
                live.update(view.render())
            if ended_at is None and not capture.is_alive():
                ended_at = time.monotonic()
    finally:
        if live is not None:
            live.stop()
