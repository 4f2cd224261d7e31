"""The LLM half of the skeleton-aware model: any Hugging Face causal LM + its tokenizer, fed with
`inputs_embeds` (text embeddings with projected skeleton tokens spliced in, see prompt.py).

- Recognition reads every label of the label set as the assistant's answer (label tokens + the chat
  template's end-of-turn) from one pass and normalises over the set: never free-text parsing.
  label_trie.py holds the two readings (constrained decoding's choices, or whole-answer likelihood).
- Explanation is greedy generation, optionally streamed.
- A LoRA adapter (peft) with the EAI-LLM defaults; the base weights stay frozen.

Nothing depends on the model's name: the chat template comes from the tokenizer, so SmolLM2,
Qwen2.5 or Llama 3.x folders all work.
"""
from __future__ import annotations

import contextlib
import inspect
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from bodytalk.model.llm import greedy, int8_copies
from bodytalk.model.llm import hf_conventions as hf
from bodytalk.model.constants import DEFAULT_BASE
from bodytalk.model.llm.label_trie import SCORINGS, LabelTrie
from bodytalk.model.llm.weights import resolve_base

# allowed(generated ids) -> the token ids the next token may be (text.claim_guard.WindowGuard)
Allowed = Callable[[Sequence[int]], set[int]]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Logits of the last position only, picked by an index tensor rather than `logits_to_keep=1`: the
# slice that 1 makes is a non-contiguous [B, 1, H] view, and torch's linear with a frozen bf16
# weight turns that into a bmm against a B-fold copy of the 49k-row output matrix (+900 MB
# transient for B=16, measured). Indexing gathers a contiguous copy instead.
_LAST = torch.tensor([-1])


@dataclass(frozen=True)
class LLMConfig:
    base: str = DEFAULT_BASE          # packaged name, local HF folder, or HF id in the local cache
    dtype: str = "bfloat16"           # bf16 is ~6x faster than fp32 on the CPUs we serve from
    device: str = "cpu"
    lora_r: int = 64                  # EAI-LLM defaults: rank 64, alpha 16, dropout 0.05
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    label_scoring: str = "constrained"  # how recognition reads labels (label_trie.py); training: "answer"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {self.dtype!r}")
        if self.label_scoring not in SCORINGS:
            raise ValueError(f"label_scoring must be one of {SCORINGS}, not {self.label_scoring!r}")
        if self.lora_r < 1 or self.lora_alpha < 1:
            raise ValueError(f"lora_r and lora_alpha must be >= 1 (got {self.lora_r}, {self.lora_alpha})")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), not {self.lora_dropout}")
        if not self.lora_targets or not all(isinstance(t, str) and t for t in self.lora_targets):
            raise ValueError(f"lora_targets must name at least one module, got {self.lora_targets!r}")


@dataclass(frozen=True)
class PrefixCache:
    """Keys/values of the prompt prefix every window shares, computed once (batch 1)."""

    layers: tuple[tuple[Tensor, Tensor], ...]   # per layer: keys, values [1, kv_heads, P, head_dim]
    length: int                                 # P

    def expand(self, batch: int, config, dtype: torch.dtype | None = None) -> "DynamicCache":  # noqa: F821
        """A cache for `batch` rows that continue the prefix (its keys/values in `dtype`, if given)."""
        from transformers import DynamicCache

        # DynamicCache's constructor concatenates each layer's keys/values onto an empty tensor, so every
        # call copies the prefix B times ([B, kv_heads, P, head_dim] per layer; small next to the pass
        # itself) and each step concatenates anew. The cached tensors are only read, never written: one
        # PrefixCache serves any number of calls.
        return DynamicCache([(k.to(dtype or k.dtype).expand(batch, -1, -1, -1), v.to(dtype or v.dtype).expand(batch, -1, -1, -1))
                             for k, v in self.layers], config=config)


