"""Each integration's library is imported only when its bridge starts, and a missing one is a
one-line error naming the extra. (That the bridges never import torch or the model is
tests/test_layering.py's rule.)"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bodytalk.bridges.extras import ExtraMissing, need

BRIDGES = Path(__file__).resolve().parents[2] / "bridges"
OPTIONAL = ("cyclonedds", "rosbags", "foxglove", "mcap_ros2", "websockets", "playwright")


def test_optional_libraries_are_not_imported_at_module_level() -> None:
    """Importing every bridge module (what `bodytalk --help` and the verb table do) pulls in no
    optional library; they come through ``extras.need`` when a bridge starts."""
    modules = [".".join(("bodytalk", *p.relative_to(BRIDGES.parent).with_suffix("").parts))
               .replace(".__init__", "") for p in BRIDGES.rglob("*.py")]
    code = (f"import sys\nfor m in {modules!r}: __import__(m)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {OPTIONAL + ('torch',)!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_missing_extra_is_one_line_naming_it(monkeypatch) -> None:
    for name in ("cyclonedds", "cyclonedds.domain"):  # importing them now fails
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ExtraMissing) as err:
        need("cyclonedds.domain", "ros2")
    assert 'pip install "bodytalk[ros2]"' in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("module, extra, blocked", [
    ("bodytalk.bridges.ros2.bridge", "ros2", ("cyclonedds", "cyclonedds.domain", "cyclonedds.core")),
    ("bodytalk.bridges.foxglove.live", "foxglove", ("foxglove",)),
    ("bodytalk.bridges.dashboard.server", "dashboard", ("websockets", "websockets.asyncio.server")),
])
def test_each_bridge_without_its_extra_exits_2_with_one_line(module, extra, blocked, monkeypatch, caplog) -> None:
    import importlib

    for name in blocked:
        monkeypatch.setitem(sys.modules, name, None)
    main = importlib.import_module(module).main
    assert main(["--sub", "tcp://127.0.0.1:1", "--duration", "0.1", "--port" if extra != "ros2" else "--domain", "0"]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and f'pip install "bodytalk[{extra}]"' in errors[0]
