"""Shared by the benchmark scripts: the machine line and writing one section of BENCHMARKS.md."""
from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path

import numpy as np


def machine(extra: str = "") -> str:
    """CPU, cores, load average now (before the benchmark adds to it), OS, Python, numpy."""
    cpuinfo = Path("/proc/cpuinfo")
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if cpuinfo.exists() else platform.processor()
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores (shared), load average at start {load}; {platform.system()} "
            f"{platform.release()}; Python {platform.python_version()}, numpy {np.__version__}" + extra)


def write_section(path: Path, name: str, table: str) -> None:
    """Replace (or append) the block between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{table}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + f"\n\n{block}\n"
    path.write_text(text)
    print(f"wrote {path}", file=sys.stderr)


def publish(table: str, path: Path | None, name: str) -> int:
    """Print a script's table and, with ``--write PATH``, replace its section there; exit status 0."""
    print(table)
    if path:
        write_section(path, name, table)
    return 0
