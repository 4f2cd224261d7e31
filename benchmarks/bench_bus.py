"""Bus benchmark: messages per second and capture -> subscriber latency, PUB -> SUB on loopback.

Not part of the test run (timings live here, never in tests). The publisher runs in this process
and the subscriber in a child process, as in a deployment; both use ``bodytalk.stream.transport``
unchanged. Every message is built fresh (validated), encoded, sent, received and decoded.

- throughput: N messages as fast as the publisher can build and send them; rate = messages
  decoded by the subscriber / (last receive - first send). Large HWMs, so nothing is dropped.
- latency: the publisher stamps ``ts`` (wall clock) as it sends (``schema.encode``'s default, as
  capture does), the subscriber takes the clock after decoding: encode + send + transfer +
  receive + decode. (Building the frame is not in it; it is in the CPU rows.)
  "paced" sends one 25-joint frame at 30 Hz (a live sensor); "bursty" sends bursts of frames
  back to back (a sensor catching up after a stall), so the end of each burst queues.
  "floor" sends one prebuilt 2-frame status message at 30 Hz: what ZeroMQ, the thread wake-ups
  and the smallest decode cost on this machine, whatever the schema does.
- micro: one frame's build + encode, and decode, in process (best of several timeit runs).

Targets (ARCHITECTURE.md budgets): >= 20,000 frames/s; paced p99 < 1 ms.

Examples:
    python benchmarks/bench_bus.py                         # full run (about 3 minutes), Markdown table
    python benchmarks/bench_bus.py --reps 3 --seconds 5    # quicker
    python benchmarks/bench_bus.py --write BENCHMARKS.md   # also replace the bus section there
"""
from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import sys
import time
import timeit
from pathlib import Path

import msgpack
import numpy as np
import zmq

from bodytalk.stream.pacing import Pacer
from bodytalk.stream import schema, security
from bodytalk.stream.transport import Publisher, Subscriber

sys.path.insert(0, str(Path(__file__).parent))
from report import machine, publish  # noqa: E402

HWM = 1_000_000      # throughput runs must not lose messages to the high-water mark
CONTROL = "bench"    # status.bench carries the run protocol: probe / end / exit


def make_frames(n_poses: int = 64, joints: int = 25, seed: int = 0):
    """A factory of fresh 1-body frames cycling through random poses (validation does real work)."""
    rng = np.random.default_rng(seed)
    poses = rng.normal(size=(n_poses, 1, joints, 3)).astype(np.float32)
    conf = rng.uniform(size=(n_poses, 1, joints)).astype(np.float32)
    ids = np.zeros(1, dtype=np.int32)

    def build(i: int, t: float) -> schema.SkeletonFrame:
        k = i % n_poses
        return schema.SkeletonFrame(sensor="bench", seq=i, t_capture=t, layout="kinect_v2",
                                    body_ids=ids, joints=poses[k], confidence=conf[k])
    return build


def make_windows(n: int = 8, t: int = 60, joints: int = 17, seed: int = 0):
    rng = np.random.default_rng(seed)
    poses = rng.normal(size=(n, t, joints, 3)).astype(np.float32)
    conf = rng.uniform(size=(n, t, joints)).astype(np.float32)
    interp = np.zeros(t, dtype=bool)

    def build(i: int, t0: float) -> schema.SkeletonWindow:
        k = i % n
        return schema.SkeletonWindow(sensor="bench", body="0", seq=i, t_start=t0, t_end=t0 + 2.0,
                                     fps=30.0, layout="unified17", joints=poses[k],
                                     confidence=conf[k], interpolated=interp)
    return build


def subscriber(addr: str, conn, keys: str | None = None) -> None:
    """Child process: record (receive - send) per data message; on 'end' report them, the last
    receive time and the CPU seconds this process (ZeroMQ's I/O thread included) spent meanwhile.
    ``keys``: a CurveZMQ keys folder (bench_curve.py), else plain."""
    security.configure(keys)
    with Subscriber(addr, hwm=HWM) as sub:
        lat: list[float] = []
        last = cpu = 0.0
        ready = False
        while True:
            got = sub.recv(timeout=1.0)
            if got is None:
                continue
            msg, ts = got
            now = time.time()
            if not (isinstance(msg, schema.Status) and msg.component == CONTROL):
                last = now
                lat.append(now - ts)
            elif msg.state == "probe" and not ready:
                conn.send("ready")
                ready, cpu = True, time.process_time()
            elif msg.state == "end" and ready:
                conn.send((np.array(lat), last, time.process_time() - cpu))
                lat, last, ready = [], 0.0, False
            elif msg.state == "exit":
                return


