"""``bodytalk keys``: make the CurveZMQ keys that every bodytalk socket uses with ``--keys DIR``.

  bodytalk keys init DIR                  server keypair, one client keypair "client", and
                                          DIR/authorized/client.key (the clients servers accept)
  bodytalk keys add DIR NAME              one more client keypair NAME, authorised
                                          (DIR/NAME.key_secret: give it to that client)

Then run every process with ``--keys DIR`` (or ``export BODYTALK_KEYS=DIR``). A process that binds
(capture, serve) needs ``server.key_secret`` and ``authorized/``; one that connects (worker, tail,
a robot's ``bodytalk.subscribe(..., keys=DIR)``) needs ``server.key`` and a client's secret saved
as ``client.key_secret``. Revoke a client by deleting its file from ``authorized/`` and restarting
the servers. Secret files are created readable by their owner only.

Examples:
  bodytalk keys init ~/.bodytalk/keys && export BODYTALK_KEYS=~/.bodytalk/keys
  bodytalk capture --source kinect2: --pub tcp://0.0.0.0:5555 --keys ~/.bodytalk/keys
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path

import zmq.auth

from bodytalk.stream import topics

log = logging.getLogger("bodytalk.keys")


def _make(folder: Path, name: str) -> None:
    """``name.key`` + ``name.key_secret`` (mode 600) in ``folder``, and the public key authorised."""
    topics.part(name)  # a plain file name: no path separators
    if (folder / f"{name}.key_secret").exists():
        raise FileExistsError(f"{folder / name}.key_secret exists: keys are never overwritten")
    public, secret = zmq.auth.create_certificates(folder, name)
    os.chmod(secret, 0o600)
    if name != "server":
        shutil.copy(public, folder / "authorized" / f"{name}.key")


def init(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    (folder / "authorized").mkdir(exist_ok=True)
    _make(folder, "server")
    _make(folder, "client")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bodytalk keys", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("init", help="make a keys folder (server and client keypairs)").add_argument("dir", type=Path)
    add = sub.add_parser("add", help="add an authorised client keypair")
    add.add_argument("dir", type=Path)
    add.add_argument("name")
    args = p.parse_args(argv)
    try:
        if args.cmd == "init":
            init(args.dir)
            print(f"keys in {args.dir}: use --keys {args.dir} or export BODYTALK_KEYS={args.dir}")
        else:
            if not (args.dir / "authorized").is_dir():
                raise FileNotFoundError(f"{args.dir} is not a keys folder: run `bodytalk keys init {args.dir}`")
            _make(args.dir, args.name)
            print(f"client {args.name}: give {args.dir / args.name}.key_secret and {args.dir}/server.key to it "
                  f"(saved there as client.key_secret and server.key)")
    except (OSError, ValueError) as err:
        sys.stderr.write(f"bodytalk keys: {err}\n")
        return 2
    return 0
