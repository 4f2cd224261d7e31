"""The one ``bodytalk`` command: each verb runs one process module's ``main(argv)``.

Verbs are looked up in a table and imported on use, so ``bodytalk capture`` on a light install
never imports torch.
"""
from __future__ import annotations

import importlib
import logging
import sys

# verb -> (module, one-line help). Each module has main(argv) -> exit code and its own --help.
VERBS: dict[str, tuple[str, str]] = {
    "demo": ("bodytalk.demo", "capture -> model -> live view on loopback, all in one command"),
    "capture": ("bodytalk.capture.service", "read a skeleton source, publish frames and windows"),
    "sources": ("bodytalk.capture.catalog", "list the source URI schemes"),
    "lsl": ("bodytalk.capture.lsl_outlet", "bridge bus frames and emotion events to Lab Streaming Layer"),
    "tail": ("bodytalk.stream.tail", "print messages from the bus"),
    "ros2": ("bodytalk.bridges.ros2.bridge", "publish bodies and emotions as ROS 2 (REP-155) topics on DDS"),
    "foxglove": ("bodytalk.bridges.foxglove.live", "live Foxglove server: 3D skeletons, labels, explanations"),
    "dashboard": ("bodytalk.bridges.dashboard.server", "live browser dashboard for a screen at an installation"),
    "record": ("bodytalk.stream.recorder", "record bus messages to an MCAP session file"),
    "replay": ("bodytalk.stream.replayer", "republish a recorded session"),
    "keys": ("bodytalk.stream.keys", "make CurveZMQ keys for --keys / $BODYTALK_KEYS (keys init DIR)"),
    "sessions": ("bodytalk.stream.sessions", "inspect recorded sessions (sessions info FILE)"),
    "broker": ("bodytalk.stream.broker", "many publishers into one bus address (ZeroMQ XSUB/XPUB proxy)"),
    "health": ("bodytalk.stream.health", "exit 0 on a fresh status heartbeat of a component, 1 if stale"),
    "models": ("bodytalk.model.llm.weights", "fetch and convert the base LLM (models pull / list)"),
    "model": ("bodytalk.model.serving.inspect", "show a checkpoint (model info [CKPT])"),
    "worker": ("bodytalk.model.serving.worker", "tokenizer worker: windows in, prompt work out to `serve --work`"),
    "serve": ("bodytalk.model.serving.server", "emotion server: windows in, emotion events out"),
    "train": ("bodytalk.train.run", "train a stage from a config (train --config FILE [--out DIR] [key=value ...])"),
    "label-bias": ("bodytalk.train.label_bias", "measure a checkpoint's LLM label-word bias on its training windows"),
    "label-cues": ("bodytalk.train.label_cues", "learn a checkpoint's explanation cues from its training windows"),
    "eval": ("bodytalk.train.evaluate", "evaluate a checkpoint on labelled data"),
    "analyze": ("bodytalk.model.serving.analyze", "label and explain the windows of any source, offline"),
}


def _usage() -> str:
    width = max(map(len, VERBS))
    lines = [f"  {verb:<{width}}  {help_}" for verb, (_, help_) in VERBS.items()]
    return ("usage: bodytalk <command> [options]   (bodytalk <command> --help for more)\n\n"
            "commands:\n" + "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s",
                        datefmt="%H:%M:%S")
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(_usage())
        return 0
    if argv[0] == "--version":
        from bodytalk import __version__
        print(__version__)
        return 0
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        sys.stderr.write(f"bodytalk: unknown command {verb!r}\n\n" + _usage())
        return 2
    module = importlib.import_module(VERBS[verb][0])
    from bodytalk.stream.security import TransportError
    try:
        return int(module.main(rest) or 0)
    except TransportError as err:  # a bad address, missing keys, an insecure bind: one line, no traceback
        logging.getLogger("bodytalk").error("%s", err)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