class Bench:
    def __init__(self, addr: str, keys: str | None = None) -> None:
        security.configure(keys)
        self.pub = Publisher(addr, hwm=HWM)
        self.conn, child = mp.Pipe()
        self.proc = mp.get_context("spawn").Process(target=subscriber, args=(self.pub.addr, child, keys))
        self.proc.start()

    def _control(self, state: str) -> None:
        self.pub.send(schema.Status(component=CONTROL, state=state))

    def run(self, send) -> tuple[np.ndarray, float, float, float, float]:
        """One run: sync, ``send()`` -> first send time, then the subscriber's report:
        (latencies, first send, last receive, publisher CPU s, subscriber CPU s)."""
        while not self.conn.poll(0.005):  # slow joiner: probe until the subscriber hears us
            self._control("probe")
        self.conn.recv()
        time.sleep(0.05)  # let the extra probes drain
        cpu = time.process_time()
        t0 = send()
        cpu = time.process_time() - cpu
        while not self.conn.poll(0.2):
            self._control("end")
        lat, last, sub_cpu = self.conn.recv()
        return lat, t0, last, cpu, sub_cpu

    def close(self) -> None:
        self._control("exit")
        self.proc.join(timeout=5)
        self.pub.close()


def throughput(bench: Bench, build, n: int) -> tuple[float, float, float, float]:
    """(messages/s delivered and decoded, fraction delivered, publisher and subscriber CPU µs
    per message)."""
    def send() -> float:
        t0 = time.time()
        for i in range(n):
            bench.pub.send(build(i, t0))
        return t0
    lat, t0, last, cpu, sub_cpu = bench.run(send)
    return len(lat) / (last - t0), len(lat) / n, cpu / n * 1e6, sub_cpu / max(1, len(lat)) * 1e6


def latency_paced(bench: Bench, build, seconds: float, hz: float = 30.0) -> np.ndarray:
    def send() -> float:
        pacer = Pacer(1.0, period=1 / hz)
        t0 = time.time()
        for i in range(int(seconds * hz)):
            pacer.wait(i / hz)
            bench.pub.send(build(i, time.time()))  # ts stamped in encode, as capture does
        return t0
    return bench.run(send)[0]


def latency_bursty(bench: Bench, build, bursts: int, size: int, gap: float) -> np.ndarray:
    def send() -> float:
        t0 = time.time()
        for b in range(bursts):
            for i in range(size):
                bench.pub.send(build(b * size + i, time.time()))
            time.sleep(gap)
        return t0
    return bench.run(send)[0]


def micro(build) -> tuple[float, float]:
    """(build + encode, decode) microseconds for one message, best of 7 timeit runs."""
    msg = build(1, 0.0)
    frames = [bytes(f) for f in schema.encode(msg)]
    n = 2000
    enc = min(timeit.repeat(lambda: schema.encode(build(1, 0.0)), number=n, repeat=7)) / n
    dec = min(timeit.repeat(lambda: schema.decode(frames), number=n, repeat=7)) / n
    return enc * 1e6, dec * 1e6


def fmt_range(values: list[float], unit: str, scale: float = 1.0, digits: int = 0) -> str:
    v = np.array(values) * scale
    return f"{np.median(v):,.{digits}f} {unit} ({v.min():,.{digits}f} – {v.max():,.{digits}f})"


