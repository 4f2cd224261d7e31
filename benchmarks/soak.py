"""Soak: the demo graph for a long time, with CurveZMQ on, each process killed with -9 once and restarted.

capture (synthetic bodies) -> serve (head path, no explanations) -> a subscriber in this process,
and a recorder of both buses; all on loopback with one keys folder (``$BODYTALK_KEYS``). At 1/4, 2/4
and 3/4 of the run, capture, serve and record in turn get SIGKILL and are restarted after
``--outage`` seconds (each recorder run writes its own file). Every ``--sample`` seconds: RSS and
open file descriptors of each process. Reported: RSS and fds per process (first, last, slope per
hour over the samples after the first minute), events lost outside the outages (gaps in a body's
``seq`` within one server run), how long the subscriber took to hear events again after each kill,
and whether every recording reads back.

  PYTHONPATH=. python benchmarks/soak.py --minutes 20
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

import bodytalk
from bodytalk.stream import keys as keytool
from bodytalk.stream.session_file import SessionReader

sys.path.insert(0, str(Path(__file__).parent))
from report import machine  # noqa: E402

CAPTURE, EVENTS = "tcp://127.0.0.1:5655", "tcp://127.0.0.1:5656"


class Graph:
    """The child processes, started with the shared keys folder in their environment."""

    def __init__(self, folder: Path, bodies: int) -> None:
        self.folder, self.recordings = folder, []
        self.env = {**os.environ, "BODYTALK_KEYS": str(folder / "keys"), "OMP_NUM_THREADS": "1"}
        self.commands = {
            "capture": ["capture", "--source", f"synthetic:?bodies={bodies}", "--pub", CAPTURE],
            "serve": ["serve", "--sub", CAPTURE, "--pub", EVENTS, "--path", "head", "--no-explain", "--threads", "1"],
            "record": ["record", "--sub", f"{CAPTURE},{EVENTS}", "--topic", ""],
        }
        self.procs: dict[str, subprocess.Popen] = {}
        self.started: dict[str, float] = {}   # name -> time.monotonic() of its latest start
        self.lives: dict[str, int] = {}       # name -> starts so far
        for name in self.commands:
            self.start(name)

    def start(self, name: str) -> None:
        cmd = [sys.executable, "-m", "bodytalk.cli", *self.commands[name]]
        if name == "record":
            self.recordings.append(self.folder / f"session-{len(self.recordings)}.mcap")
            cmd += ["--out", str(self.recordings[-1])]
        self.started[name], self.lives[name] = time.monotonic(), self.lives.get(name, 0) + 1
        self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL,
                                            stderr=open(self.folder / f"{name}.log", "a"))

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()

    def sample(self) -> dict[str, tuple[float, int, int, float]]:
        """name -> (RSS MB, open fds, life number, seconds since that life started)."""
        out = {}
        for name, proc in self.procs.items():
            try:
                p = psutil.Process(proc.pid)
                out[name] = (p.memory_info().rss / 1e6, p.num_fds(), self.lives[name],
                             time.monotonic() - self.started[name])
            except psutil.Error:
                pass
        return out

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


class Listener(threading.Thread):
    """A robot's subscription: counts events and the gaps in each body's seq within a server run."""

    def __init__(self, keys: Path) -> None:
        super().__init__(daemon=True)
        self.keys, self.halt = keys, threading.Event()
        self.events, self.times, self.gaps = 0, [], []   # gaps: (time, events lost)
        self.last: dict[tuple[str, str], int] = {}

    def run(self) -> None:
        with bodytalk.subscribe(EVENTS, keys=str(self.keys), silence=3.0) as sub:
            while not self.halt.is_set():
                ev = sub.poll(0.5)
                if ev is None:
                    continue
                now, key = time.monotonic(), (ev.sensor, ev.body)
                self.events += 1
                self.times.append(now)
                last = self.last.get(key)
                if last is not None and ev.seq > last + 1:
                    self.gaps.append((now, ev.seq - last - 1))
                self.last[key] = ev.seq   # a restarted server starts again at 0: not a gap


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    if len(points) < 3:
        return float("nan")
    t, v = np.array(points).T
    return float(np.polyfit(t / 3600.0, v, 1)[0])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--bodies", type=int, default=8)
    p.add_argument("--outage", type=float, default=3.0, help="seconds a killed process stays down")
    p.add_argument("--sample", type=float, default=10.0, help="seconds between RSS/fd samples")
    args = p.parse_args()
    header = machine()
    folder = Path(tempfile.mkdtemp(prefix="bodytalk-soak-"))
    keytool.init(folder / "keys")
    total = args.minutes * 60
    schedule = [(total * k / 4, name) for k, name in ((1, "capture"), (2, "serve"), (3, "record"))]
    graph = Graph(folder, args.bodies)
    listener = Listener(folder / "keys")
    listener.start()
    start = time.monotonic()
    samples: dict[str, list[tuple]] = {n: [] for n in graph.commands}   # (t, rss, fds, life, age)
    outages: list[tuple[str, float, float]] = []   # (process, killed at, back at)
    next_sample = start
    try:
        while (now := time.monotonic()) - start < total:
            if schedule and now - start >= schedule[0][0]:
                _, name = schedule.pop(0)
                graph.kill(name)
                killed = time.monotonic()
                time.sleep(args.outage)
                graph.start(name)
                outages.append((name, killed - start, time.monotonic() - start))
            if now >= next_sample:
                for name, got in graph.sample().items():
                    samples[name].append((now - start, *got))
                next_sample = now + args.sample
            time.sleep(0.2)
    finally:
        listener.halt.set()
        listener.join(5)
        graph.stop()
    print(f"Measured on {header}.\nCommand: `PYTHONPATH=. python benchmarks/soak.py --minutes {args.minutes:g} "
          f"--bodies {args.bodies} --outage {args.outage:g}` (CurveZMQ on every socket).\n")
    # Slopes over the longest life of each process, from 1 minute after its start (imports, model
    # loading and queues filling are the first minute's growth, not a leak).
    print("| process | RSS at 1 min / last | RSS slope | fds at 1 min / last | fd slope | over |")
    print("|---|---|---|---|---|---|")
    for name, pts in samples.items():
        lives = [[p for p in pts if p[3] == life and p[4] >= 60] for life in {p[3] for p in pts}]
        warm = max(lives, key=len)
        if len(warm) < 3:
            print(f"| {name} | too few samples | | | | |")
            continue
        print(f"| {name} | {warm[0][1]:.0f} / {warm[-1][1]:.0f} MB | "
              f"{slope_per_hour([(p[0], p[1]) for p in warm]):+.1f} MB/h | {warm[0][2]} / {warm[-1][2]} | "
              f"{slope_per_hour([(p[0], p[2]) for p in warm]):+.1f} /h | {(warm[-1][0] - warm[0][0]) / 60:.0f} min |")
    times = np.array(listener.times) - start
    print(f"\nEvents received: {listener.events:,}.")
    for name, killed, back in outages:
        after = times[times > killed]
        heard = f"{after[0] - killed:.1f} s" if len(after) else "never"
        inside = sum(n for t, n in listener.gaps if killed <= t - start <= back + 30)
        print(f"- {name} killed at {killed / 60:.1f} min, restarted {back - killed:.1f} s later; subscriber heard "
              f"events again {heard} after the kill; events lost around it: {inside}")
    windows = [(k, b + 30) for _, k, b in outages]
    outside = sum(n for t, n in listener.gaps if not any(k <= t - start <= b for k, b in windows))
    print(f"- events lost outside the outages: {outside}")
    for path in graph.recordings:
        reader = SessionReader(path)
        n = sum(1 for _ in reader.records())
        print(f"- {path.name}: {n:,} messages readable, {'truncated (killed)' if reader.truncated else 'finished'}, "
              f"{reader.lost_chunks} damaged chunks")
    print(f"\nLogs and recordings: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
