"""A checkpoint's LoRA adapter through vLLM: merged into the weights (the default) and served at run
time, each against transformers carrying the same adapter (float32). Two engine loads, one at a time."""
from __future__ import annotations

import pytest

from bodytalk.model.text import grounding
from bodytalk.model.llm.hf import SkeletonLLM
from bodytalk.model.llm.vllm import VLLMConfig, VLLMSkeletonLLM, merged_weights
from bodytalk.model.llm.weights import resolve_base
from tests.vllm.conftest import assert_same_readings, emotion_model, windows

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def with_adapter(model_cfg, lora_adapter):
    """The transformers backend carrying the adapter."""
    llm = SkeletonLLM.load(model_cfg.llm)
    llm.load_adapter(lora_adapter)
    return emotion_model(model_cfg, llm)


@pytest.fixture(scope="module")
def readings(with_adapter):
    """Transformers' readings of 4 windows with the adapter."""
    return windows(4), with_adapter.recognise(windows(4), path="llm")


def _served(model_cfg, adapter, vcfg: VLLMConfig):
    llm = VLLMSkeletonLLM.load(model_cfg.llm, adapter, vcfg)
    return llm, emotion_model(model_cfg, llm)


def test_merged_adapter_gives_the_transformers_readings(model_cfg, lora_adapter, merged_cache, readings):
    llm, model = _served(model_cfg, lora_adapter, VLLMConfig(cache=str(merged_cache)))
    try:
        wins, want = readings
        got = model.recognise(wins, path="llm")
        assert_same_readings(got, want)
        base = emotion_model(model_cfg, SkeletonLLM.load(model_cfg.llm)).recognise(wins, path="llm")
        moved = max(abs(g.probs[k] - b.probs[k]) for g, b in zip(got, base) for k in b.probs)
        assert moved > 0.01            # the adapter changes the readings: it was really merged in
    finally:
        llm.close()
    # One merged folder, in the cache given, keyed by the adapter; asking again reuses it.
    assert llm.folder.parent == merged_cache / "merged" and llm.folder.name.startswith("smollm2-135m-lora-")
    stamp = (llm.folder / "config.json").stat().st_mtime_ns
    again = merged_weights(resolve_base(model_cfg.llm.base), lora_adapter, model_cfg.llm.dtype, merged_cache)
    assert again == llm.folder and (again / "config.json").stat().st_mtime_ns == stamp


def test_runtime_adapter_gives_the_transformers_readings_and_text(model_cfg, lora_adapter, readings, with_adapter):
    """merge_adapter=False: a LoRARequest on every request, generation in one-step prefill groups."""
    llm, model = _served(model_cfg, lora_adapter, VLLMConfig(merge_adapter=False, max_lora_rank=8))
    try:
        wins, want = readings
        assert_same_readings(model.recognise(wins, path="llm"), want)
        labels = ["sad", "happy", "angry", "neutral"]     # prompts of different lengths in one batch
        got = model.explain(wins, labels, max_new_tokens=12, drop_unsupported=False)
        assert [t for t, _ in got] == [t for t, _ in with_adapter.explain(wins, labels, max_new_tokens=12,
                                                                          drop_unsupported=False)]
        streamed = "".join(model.explain_stream(wins[0], "sad", max_new_tokens=12))   # raw pieces; explain()
        assert grounding.trim_unfinished(streamed.strip()) == got[0][0]             # trims a cut-off end
        assert_same_readings(model.recognise(wins, path="llm"), want)    # the engine still answers
    finally:
        llm.close()


def test_a_prefill_group_is_added_without_an_engine_step_in_between():
    """The runtime-LoRA guard: a group's requests reach the engine under one hold of the lock, so the
    driver thread cannot step between two adds (it did, by timing, and the engine then mixed one
    request's decoding with another's prefill and died). A fake engine that is slow to add and
    records the order of adds and steps."""
    import itertools
    import queue
    import threading
    import time
    from types import SimpleNamespace

    import torch

    from bodytalk.model.llm.vllm_client import Engine, Request

    calls: list[str] = []

    class FakeEngine:
        renderer = SimpleNamespace(render_cmpl=lambda prompts: [prompts[0]])

        def add_request(self, rid, prompt, params, lora_request=None):
            calls.append("add")
            time.sleep(0.02)                      # room for the driver to step, were the lock free

        def has_unfinished_requests(self):
            return len(calls) > 0 and calls.count("step") < 3

        def step(self):
            calls.append("step")
            return []

    engine = object.__new__(Engine)
    engine.engine, engine.lora = FakeEngine(), object()
    engine._ids, engine._lock, engine._work = itertools.count(), threading.Lock(), threading.Event()
    engine._sinks: dict[str, queue.SimpleQueue] = {}
    engine._stopped = None
    threading.Thread(target=engine._drive, daemon=True).start()
    engine._submit([Request(torch.zeros(3, 8), 4) for _ in range(4)])
    time.sleep(0.2)
    assert calls[:4] == ["add"] * 4 and "step" in calls
