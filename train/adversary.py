"""A group adversary for the supervised encoder: learn the label, unlearn the content.

On Bandai leave-one-content-out the head's misses go mostly to *neutral*, the one style performed
in every content: a movement of an unseen content looks unfamiliar, and the head has learnt
"unfamiliar" as *neutral* (BENCHMARKS.md, issue 15, seventh session). Domain-adversarial training
(Ganin and Lempitsky, ICML 2015) is the standard answer to a representation that encodes the
domain: a small classifier reads each trunk's pooled embedding through a gradient-reversal layer and
tries to name the clip's group (``pretrain.adversary_group``, the Bandai content). It learns to do so
at full rate; the trunk gets its gradient reversed and scaled by ``pretrain.adversary``, so it is
pushed towards an embedding from which the content cannot be told, while the label head keeps
asking it for the style.

Only training uses it: the saved checkpoint holds the encoder alone.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bodytalk.train.data import require_group
from bodytalk.train.windowset import WindowSet


class _Reverse(torch.autograd.Function):
    """Identity forward; the gradient times ``-scale`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.scale * grad, None


def group_index(windows: WindowSet, group: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """``[N]`` int64 index of each window's clip group value, and the values in index order."""
    require_group(windows.clips, group, "pretrain.adversary_group")
    values = tuple(sorted({windows.clips[i].groups[group] for i in set(windows.clip.tolist())}))
    index = {v: i for i, v in enumerate(values)}
    return np.array([index[windows.clips[i].groups[group]] for i in windows.clip], dtype=np.int64), values


class Adversarial(nn.Module):
    """The encoder and one group classifier per trunk (what the trainer optimises).

    ``forward`` returns the encoder's outputs plus ``group_logits [M, B, G]``: each trunk's pooled
    embedding ``[B, D]`` through the gradient reversal and its classifier."""

    def __init__(self, encoder: nn.Module, groups: int, scale: float) -> None:
        super().__init__()
        self.encoder, self.scale = encoder, scale
        d = encoder.cfg.dim
        self.classifiers = nn.ModuleList(nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, groups))
                                         for _ in range(encoder.cfg.members))

    def forward(self, x: torch.Tensor, layout: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.encoder(x, layout)
        pooled = out.get("member_pooled", out["pooled"][None])                       # [M, B, D]
        out["group_logits"] = torch.stack([c(_Reverse.apply(p, self.scale))
                                           for c, p in zip(self.classifiers, pooled)])  # [M, B, G]
        return out


def group_loss(out: dict[str, torch.Tensor], group: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy of the trunks' group classifiers, and their mean accuracy (how much of the
    content the embedding still gives away; chance is one over the groups)."""
    logits = out["group_logits"]                                                    # [M, B, G]
    loss = torch.stack([F.cross_entropy(m, group) for m in logits]).mean()
    return loss, (logits.argmax(-1) == group).float().mean()