class SkeletonLLM(nn.Module):
    guards_claims = True   # generate()/generate_stream() take allowed= (text.claim_guard)

    @property
    def stop_ids(self) -> list[int]:
        """The token ids that end an answer (EOS, the end of turn when it is one token)."""
        return self._stops()

    def __init__(self, config: LLMConfig, lm: nn.Module, tokenizer) -> None:
        super().__init__()
        self.config = config
        self.lm = lm
        self.tokenizer = tokenizer
        self.turn_end = hf.turn_end_of(tokenizer)
        self._answers: dict[str, list[int]] = {}
        self._tries: dict[tuple[tuple[str, ...], str], LabelTrie] = {}

    @classmethod
    def load(cls, config: LLMConfig | None = None) -> "SkeletonLLM":
        """Load the base model of `config` from a local folder (never from a hub), frozen, in eval mode."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        config = config or LLMConfig()
        path = resolve_base(config.base)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        lm = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[config.dtype], local_files_only=True)
        lm.requires_grad_(False)
        return cls(config, lm.to(config.device), tokenizer).eval()

    @property
    def hidden_size(self) -> int:
        return self.lm.get_input_embeddings().embedding_dim

    @property
    def dtype(self) -> torch.dtype:
        return self.lm.get_input_embeddings().weight.dtype

    def add_lora(self) -> int:
        """Wrap the LM with a LoRA adapter on `config.lora_targets`; returns the trainable parameter count."""
        from peft import LoraConfig, PeftModel, get_peft_model

        if isinstance(self.lm, PeftModel):
            raise RuntimeError("this model already carries a LoRA adapter")
        names = {name.rsplit(".", 1)[-1] for name, _ in self.lm.named_modules()}
        if missing := [t for t in self.config.lora_targets if t not in names]:
            linear = sorted({n.rsplit(".", 1)[-1] for n, m in self.lm.named_modules() if isinstance(m, nn.Linear)})
            raise ValueError(f"LoRA targets {missing} are not modules of this model; its linear layers are {linear}")
        c = self.config
        lora = LoraConfig(r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
                          target_modules=list(c.lora_targets), task_type="CAUSAL_LM")
        with _quiet_peft():
            self.lm = get_peft_model(self.lm, lora)
        self.lm.train(self.training)  # peft returns a model in training mode; keep ours (eval: no dropout)
        return sum(p.numel() for p in self.lm.parameters() if p.requires_grad)

    @property
    def has_adapter(self) -> bool:
        from peft import PeftModel

        return isinstance(self.lm, PeftModel)

    def save_adapter(self, folder: str | Path) -> None:
        """The LoRA adapter alone (peft format: adapter_config.json + adapter_model.safetensors)."""
        if not self.has_adapter:
            raise RuntimeError("no LoRA adapter to save: call add_lora() first")
        self.lm.save_pretrained(str(folder))

    def load_adapter(self, folder: str | Path, trainable: bool = False) -> None:
        """Attach a saved LoRA adapter (frozen unless ``trainable``: later stages continue training it)."""
        from peft import PeftModel

        if self.has_adapter:
            raise RuntimeError("this model already carries a LoRA adapter")
        with _quiet_peft():
            self.lm = PeftModel.from_pretrained(self.lm, str(folder), is_trainable=trainable)
        self.lm.eval()

    def embed(self, ids: Tensor) -> Tensor:
        """Token ids [..., N] -> input embeddings [..., N, H]."""
        return self.lm.get_input_embeddings()(ids.to(self.config.device))

    def cache_prefix(self, prefix_embeds: Tensor) -> PrefixCache:
        """Run the shared prompt prefix [P, H] once; pass the result as `prefix=` to score_labels.
        The keys/values depend on the LoRA weights: compute it again after loading or training them."""
        with torch.no_grad():
            out = self.lm(inputs_embeds=prefix_embeds[None], use_cache=True, logits_to_keep=_LAST)
        layers = tuple((k, v) for k, v, *_ in getattr(out, hf.kv_name(self.lm)))
        return PrefixCache(layers=layers, length=prefix_embeds.shape[0])

    def answer_ids(self, label: str) -> list[int]:
        """Token ids of `label` as the assistant's whole answer, end-of-turn included, so that "sad"
        does not also score the start of "sadness"."""
        if label not in self._answers:
            self._answers[label] = self.tokenizer(label + self.turn_end, add_special_tokens=False)["input_ids"]
        return self._answers[label]

    def label_trie(self, labels: Sequence[str], scoring: str) -> LabelTrie:
        key = (tuple(labels), scoring)
        if key not in self._tries:
            self._tries[key] = LabelTrie([self.answer_ids(label) for label in labels], scoring)
        return self._tries[key]

    def label_log_likelihoods(self, inputs_embeds: Tensor, attention_mask: Tensor, labels: Sequence[str],
                              prefix: PrefixCache | None = None, scoring: str = "answer") -> Tensor:
        """Each label's score [B, L]: with "answer", log p(label's answer | prompt) summed over its
        tokens; with "constrained", the log-probability constrained decoding gives it (label_trie.py).
        Differentiable (training uses "answer" as logits for a cross-entropy over the label set).

        inputs_embeds [B, N, H], attention_mask [B, N] (0 = left padding); with `prefix`, they hold
        only what follows the cached prefix. ONE forward pass: the answer tokens the reading needs
        (the trie's rows, T of them) are appended to each prompt, each seeing the prompt and its own
        ancestors only (a tree-shaped attention mask). On CPU a pass costs about the time to stream
        the weights once, so one pass over N+T tokens beats a prompt pass plus a label pass, and no
        KV cache is copied per label.
        """
        if not labels:
            raise ValueError("the label set is empty")
        batch, n = attention_mask.shape
        device = self.config.device
        valid = attention_mask.to(device).bool()                                    # [B, N]
        trie = self.label_trie(labels, scoring)
        inputs, steps, sees = (t.to(device) for t in (trie.row_inputs, trie.row_steps, trie.row_sees))
        size = len(trie.rows)
        p = prefix.length if prefix is not None else 0
        positions = hf.positions(torch.cat([valid.new_ones(batch, p), valid], dim=1))[:, p:]   # [B, N]
        positions = torch.cat([positions, positions[:, -1:] + 1 + steps], dim=1)               # [B, N+T]

        # allowed[b, query, key] over keys [prefix P | prompt N | answers T].
        causal = torch.ones(n, n, dtype=torch.bool, device=device).tril() & valid[:, None, :]
        causal |= torch.eye(n, dtype=torch.bool, device=device)     # padding rows see themselves: no NaN
        prompt_rows = torch.cat([valid.new_ones(batch, n, p), causal, valid.new_zeros(batch, n, size)], dim=2)
        answer_rows = torch.cat([valid.new_ones(batch, size, p), valid[:, None, :].expand(-1, size, -1),
                                 sees[None].expand(batch, -1, -1)], dim=2)
        allowed = torch.cat([prompt_rows, answer_rows], dim=1)                      # [B, N+T, P+N+T]
        # float32 activations with int8 copies and no gradients (int8_copies.score_dtype says why).
        dtype = self.dtype if torch.is_grad_enabled() or self.lm.training else int8_copies.score_dtype(self.lm)
        # Additive float mask: the form both the sdpa and the eager attention take as given.
        bias = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)
        embeds = torch.cat([inputs_embeds.to(device), self.embed(inputs)[None].expand(batch, -1, -1)], dim=1)
        with int8_copies.scoring():                                    # dynamic int8 copies, if enabled
            logits = self.lm(inputs_embeds=embeds.to(dtype), attention_mask=bias[:, None], position_ids=positions,
                             **{hf.kv_name(self.lm): prefix.expand(batch, self.lm.config, dtype) if prefix is not None else None},
                             use_cache=prefix is not None,
                             logits_to_keep=torch.arange(n - 1, n + size, device=device)).logits  # [B, 1+T, V]
        at = logits[:, trie.decision_at.to(device)].float()                          # [B, D, V]
        if scoring == "answer":
            at = at.log_softmax(-1)                       # "constrained" normalises over the choices only
        choices = trie.choice_ids.to(device)                                        # [D, C]
        return trie.combine(at.gather(-1, choices[None].expand(batch, -1, -1)))     # [B, L]

    def score_labels(self, inputs_embeds: Tensor, attention_mask: Tensor, labels: Sequence[str],
                     prefix: PrefixCache | None = None, scoring: str | None = None) -> Tensor:
        """Probability of each label [B, L], summing to 1 over `labels`; read as `scoring` (default:
        the config's label_scoring)."""
        scoring = scoring or self.config.label_scoring
        return self.label_log_likelihoods(inputs_embeds, attention_mask, labels, prefix, scoring).softmax(-1)

    def generate(self, inputs_embeds: Tensor, attention_mask: Tensor, max_new_tokens: int = 40,
                 do_sample: bool = False, prefix: PrefixCache | None = None,
                 allowed: Sequence[Allowed | None] | None = None) -> list[str]:
        """Continue each prompt (inputs_embeds [B, N, H], left-padded attention_mask [B, N]); greedy by
        default. Returns B texts. ``allowed``: per row, None or ``allowed(ids)``, the token ids that may
        follow the row's generated ``ids`` (``text.claim_guard``).

        With `prefix` the prompts hold only what follows the cached prefix: the explanation prompt's
        shared system text is then not run again for every explanation (the time to first token)."""
        kwargs = self._generate_kwargs(inputs_embeds, attention_mask, max_new_tokens, do_sample, prefix, allowed)
        with torch.inference_mode(), int8_copies.decoding():     # int8 copies, if enabled
            ids = self.lm.generate(**kwargs)                                        # [B, new tokens]
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def generate_stream(self, inputs_embeds: Tensor, attention_mask: Tensor, max_new_tokens: int = 40,
                        do_sample: bool = False, prefix: PrefixCache | None = None,
                        allowed: Allowed | None = None) -> Iterator[str]:
        """generate() for one prompt (B = 1), as text pieces while they are decoded: greedy decoding runs
        on the caller's thread (greedy.py says why), sampling on transformers' streamer thread."""
        from transformers import TextIteratorStreamer

        if inputs_embeds.shape[0] != 1:
            raise ValueError(f"generate_stream generates for one window at a time, got a batch of {inputs_embeds.shape[0]}")
        if not do_sample:
            eos, last = self._stops(), self._last()
            return greedy.stream(self.lm, self.tokenizer, inputs_embeds.to(self.config.device),
                                 attention_mask.to(self.config.device), max_new_tokens, eos, prefix, last, allowed)
        kwargs = self._generate_kwargs(inputs_embeds, attention_mask, max_new_tokens, do_sample, prefix, [allowed])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        return _stream(lambda: self.lm.generate(**kwargs, streamer=streamer), streamer)

    def _stops(self) -> list[int]:
        """The token ids that end an answer: EOS, and the chat template's end of turn when it is one token."""
        eos = self.lm.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        end = self.tokenizer(self.turn_end, add_special_tokens=False)["input_ids"] if self.turn_end else []
        return eos + (end[:1] if len(end) == 1 else [])

    def _last(self):
        base = self.lm.get_base_model() if self.has_adapter else self.lm
        # See _LAST: +57 MB per batch row otherwise, measured.
        return _LAST if "logits_to_keep" in inspect.signature(base.forward).parameters else None

    def _generate_kwargs(self, inputs_embeds: Tensor, attention_mask: Tensor, max_new_tokens: int,
                         do_sample: bool, prefix: PrefixCache | None,
                         allowed: Sequence[Allowed | None] | None = None) -> dict:
        """transformers' generate() arguments for these prompts."""
        from transformers import GenerationConfig, LogitsProcessorList

        eos, last = self._stops(), self._last()
        batch = inputs_embeds.shape[0]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos[0]
        settings = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=do_sample, eos_token_id=eos,
                                    pad_token_id=pad)
        embeds, mask = inputs_embeds.to(self.config.device), attention_mask.to(self.config.device)
        kwargs = dict(generation_config=settings)
        if prefix is not None:
            # generate() takes the whole sequence and runs only the positions past the cache, so the
            # prefix's rows are placeholders [B, P, H] that are never read.
            embeds = torch.cat([embeds.new_zeros(batch, prefix.length, embeds.shape[-1]), embeds], dim=1)
            mask = torch.cat([mask.new_ones(batch, prefix.length), mask], dim=1)
            kwargs[hf.kv_name(self.lm)] = prefix.expand(batch, self.lm.config)
        kwargs.update(inputs_embeds=embeds, attention_mask=mask)
        if allowed is not None and any(a is not None for a in allowed):
            kwargs["logits_processor"] = LogitsProcessorList([_Allow(list(allowed))])
        if last is not None:
            kwargs["logits_to_keep"] = last
        return kwargs


class _Allow:
    """transformers logits processor: in a row with a guard, every token but ``allowed(generated ids)``
    gets -inf. With ``inputs_embeds`` generate() hands processors the generated ids only."""

    def __init__(self, allowed: list[Allowed | None]) -> None:
        self.allowed = allowed

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:           # [B, n], [B, V]
        for row, ids in enumerate(input_ids.tolist()):
            if self.allowed[row] is not None:
                scores[row] = greedy.keep_only(scores[row], self.allowed[row](ids))
        return scores


@contextlib.contextmanager
def _quiet_peft():
    """peft 0.21 reads a transformers property that transformers 5 deprecates (a FutureWarning on
    every adapter load): not the user's business."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        yield


def _stream(run, streamer) -> Iterator[str]:
    """Run generation on a thread and yield the streamer's text; re-raise its error here. The thread
    enters int8_copies.decoding() itself: a new thread does not inherit the caller's context."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            with torch.inference_mode(), int8_copies.decoding():
                run()
        except BaseException as err:  # noqa: BLE001 (handed to the consumer below)
            failure.append(err)
            streamer.end()

    thread = threading.Thread(target=target, name="llm-generate", daemon=True)
    thread.start()
    yield from streamer
    thread.join()
    if failure:
        raise failure[0]
