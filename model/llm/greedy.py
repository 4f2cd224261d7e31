"""Greedy decoding on the caller's thread, streamed piece by piece (SkeletonLLM.generate_stream).

Why not transformers' TextIteratorStreamer: it needs generate() on a second thread, and torch starts
every new thread at one intra-op thread (torch.get_num_threads() = 1 there), so streamed explanations
decoded much slower than whole ones (BENCHMARKS.md). Setting the caller's count inside that thread gave
two OpenMP teams on the same cores and bimodal times. This loop
runs where its consumer runs: one thread, the caller's thread count, no hand-over.

It is the same computation as generate(do_sample=False) for one prompt: the prompt (after an
optional cached prefix) in one pass, then one token per pass with the KV cache, stopping at an end
token (not before the model's generation_config.min_new_tokens, as generate() does) or after
`max_new_tokens`. Text comes out a token at a time, as soon as it is settled (TextIteratorStreamer
waits for a whole word, which holds the first piece back by a few decoding steps): trailing whitespace waits for the next token, which a tokenizer's
clean-up may fold it into (" ." -> "."), and so does an incomplete UTF-8 character (U+FFFD until
its last byte comes). The pieces joined are the whole text.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from bodytalk.model.llm import int8_copies
from bodytalk.model.llm.hf_conventions import kv_name, positions as position_ids


def stream(lm, tokenizer, inputs_embeds: Tensor, attention_mask: Tensor, max_new_tokens: int,
           eos: Sequence[int], prefix=None, last: Tensor | None = None,
           allowed: Callable[[Sequence[int]], set[int]] | None = None) -> Iterator[str]:
    """Text pieces of the greedy continuation of ONE prompt: inputs_embeds [1, N, H] and its
    attention_mask [1, N] (left padding allowed), after `prefix` (a llm.PrefixCache) if given.
    `last`: the logits_to_keep index of the last position (llm._LAST); `allowed(ids)`: the token ids
    the next token may be after the generated `ids` (as generate()'s logits processor)."""
    from transformers import DynamicCache


    p = prefix.length if prefix is not None else 0
    mask = torch.cat([attention_mask.new_ones(1, p), attention_mask], dim=1)        # [1, P+N]
    positions = position_ids(mask)[:, p:]                                             # [1, N]
    cache = prefix.expand(1, lm.config) if prefix is not None else DynamicCache(config=lm.config)
    step = dict(inputs_embeds=inputs_embeds)
    ids: list[int] = []
    shown = 0                                                       # characters already yielded
    stops = set(eos)
    kv = kv_name(lm)
    least = getattr(lm.generation_config, "min_new_tokens", None) or 0   # as generate() honours it
    for _ in range(max_new_tokens):
        # Entered per pass, not around the loop: between pieces the consumer runs in this thread, and
        # inference mode or the int8 context must not leak into its code.
        with torch.inference_mode(), int8_copies.decoding():
            out = lm(**step, attention_mask=mask, position_ids=positions, **{kv: cache},
                     use_cache=True, logits_to_keep=last if last is not None else 1)
            logits = out.logits[0, -1]                                          # [V]
            if len(ids) < least:
                logits[list(stops)] = float("-inf")
            if allowed is not None:
                logits = keep_only(logits, allowed(ids))
            token = int(logits.argmax())
        if token in stops:
            break
        ids.append(token)
        text = tokenizer.decode(ids, skip_special_tokens=True)
        ready = settled(text)
        if ready > shown:
            yield text[shown:ready]
            shown = ready
        cache = getattr(out, kv)
        step = dict(input_ids=torch.tensor([[token]], device=mask.device))
        mask = torch.cat([mask, mask.new_ones(1, 1)], dim=1)
        positions = positions[:, -1:] + 1
    text = tokenizer.decode(ids, skip_special_tokens=True)
    if len(text) > shown:
        yield text[shown:]


def keep_only(logits: Tensor, ids) -> Tensor:
    """``logits [V]`` with every token but ``ids`` at -inf (a guard's mask, text.claim_guard)."""
    keep = torch.tensor(sorted(ids), dtype=torch.long, device=logits.device)
    return torch.full_like(logits, float("-inf")).index_copy(0, keep, logits[keep])


def settled(text: str) -> int:
    """How much of the decoded text no later token can change: all but trailing whitespace and an
    incomplete UTF-8 character (decoded as U+FFFD) at the end."""
    return len(text.rstrip().rstrip("\ufffd").rstrip())
