"""The dependency rules of the package layout (README, Architecture), checked on every import
statement of the source tree, lazy ones inside functions included:

- capture/ and stream/ never import torch, transformers, peft or bodytalk.model / bodytalk.train: the
  PC beside a sensor runs them on the light install;
- stream/ never imports capture/: the bus is below the sources (capture publishes through stream);
- bridges/ (ROS 2, Foxglove, dashboard) are bus clients: no torch, no model, no training code;
- inside model/, only model/serving/ touches the bus (bodytalk.stream, zmq): everything else is a
  library a notebook can import without one.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

HEAVY = ("torch", "transformers", "peft", "bodytalk.model", "bodytalk.train")
BUS = ("bodytalk.stream", "zmq")

# folder (relative to the repo) -> (modules it must not import, sub-folders exempt from the rule)
RULES = {
    "capture": (HEAVY, ()),
    "stream": (HEAVY + ("bodytalk.capture",), ()),
    "model": (BUS, ("model/serving",)),
    "bridges": (HEAVY, ()),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, dotted module)`` for every import in a file, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            # `from bodytalk import model` names the subpackage as the imported item
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def violations(folder: str, banned: tuple[str, ...], exempt: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((REPO_ROOT / folder).rglob("*.py")):
        rel = path.relative_to(REPO_ROOT).as_posix()
        if any(rel.startswith(e + "/") for e in exempt):
            continue
        for line, module in imported_modules(path):
            if any(module == b or module.startswith(b + ".") for b in banned):
                found.append(f"{rel}:{line} imports {module}")
    return found


@pytest.mark.parametrize("folder", sorted(RULES))
def test_folder_keeps_its_dependency_rule(folder):
    banned, exempt = RULES[folder]
    assert violations(folder, banned, exempt) == []


def test_the_rule_check_sees_lazy_imports(tmp_path, monkeypatch):
    # The checker itself: an import inside a function counts as much as one at the top.
    pkg = tmp_path / "stream"
    pkg.mkdir()
    (pkg / "x.py").write_text("def f():\n    from bodytalk.model import checkpoint\n    import torch\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO_ROOT", tmp_path)
    assert violations("stream", HEAVY, ()) == ["stream/x.py:2 imports bodytalk.model",
                                               "stream/x.py:2 imports bodytalk.model.checkpoint",
                                               "stream/x.py:3 imports torch"]


def test_model_libraries_import_without_the_bus():
    # What a notebook does: the model's library rooms load, and pull in neither pyzmq nor the bus.
    code = ("import sys\n"
            "import bodytalk.model.inference, bodytalk.model.llm.hf, bodytalk.model.text.grounding\n"
            "import bodytalk.model.skeleton.mg_rules, bodytalk.model.llm.vllm\n"
            "print(sorted(m for m in sys.modules if m == 'zmq' or m.startswith('bodytalk.stream')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert out.stdout.strip() == "[]"
