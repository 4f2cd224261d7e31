"""Prompt builder: chat-template text with the projected skeleton tokens spliced in.

For each window the template (system + user with the placeholder and the descriptor text, then
the assistant generation prompt) is rendered by the tokenizer's own chat template, split at the
placeholder, and the two text parts are embedded around the skeleton tokens:

    [left padding] [prefix: system + user text up to the placeholder] [S skeleton tokens] [tail]

The prefix is identical for every window (PromptTemplate enforces it), so it is exposed for the
LLM to cache its keys/values once (SkeletonLLM.cache_prefix); `build(..., with_prefix=False)`
then returns only the per-window part.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from bodytalk.model.constants import DEFAULT_LABELS, RECOGNITION, SKELETON_PLACEHOLDER, PromptTemplate


@dataclass(frozen=True)
class PromptBatch:
    inputs_embeds: Tensor                 # [B, N, H]
    attention_mask: Tensor                # [B, N] int64, 0 = left padding
    skeleton_slices: tuple[slice, ...]    # per row: the positions of its S skeleton tokens
    with_prefix: bool                     # False: rows start after the shared prefix


class PromptBuilder:
    def __init__(self, tokenizer, embed: Callable[[Tensor], Tensor], template: PromptTemplate = RECOGNITION,
                 labels: Sequence[str] = DEFAULT_LABELS) -> None:
        """`embed` maps token ids [..., N] to the LLM's input embeddings [..., N, H]."""
        if not labels:
            raise ValueError("the label set is empty")
        self.tokenizer = tokenizer
        self.template = template
        self.labels = tuple(labels)
        self._embed = embed
        self.prefix_text, _ = self.split(descriptors="", label="")
        self.prefix_ids = torch.tensor(self._ids([self.prefix_text])[0], dtype=torch.long)   # [P]

    def render(self, descriptors: str, label: str | None = None) -> str:
        """The full chat text of one window, placeholder included."""
        if self.template.needs_label and label is None:
            raise ValueError("this prompt template names the label to explain: pass labels=")
        slots = dict(labels=", ".join(self.labels), descriptors=descriptors, label=label or "")
        messages = [{"role": "system", "content": self.template.system.format(**slots)},
                    {"role": "user", "content": self.template.user.format(**slots)}]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def split(self, descriptors: str, label: str | None = None) -> tuple[str, str]:
        """(text before the placeholder, text after it) for one window."""
        parts = self.render(descriptors, label).split(SKELETON_PLACEHOLDER)
        if len(parts) != 2:
            raise ValueError(f"the rendered prompt must hold {SKELETON_PLACEHOLDER!r} once, found "
                             f"{len(parts) - 1} (descriptor or label text must not contain it)")
        return parts[0], parts[1]

    def prefix_embeds(self) -> Tensor:
        """The shared prefix's embeddings [P, H], to cache with SkeletonLLM.cache_prefix."""
        return self._embed(self.prefix_ids)

    def build(self, skeleton: Tensor, descriptors: Sequence[str], labels: Sequence[str] | None = None,
              with_prefix: bool = True, answers: Sequence[str] | None = None) -> PromptBatch:
        """Embedded, left-padded prompts for B windows.

        skeleton: [B, S, H] projected skeleton tokens; descriptors: B descriptor texts; labels: B
        labels for a template that names one (explanation); answers: B starts of the assistant's
        answer, written after the generation prompt for the model to continue.
        """
        batch, n_skel, _ = skeleton.shape
        if len(descriptors) != batch or any(x is not None and len(x) != batch for x in (labels, answers)):
            raise ValueError(f"{batch} windows of skeleton tokens need {batch} descriptor texts (and labels), "
                             f"got {len(descriptors)} and {None if labels is None else len(labels)}")
        tails = []
        for i, text in enumerate(descriptors):
            head, tail = self.split(text, None if labels is None else labels[i])
            if head != self.prefix_text:
                raise ValueError("the chat template renders a different prefix per window; the prefix cache "
                                 "cannot be shared with this tokenizer")
            tails.append(tail + (answers[i] if answers is not None else ""))
        head_ids = self.prefix_ids.tolist() if with_prefix else []
        # Skeleton slots hold the pad id until the skeleton embeddings overwrite them.
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        rows = [head_ids + [pad] * n_skel + tail for tail in self._ids(tails)]
        width = max(map(len, rows))
        ids = torch.full((batch, width), pad, dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.long)
        is_skeleton = torch.zeros((batch, width), dtype=torch.bool)
        slices = []
        for i, row in enumerate(rows):
            offset = width - len(row)
            ids[i, offset:] = torch.tensor(row)
            mask[i, offset:] = 1
            start = offset + len(head_ids)
            is_skeleton[i, start:start + n_skel] = True
            slices.append(slice(start, start + n_skel))
        embeds = self._embed(ids)                                                   # [B, N, H]
        # masked_scatter fills the marked positions in row-major order, i.e. skeleton[b, s] lands
        # at slices[b][s]; it keeps the graph, so the projector trains through the splice.
        embeds = embeds.masked_scatter(is_skeleton[..., None].to(embeds.device),
                                       skeleton.to(device=embeds.device, dtype=embeds.dtype))
        return PromptBatch(inputs_embeds=embeds, attention_mask=mask.to(embeds.device),
                           skeleton_slices=tuple(slices), with_prefix=with_prefix)

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        # No special tokens added: the chat template already wrote the ones the model expects.
        return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
