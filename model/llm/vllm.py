"""The skeleton-LLM served by vLLM from prompt embeddings: SkeletonLLM's interface (score_labels,
generate, embed, tokenizer, cache_prefix), so EmotionModel uses either backend unchanged.

    load_emotion_model("runs/bandai/checkpoint")                                # in-process engine
    load_emotion_model(ckpt, VLLMConfig(url="http://127.0.0.1:8000"))           # an OpenAI server
    python -m bodytalk.model.llm.vllm CKPT      # merge its adapter; print the server command

The HF tokenizer and the input-embedding matrix stay here (CPU), so PromptBuilder builds the prompt
embeddings exactly as for transformers; each row's left padding is stripped and its [n, H] embeddings
go to vLLM as `prompt_embeds` (a server takes them base64 of a `torch.save`d tensor).

Recognition, exact: the answers of all labels (label tokens + end-of-turn, as SkeletonLLM.answer_ids)
form a token tree (label_trie.py). Each decision of the tree is one request: the prompt + the node's
answer tokens so far, max_tokens=1, `logprob_token_ids` = the node's children, which vLLM answers with
log p(child | prompt, path) over the FULL vocabulary (logprobs_mode "raw_logprobs", its default). The
trie sums them per label as SkeletonLLM.label_log_likelihoods does after its one tree-masked pass, so
the two differ by kernel numerics only; read "constrained" (the default) with labels whose first tokens
differ, that is one request per window. Measured on SmolLM2-135M: in
float32 within 1e-4 nat per label (tests/vllm hold them to 1e-3 in probability); in bfloat16 each
backend is ~0.1 nat per token off the float32 value, so label probabilities differ by up to ~0.2
(bench_vllm.py, 16 windows of runs/bandai: the same label on all 16) and greedy text can part ways
after a few tokens. The root requests run first, so the deeper nodes find the window's prompt in
vLLM's prefix cache (whole KV blocks, block_size) and compute only its last partial block plus their
path. `cache_prefix` keeps the shared prompt prefix's embeddings to prepend per row; vLLM's prefix
caching reuses its keys and values. On the 2-core CPU (benchmarks/bench_vllm.py) this is 2.4x (1
window) to 3.7x (16) slower than the transformers backend's one tree-masked pass: every deeper request
recomputes the prompt's last partial block (CPU blocks are multiples of 32 tokens). Explanations run
as fast as with transformers; vLLM's batching pays off on a GPU.

Adapters: a checkpoint's LoRA is merged into the base weights (peft merge_and_unload in float32,
saved once as safetensors under <cache>/merged/, keyed by a hash of adapter and base) and vLLM serves
the merged folder. That is faster (README) and avoids a vLLM CPU bug reported there: a batch mixing prompt-embedding and
token positions while a LoRA request is present kills the engine. merge_adapter=False serves it at run
time instead: its rank is checked against max_lora_rank before the engine exists (a larger rank kills
the engine for every later request), and requests run in groups that prefill in one step, so every
step is all prompt embeddings or all decoded tokens.

CPU threads: vLLM-CPU binds a spinning OpenMP thread to every core. On a machine other busy processes
share, set VLLM_CPU_OMP_THREADS_BIND=nobind and OMP_NUM_THREADS (README: many times faster there).

Security: prompt embeddings steer the model and untrusted tensors are a known vLLM attack surface, so
only our own processes may send them. A server URL must be loopback unless allow_remote is set; then
use https and the server's --api-key (api_key, default $VLLM_API_KEY).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import torch
from torch import Tensor, nn

from bodytalk.model.llm.hf_conventions import turn_end_of
from bodytalk.model.llm.hf import DTYPES, LLMConfig, SkeletonLLM
from bodytalk.model.llm.vllm_client import Engine, Request, Server, require_vllm
from bodytalk.addresses import is_loopback_host
from bodytalk.model.llm.weights import cache_root, resolve_base

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
                                   # caches no part of a ~120-token window prompt (much slower scoring)
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
            if not self.allow_remote and not is_loopback_host(url.hostname):
                raise ValueError(f"{self.url} is not a loopback address: prompt embeddings steer the model, so only "
                                 "our own processes may send them. Use 127.0.0.1, or set allow_remote "
                                 "(--vllm-allow-remote) with https and the server's --api-key")


class VLLMSkeletonLLM:
    """SkeletonLLM's interface with vLLM computing; build it with load()."""

    # The claim guard (text.claim_guard) is a per-step mask that needs the engine's logits; this
    # transport sends whole requests, so explanations decode unguarded here (grounding still checks).
    guards_claims = False

    def __init__(self, config: LLMConfig, folder: Path, transport: "Engine | Server",
                 adapter: Path | None = None) -> None:
        from transformers import AutoTokenizer

        self.config, self.folder, self.transport, self.adapter = config, folder, transport, adapter
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.embeddings = _input_embeddings(folder, DTYPES[config.dtype])
        self.turn_end = turn_end_of(self.tokenizer)
        end = self.tokenizer(self.turn_end, add_special_tokens=False)["input_ids"] if self.turn_end else []
        self.stop_ids = tuple(end) if len(end) == 1 else ()
        self._answers: dict[str, list[int]] = {}
        self._tries: dict = {}

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
                                 "`python -m bodytalk.model.llm.vllm CKPT` prints, with merge_adapter=True")
            check_rank(adapter, vllm.max_lora_rank)
        if vllm.url is None:
            require_vllm()
        base = resolve_base(config.base)
        folder = merged_weights(base, adapter, config.dtype, vllm.cache) if adapter is not None and not runtime else base
        if vllm.url is not None:
            return cls(config, folder, Server(vllm, served_name(folder)), adapter)
        return cls(config, folder, Engine(folder, config, vllm, adapter if runtime else None), adapter)

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

    answer_ids = SkeletonLLM.answer_ids   # the same answers and tries, cached in self._answers / _tries
    label_trie = SkeletonLLM.label_trie

    def label_log_likelihoods(self, inputs_embeds: Tensor, attention_mask: Tensor, labels: Sequence[str],
                              prefix: Tensor | None = None, scoring: str = "answer") -> Tensor:
        """Each label's score [B, L], read as `scoring` from one request per trie decision and window
        (the module docstring says how)."""
        if not labels:
            raise ValueError("the label set is empty")
        trie = self.label_trie(labels, scoring)
        rows = _rows(inputs_embeds, attention_mask, prefix)                        # B x [n, H]
        requests = [(b, d) for d in range(len(trie.decisions)) for b in range(len(rows))]
        # Root decisions first (decisions[0] is the root): their prompts then sit in vLLM's prefix
        # cache for the deeper requests.
        split = len(rows) if trie.decisions and not trie.decisions[0] else 0
        tails = {node: self.embed(torch.tensor(node)) for node in trie.decisions if node}   # [k, H] each
        made = [Request(torch.cat([rows[b], tails[trie.decisions[d]]]) if trie.decisions[d] else rows[b], 1,
                        trie.choices[d]) for b, d in requests]
        answers = [a for part in (made[:split], made[split:]) if part for a in self.transport.run(part)]
        choice_logp = torch.full((len(rows), len(trie.decisions), trie.choice_ids.shape[1]), float("-inf"))
        for (b, d), answer in zip(requests, answers):                             # [B, D, C] raw log-probs
            choice_logp[b, d, :len(trie.choices[d])] = torch.tensor([answer.logprobs[t] for t in trie.choices[d]])
        return trie.combine(choice_logp)

    def score_labels(self, inputs_embeds: Tensor, attention_mask: Tensor, labels: Sequence[str],
                     prefix: Tensor | None = None, scoring: str | None = None) -> Tensor:
        """Probability of each label [B, L], summing to 1 over `labels`; read as `scoring` (default:
        the config's label_scoring)."""
        scoring = scoring or self.config.label_scoring
        return self.label_log_likelihoods(inputs_embeds, attention_mask, labels, prefix, scoring).softmax(-1)

    def generate(self, inputs_embeds: Tensor, attention_mask: Tensor, max_new_tokens: int = 40,
                 do_sample: bool = False, prefix: Tensor | None = None, allowed=None) -> list[str]:
        """Continue each prompt (inputs_embeds [B, N, H], left-padded attention_mask [B, N]), greedy by
        default, stopping at EOS or the end of turn: B texts. `prefix` (from cache_prefix) is prepended
        to every row. No guards (``guards_claims``): ``allowed`` must be None."""
        _unguarded(allowed)
        return [r.text for r in self.transport.run(self._requests(inputs_embeds, attention_mask, max_new_tokens,
                                                                  do_sample, prefix))]

    def generate_stream(self, inputs_embeds: Tensor, attention_mask: Tensor, max_new_tokens: int = 40,
                        do_sample: bool = False, prefix: Tensor | None = None, allowed=None) -> Iterator[str]:
        """generate() for one prompt (B = 1), as text pieces while they are decoded."""
        _unguarded(allowed)
        if inputs_embeds.shape[0] != 1:
            raise ValueError(f"generate_stream generates for one window at a time, got a batch of {inputs_embeds.shape[0]}")
        return self.transport.stream(self._requests(inputs_embeds, attention_mask, max_new_tokens, do_sample, prefix)[0])

    def _requests(self, inputs_embeds, attention_mask, max_new_tokens, do_sample, prefix) -> list[Request]:
        return [Request(row, max_new_tokens, stop_ids=self.stop_ids, sample=do_sample)
                for row in _rows(inputs_embeds, attention_mask, prefix)]

    def close(self) -> None:
        """Stop an in-process engine (its memory returns when the object goes)."""
        getattr(self.transport, "close", lambda: None)()

    def save_adapter(self, folder: str | Path) -> None:
        """Copy the checkpoint's adapter (peft format), so EmotionModel.save works with this backend."""
        if self.adapter is None:
            raise RuntimeError("this model carries no LoRA adapter")
        shutil.copytree(self.adapter, folder, dirs_exist_ok=True)


