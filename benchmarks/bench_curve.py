"""What CurveZMQ costs on the bus: frame throughput and paced latency, plain and with keys, in one run.

The same publisher (this process) -> subscriber (a child process) cases as bench_bus.py, over
loopback TCP, alternating plain and CURVE repetitions so both see the same machine load. Keys are
made fresh in a temporary folder (``bodytalk keys init``).

Examples:
    python benchmarks/bench_curve.py                         # Markdown table on stdout
    python benchmarks/bench_curve.py --reps 3 --seconds 5    # quicker
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from bodytalk.stream import keys as keytool

sys.path.insert(0, str(Path(__file__).parent))
from bench_bus import Bench, fmt_range, latency_paced, make_frames, throughput  # noqa: E402
from report import machine  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5, help="repetitions per mode; medians are reported")
    p.add_argument("--frames", type=int, default=20000, help="frames per throughput run")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each 30 Hz paced run")
    args = p.parse_args(argv)
    header = machine("")
    folder = Path(tempfile.mkdtemp()) / "keys"
    keytool.init(folder)
    frames = make_frames()
    results: dict[str, dict[str, list]] = {m: {"fps": [], "p50": [], "p99": []} for m in ("plain", "curve")}
    for rep in range(args.reps):
        for mode, keys in (("plain", None), ("curve", str(folder))):
            bench = Bench("tcp://127.0.0.1:*", keys)
            try:
                r = results[mode]
                r["fps"].append(throughput(bench, frames, args.frames)[0])
                lat = latency_paced(bench, frames, args.seconds)
                r["p50"].append(float(np.percentile(lat, 50)))
                r["p99"].append(float(np.percentile(lat, 99)))
            finally:
                bench.close()
            print(f"rep {rep + 1} {mode}: {r['fps'][-1]:,.0f} frames/s, p99 {r['p99'][-1] * 1e3:.3f} ms",
                  file=sys.stderr)
    command = " ".join(["python benchmarks/bench_curve.py", *(f"--{k} {v}" for k, v in vars(args).items())])
    print(f"Measured on {header}.\nCommand: `{command}`. Median of {args.reps} repetitions (min – max).\n")
    print("| case | plain | CURVE |\n|---|---|---|")
    print(f"| throughput, 1-body frames | {fmt_range(results['plain']['fps'], 'frames/s')} | "
          f"{fmt_range(results['curve']['fps'], 'frames/s')} |")
    for q in ("p50", "p99"):
        print(f"| latency, paced 30 Hz: {q} | {fmt_range(results['plain'][q], 'ms', 1e3, 3)} | "
              f"{fmt_range(results['curve'][q], 'ms', 1e3, 3)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