def measure(args: argparse.Namespace) -> dict[str, list]:
    """Every case, ``args.reps`` times: name -> one value (or latency array) per repetition."""
    frames, windows = make_frames(), make_windows()
    tiny = schema.Status(component="floor", state="running")
    out: dict[str, list] = {k: [] for k in ("fps", "wps", "delivered", "cpu_pub", "cpu_sub",
                                             "paced", "floor", "bursty", "micro")}
    out["micro"] = [micro(frames) for _ in range(3)]
    bench = Bench(args.addr)
    try:
        for rep in range(args.reps):
            fps, delivered, pub_us, sub_us = throughput(bench, frames, args.frames)
            for key, value in (("fps", fps), ("delivered", delivered), ("cpu_pub", pub_us), ("cpu_sub", sub_us)):
                out[key].append(value)
            out["wps"].append(throughput(bench, windows, args.windows)[0])
            out["paced"].append(latency_paced(bench, frames, args.seconds))
            out["floor"].append(latency_paced(bench, lambda i, t: tiny, args.seconds))
            out["bursty"].append(latency_bursty(bench, frames, args.bursts, 30, 0.1))
            print(f"rep {rep + 1}/{args.reps}: {fps:,.0f} frames/s, {out['wps'][-1]:,.0f} windows/s, "
                  f"paced p99 {np.percentile(out['paced'][-1], 99) * 1e3:.3f} ms", file=sys.stderr)
    finally:
        bench.close()
    out["sizes"] = [sum(len(f) for f in schema.encode(m)) for m in (frames(0, 0.0), windows(0, 0.0), tiny)]
    return out


def render(r: dict[str, list], args: argparse.Namespace, command: str, header: str) -> str:
    def pct(key: str, q: float) -> str:
        return fmt_range([float(np.percentile(x, q)) for x in r[key]], "ms", 1e3, 3)

    frame_b, window_b, status_b = (f"{n:,} B" for n in r["sizes"])
    rows = [
        ("throughput: 1-body frames, 25 joints", frame_b, fmt_range(r["fps"], "frames/s"), "≥ 20,000 frames/s"),
        ("throughput: windows 60 × 17 joints", window_b, fmt_range(r["wps"], "windows/s"), ""),
        ("CPU per frame: publisher (build, encode, send)", "", fmt_range(r["cpu_pub"], "µs", 1, 1), ""),
        ("CPU per frame: subscriber (receive, decode)", "", fmt_range(r["cpu_sub"], "µs", 1, 1), ""),
        ("latency, paced 30 Hz: p50", frame_b, pct("paced", 50), ""),
        ("latency, paced 30 Hz: p99", "", pct("paced", 99), "p99 < 1 ms"),
        ("floor, prebuilt status, paced 30 Hz: p50", status_b, pct("floor", 50), ""),
        ("floor, prebuilt status, paced 30 Hz: p99", "", pct("floor", 99), ""),
        ("latency, bursts of 30 frames: p50", frame_b, pct("bursty", 50), ""),
        ("latency, bursts of 30 frames: p99", "", pct("bursty", 99), ""),
        ("in process: build + encode one frame", "", fmt_range([e for e, _ in r["micro"]], "µs", 1, 1), ""),
        ("in process: decode one frame", "", fmt_range([d for _, d in r["micro"]], "µs", 1, 1), ""),
    ]
    return "\n".join([
        f"Measured {datetime.date.today().isoformat()} on {header}; load average at the end "
        f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        f"Command: `{command}`. Median of {args.reps} repetitions (min – max in brackets); "
        f"throughput runs delivered {min(r['delivered']):.1%} or more of what was sent.",
        "",
        "| case | message size | result | target |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5, help="repetitions per case; medians are reported")
    p.add_argument("--frames", type=int, default=20000, help="frames per throughput run")
    p.add_argument("--windows", type=int, default=5000, help="windows per throughput run")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each 30 Hz paced run")
    p.add_argument("--bursts", type=int, default=40, help="bursts per bursty run (30 frames, 0.1 s apart)")
    p.add_argument("--addr", default="tcp://127.0.0.1:*", help="publisher address (default: a free port)")
    p.add_argument("--write", type=Path,
                   help="replace the bus section of this Markdown file (e.g. BENCHMARKS.md)")
    args = p.parse_args(argv)
    header = machine(f"; pyzmq {zmq.__version__} (libzmq {zmq.zmq_version()}), msgpack "
                     f"{'.'.join(map(str, msgpack.version))}")  # the load average before we add to it
    # Every measuring option spelled out (defaults too), so the figures can be reproduced as is.
    command = " ".join(["python benchmarks/bench_bus.py",
                        *(f"--{k} {v}" for k, v in vars(args).items() if k not in ("write", "addr"))])
    table = render(measure(args), args, command, header)
    return publish(table, args.write, "bench_bus")


if __name__ == "__main__":
    sys.exit(main())
