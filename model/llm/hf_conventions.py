"""What a Hugging Face causal LM expects of its caller, whatever the model: the chat template's end of
an assistant turn, position ids under left padding, and the name of the KV cache argument."""
from __future__ import annotations

import inspect

from torch import Tensor


def kv_name(lm) -> str:
    """The KV cache's argument and output name: transformers 5.x says `cache` (and warns on the old
    name), earlier versions `past_key_values`."""
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def positions(mask: Tensor) -> Tensor:
    """Position ids that skip padding, [B, N] -> [B, N]: a left-padded row gets the same positions as
    the same prompt alone, so results do not depend on batch composition."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def turn_end_of(tokenizer) -> str:
    """What the chat template writes after an assistant message (e.g. "<|im_end|>"), found by
    rendering a probe conversation; falls back to the EOS token."""
    probe, mark = [{"role": "user", "content": "x"}], "\x00answer\x00"
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat template; use an instruction-tuned model folder")
    full = tokenizer.apply_chat_template(probe + [{"role": "assistant", "content": mark}], tokenize=False)
    start = full.rfind(mark)
    end = full[start + len(mark):].strip() if start >= 0 else ""
    return end or (tokenizer.eos_token or "")