def _rows(embeds: Tensor, mask: Tensor, prefix: Tensor | None) -> list[Tensor]:
    """[B, N, H] left-padded -> B unpadded [n_b, H] rows (on CPU, contiguous), `prefix` [P, H] prepended."""
    rows = [e[m.bool()].detach().cpu() for e, m in zip(embeds, mask.cpu())]
    return [torch.cat([prefix.cpu().to(r.dtype), r]).contiguous() if prefix is not None else r.contiguous()
            for r in rows]


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

    digest = hashlib.sha256(f"{base.resolve()}|{dtype}".encode() + (base / "config.json").read_bytes())
    for file in sorted(f for f in Path(adapter).iterdir() if f.is_file()):   # the adapter, byte for byte
        digest.update(file.name.encode() + file.read_bytes())
    for file in sorted(base.glob("*.safetensors")):                          # the base weights, by size
        digest.update(f"{file.name}:{file.stat().st_size}".encode())
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

    p = argparse.ArgumentParser(prog="python -m bodytalk.model.llm.vllm", description=main.__doc__)
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


def _unguarded(allowed) -> None:
    if allowed is not None and (callable(allowed) or any(a is not None for a in allowed)):
        raise ValueError("the vLLM backend decodes without guards (guards_claims is False): pass allowed=None")


if __name__ == "__main__":
    raise SystemExit(main())
