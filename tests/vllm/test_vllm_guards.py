"""What the vLLM backend refuses before any engine exists: these need no vLLM and run in the default
suite (with vLLM installed too: its absence is simulated)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from bodytalk.model.llm import vllm as llm_vllm
from bodytalk.model.llm.hf import LLMConfig
from bodytalk.model.llm.vllm import VLLMConfig, VLLMSkeletonLLM
from bodytalk.model.llm.vllm_client import Request, prefill_groups


@pytest.fixture
def no_engine(monkeypatch):
    """Fail the test if anything tries to start an engine or reach a server."""
    def refuse(*args, **kwargs):
        raise AssertionError("an engine or server was reached; the refusal must come first")
    monkeypatch.setattr(llm_vllm, "Engine", refuse)
    monkeypatch.setattr(llm_vllm, "Server", refuse)


def _adapter(folder, rank: int, pattern: dict | None = None):
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "rank_pattern": pattern or {}}))
    return folder


def test_missing_vllm_names_the_extra(monkeypatch, no_engine):
    monkeypatch.setitem(sys.modules, "vllm", None)     # `import vllm` now raises ImportError
    with pytest.raises(ImportError, match=r"bodytalk\[vllm\]"):
        VLLMSkeletonLLM.load(LLMConfig())


@pytest.mark.parametrize("url", ["http://10.0.0.7:8000", "http://example.org:8000", "https://0.0.0.0:8000"])
def test_non_loopback_server_urls_are_refused_unless_allowed(url):
    with pytest.raises(ValueError, match="not a loopback address.*allow_remote"):
        VLLMConfig(url=url)
    assert VLLMConfig(url=url, allow_remote=True).url == url


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"])
def test_loopback_server_urls_are_accepted(url):
    assert VLLMConfig(url=url).url == url


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:8000", "127.0.0.1:8000"])
def test_server_urls_must_be_http(url):
    with pytest.raises(ValueError, match="http"):
        VLLMConfig(url=url)


@pytest.mark.parametrize("rank,pattern,largest", [(16, None, 16), (8, {"q_proj": 32}, 32)])
def test_an_adapter_above_max_lora_rank_is_refused_before_the_engine(tmp_path, no_engine, rank, pattern, largest):
    adapter = _adapter(tmp_path / "adapter", rank, pattern)
    with pytest.raises(ValueError, match=rf"rank {largest}, above max_lora_rank 8"):
        VLLMSkeletonLLM.load(LLMConfig(), adapter, VLLMConfig(merge_adapter=False, max_lora_rank=8))


def test_a_server_never_takes_a_runtime_adapter(tmp_path, no_engine):
    adapter = _adapter(tmp_path / "adapter", 8)
    with pytest.raises(ValueError, match="merged"):
        VLLMSkeletonLLM.load(LLMConfig(), adapter, VLLMConfig(url="http://127.0.0.1:8000", merge_adapter=False))


def test_max_lora_rank_must_be_one_vllm_accepts():
    with pytest.raises(ValueError, match="max_lora_rank"):
        VLLMConfig(max_lora_rank=12)


def test_prefill_groups_fit_one_engine_step():
    """With a runtime adapter every group prefills in one step (token budget and sequence count), so
    no step mixes prompt embeddings with decoded tokens."""
    requests = [Request(torch.zeros(n, 4), 40) for n in (60, 50, 30, 120, 10, 10, 10)]
    groups = prefill_groups(requests, budget=100, max_seqs=2)
    assert [[len(r.embeds) for r in g] for g in groups] == [[60], [50, 30], [120], [10, 10], [10]]
    assert [r for g in groups for r in g] == requests        # order kept


def test_importing_the_backend_does_not_import_vllm():
    """vLLM is imported when an engine starts, never by importing bodytalk (fresh interpreter)."""
    code = ("import sys, bodytalk.model.llm.vllm, bodytalk.model.registry, bodytalk.model.serving.server; "
            "sys.exit('vllm' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
