"""Small helpers shared by tests: free loopback ports, running ``bodytalk`` as a subprocess, and
loading a script of ``benchmarks/`` as a module."""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def benchmark_module(name: str):
    """``benchmarks/<name>.py`` as a module (the folder is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_addr() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def _command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "bodytalk.cli", *map(str, args)]


def _env() -> dict[str, str]:
    # Unbuffered, so a test reading a subprocess's pipe sees each line as it is printed.
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def run_bodytalk(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``bodytalk ARGS`` to completion; stdout and stderr captured as text."""
    return subprocess.run(_command(args), capture_output=True, text=True, timeout=timeout,
                          cwd=REPO_ROOT, env=_env())


def start_bodytalk(args: list[str], **popen_kw) -> subprocess.Popen:
    """Start ``bodytalk ARGS`` in the background (stdout/stderr piped unless given)."""
    popen_kw.setdefault("stdout", subprocess.PIPE)
    popen_kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(_command(args), text=True, cwd=REPO_ROOT, env=_env(), **popen_kw)


def stop(proc: subprocess.Popen, timeout: float = 10) -> tuple[str, str]:
    """Terminate a background process (if still running) and return its output."""
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


class Collect:
    """Stands in for a Publisher: keeps what is sent."""

    def __init__(self) -> None:
        self.msgs = []

    def send(self, msg, ts=None) -> bool:
        self.msgs.append(msg)
        return True

    def of(self, kind):
        return [m for m in list(self.msgs) if isinstance(m, kind)]
