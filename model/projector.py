"""Projector: encoder tokens -> the LLM's embedding space (LLaVA-1.5 style two-layer MLP).

Trained alone in the alignment stage (LLM frozen), then kept trainable or frozen under LoRA.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ProjectorConfig:
    in_dim: int = 64        # encoder D
    out_dim: int = 576      # LLM hidden size H (SmolLM2-135M: 576)
    hidden: int = 576
    use_st_tokens: bool = True    # fine tokens into the prompt
    use_sem_tokens: bool = True   # coarse tokens into the prompt

    def __post_init__(self) -> None:
        if min(self.in_dim, self.out_dim, self.hidden) <= 0:
            raise ValueError("projector dims must be positive")
        if not (self.use_st_tokens or self.use_sem_tokens):
            raise ValueError("the projector needs at least one token kind")

    def to_dict(self) -> dict:
        return asdict(self)


class Projector(nn.Module):
    def __init__(self, cfg: ProjectorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.mlp = nn.Sequential(nn.Linear(cfg.in_dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.out_dim))
        # Separate type embeddings so the LLM can tell fine from coarse tokens.
        self.kind = nn.Parameter(torch.zeros(2, cfg.out_dim))

    def forward(self, enc: dict[str, torch.Tensor]) -> torch.Tensor:
        """Encoder outputs -> skeleton tokens [B, S, H] (S = semantic + spatio-temporal)."""
        parts = []
        if self.cfg.use_sem_tokens:
            parts.append(self.mlp(enc["sem_tokens"]) + self.kind[0])   # [B, Q, H]
        if self.cfg.use_st_tokens:
            parts.append(self.mlp(enc["st_tokens"]) + self.kind[1])    # [B, P*K, H]
        return torch.cat(parts, dim=1)
