"""The label set's answers as a prefix tree, and the two ways both LLM backends read labels from it.

An answer is a label's tokens plus the chat template's end-of-turn (SkeletonLLM.answer_ids), so no
answer is a prefix of another. A *decision* is a tree node whose next-token distribution is read:

- "answer" (likelihood): every node on an answer's path decides, over the full vocabulary; a label
  scores log p(its whole answer | prompt). Training uses it as the logits of a cross-entropy over
  the label set, so every token of every answer is trained.
- "constrained" (constrained decoding's probabilities): only nodes where answers part ways decide,
  each a softmax over its allowed next tokens; a label scores the sum of its choices. A node with
  one allowed continuation decides nothing (constrained decoding would take it with probability 1).
  When the labels' first tokens differ (the default five on SmolLM2: "angry" -> 604 541 <eot>,
  "happy" -> 45478 <eot>, ...) the prompt's last position decides alone and no answer token is run
  through the model, which makes label scoring faster at the same labels (BENCHMARKS.md). It is what
  recognition uses by default (LLMConfig.label_scoring).

Both readings give probabilities that sum to 1 over the label set after a softmax, and both equal
what running each prompt + answer alone would give (tests/model/test_label_trie.py).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

SCORINGS = ("constrained", "answer")


class LabelTrie:
    """Decisions, the answer tokens a backend must feed to reach them, and the per-label sums."""

    def __init__(self, answers: Sequence[Sequence[int]], scoring: str) -> None:
        if scoring not in SCORINGS:
            raise ValueError(f"label scoring must be one of {SCORINGS}, not {scoring!r}")
        answers = [tuple(a) for a in answers]
        if not answers or not all(answers):
            raise ValueError("every label needs a non-empty answer, and the label set must not be empty")
        for i, a in enumerate(answers):
            if any(b[:len(a)] == a for j, b in enumerate(answers) if j != i):
                raise ValueError(f"answer {i} {list(a)} is the start of another label's answer: labels must "
                                 "be distinct and end with the end-of-turn token")
        self.scoring = scoring
        children: dict[tuple[int, ...], list[int]] = {}                     # node -> next tokens, first seen first
        for a in answers:
            for k, token in enumerate(a):
                nxt = children.setdefault(a[:k], [])
                if token not in nxt:
                    nxt.append(token)
        # decisions[0] is the root whenever anything is decided (dict order: the root is seen first).
        self.decisions = [node for node, nxt in children.items() if scoring == "answer" or len(nxt) > 1]
        self.choices = [children[node] for node in self.decisions]
        # rows: the non-root nodes a backend feeds, each ending with its own token; a decision's
        # ancestors are fed with it. Parents come before their children (dict order).
        self.rows = [node for node in children if node and any(d[:len(node)] == node for d in self.decisions)]
        index = {node: d for d, node in enumerate(self.decisions)}
        edges = [(label, index[a[:k]], children[a[:k]].index(t))
                 for label, a in enumerate(answers) for k, t in enumerate(a) if a[:k] in index]
        self.labels = len(answers)
        self._owner = torch.tensor([e[0] for e in edges], dtype=torch.long)   # [E] label of each choice
        self._node = torch.tensor([e[1] for e in edges], dtype=torch.long)    # [E] decision it is made at
        self._pick = torch.tensor([e[2] for e in edges], dtype=torch.long)    # [E] which of its choices
        width = max(map(len, self.choices), default=1)                        # C
        # Each decision's choices, right-padded with its first: [D, C]; `_real` marks the unpadded.
        self.choice_ids = torch.tensor([c + c[:1] * (width - len(c)) for c in self.choices],
                                       dtype=torch.long).reshape(len(self.choices), width)
        self._real = torch.tensor([[j < len(c) for j in range(width)] for c in self.choices],
                                  dtype=torch.bool).reshape(len(self.choices), width)
        # For one packed pass after the prompt: each row's input token [R], its step after the prompt
        # [R] (position offset), and sees[t, u]: row t may attend to row u (u is t or an ancestor) [R, R].
        rows = self.rows
        self.row_inputs = torch.tensor([r[-1] for r in rows], dtype=torch.long)
        self.row_steps = torch.tensor([len(r) - 1 for r in rows], dtype=torch.long)
        self.row_sees = torch.tensor([[len(u) <= len(t) and t[:len(u)] == u for u in rows] for t in rows],
                                     dtype=torch.bool).reshape(len(rows), len(rows))
        # Where each decision's logits come from in that pass: 0 = the prompt's last position, i + 1 = row i. [D]
        at = {node: i + 1 for i, node in enumerate(rows)}
        self.decision_at = torch.tensor([at.get(node, 0) for node in self.decisions], dtype=torch.long)

    def combine(self, choice_logp: Tensor) -> Tensor:
        """Per-label scores [B, L] from each decision's choices [B, D, C] (ordered as `choices`,
        padding anywhere past a decision's own count). "answer" wants log-probabilities over the
        full vocabulary; "constrained" takes those or raw logits (it normalises over the choices)."""
        batch = choice_logp.shape[0]
        picked = choice_logp[:, self._node, self._pick]                                # [B, E]
        if self.scoring == "constrained" and len(self.decisions):
            norm = choice_logp.masked_fill(~self._real, float("-inf")).logsumexp(-1)   # [B, D]
            picked = picked - norm[:, self._node]
        return picked.new_zeros(batch, self.labels).index_add(1, self._owner, picked)
