"""The interface every LLM backend implements, so ``EmotionModel`` (inference.py) runs on any of them:
transformers in this process (hf.py, ``SkeletonLLM``) or vLLM (vllm.py, ``VLLMSkeletonLLM``).

Both take prompts as embeddings (text embeddings with projected skeleton tokens spliced in, see
prompt.py): ``inputs_embeds [B, N, H]`` with a left-padded ``attention_mask [B, N]``, and optionally
a ``prefix`` made once by ``cache_prefix`` from the prompt's shared start.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from bodytalk.model.llm.label_trie import LabelTrie


@runtime_checkable
class LLMBackend(Protocol):
    tokenizer: Any                 # the base model's Hugging Face tokenizer (chat template, label answers)
    guards_claims: bool            # generate()/generate_stream() take allowed= (text.claim_guard)

    @property
    def hidden_size(self) -> int: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def has_adapter(self) -> bool: ...

    def embed(self, ids: Tensor) -> Tensor:
        """Token ids [...] -> the base model's input embeddings [..., H]."""

    def cache_prefix(self, prefix_embeds: Tensor) -> Any:
        """The shared prompt start [P, H], prepared once for every later ``prefix=``."""

    def label_trie(self, labels: Sequence[str], scoring: str) -> LabelTrie:
        """The label answers as a token tree (label_trie.py)."""

    def label_log_likelihoods(self, inputs_embeds: Tensor, attention_mask: Tensor, labels: Sequence[str],
                              prefix: Any = None, scoring: str = "answer") -> Tensor:
        """Each label's log score [B, L], read as ``scoring`` ("answer" or "constrained")."""

    def score_labels(self, inputs_embeds: Tensor, attention_mask: Tensor, labels: Sequence[str],
                     prefix: Any = None, scoring: str | None = None) -> Tensor:
        """Each label's probability [B, L], summing to 1 over ``labels``."""

    def generate(self, inputs_embeds: Tensor, attention_mask: Tensor, max_new_tokens: int = 40,
                 do_sample: bool = False, prefix: Any = None, allowed: Any = None) -> list[str]:
        """B continuations, greedy by default, ending at EOS or the end of turn; ``allowed``: per row
        None or a guard (``guards_claims`` says whether this backend applies guards)."""

    def generate_stream(self, inputs_embeds: Tensor, attention_mask: Tensor, max_new_tokens: int = 40,
                        do_sample: bool = False, prefix: Any = None, allowed: Any = None) -> Iterator[str]:
        """One prompt's continuation (B = 1) as text pieces while it is decoded."""

    def save_adapter(self, folder) -> None:
        """Write the LoRA adapter (if any) into a checkpoint folder."""
