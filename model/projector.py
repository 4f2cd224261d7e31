"""Projector: encoder tokens -> the LLM's embedding space (LLaVA-1.5 style two-layer MLP).

Optionally also the window's measured movement descriptors -> ``evidence_tokens`` tokens, so the
recognition prompt carries the evidence as a few embeddings instead of a long line of text (which
made LLM label scoring miss its budget on CPU); the explanation prompt keeps the text, because the
explanation cites its numbers.

Trained alone in the alignment stage (LLM frozen), then kept trainable or frozen under LoRA.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from bodytalk.model.skeleton import microgestures as mg
from bodytalk.model.skeleton.descriptors import FEATURE_DIM, Descriptor, as_features


def evidence_dim(mg_cues: bool, head_labels: int = 0) -> int:
    """Width of the evidence tokens' input: ``evidence_features`` (descriptors, plus two numbers per
    micro-gesture with MG cues), plus the encoder head's ``head_labels`` probabilities with
    ``ProjectorConfig.head_evidence``."""
    return FEATURE_DIM + (2 * len(mg.NAMES) if mg_cues else 0) + head_labels


def evidence_features(descriptors: Mapping[str, Descriptor], mgs: mg.MGResult | None = None) -> np.ndarray:
    """``[evidence_dim]`` float32: ``descriptors.as_features``, then with ``mgs`` per micro-gesture its
    detection confidence (0 when absent) and an observability flag, so "not observable" never reads
    as "absent"."""
    parts = [as_features(descriptors)]
    if mgs is not None:
        conf = [max((m.confidence for m in mgs.events(n)), default=0.0) for n in mg.NAMES]
        seen = [mgs.status(n) in ("present", "absent") for n in mg.NAMES]
        parts += [np.asarray(conf, np.float32), np.asarray(seen, np.float32)]
    return np.concatenate(parts).astype(np.float32)


@dataclass(frozen=True)
class ProjectorConfig:
    in_dim: int = 64        # encoder D
    out_dim: int = 576      # LLM hidden size H (SmolLM2-135M: 576)
    hidden: int = 576
    use_st_tokens: bool = True    # fine tokens into the prompt
    use_sem_tokens: bool = True   # coarse tokens into the prompt
    evidence_tokens: int = 0      # E tokens from the descriptor features (0: descriptors go in as text)
    evidence_dim: int = FEATURE_DIM  # evidence input width (recorded, so a checkpoint states it)
    head_evidence: bool = False   # the encoder head's label probabilities join the evidence tokens' input
    head_prior: bool = False      # the LLM's label scores add to the head's log-probabilities (head_prior_logits)

    def __post_init__(self) -> None:
        if min(self.in_dim, self.out_dim, self.hidden, self.evidence_dim) <= 0 or self.evidence_tokens < 0:
            raise ValueError("projector dims must be positive (evidence_tokens >= 0)")
        if self.head_evidence and not self.evidence_tokens:
            raise ValueError("head_evidence rides on the evidence tokens: set evidence_tokens > 0")
        if not (self.use_st_tokens or self.use_sem_tokens):
            raise ValueError("the projector needs at least one token kind")

    def to_dict(self) -> dict:
        return asdict(self)


def head_prior_logits(label_scores: torch.Tensor, head_logits: torch.Tensor) -> torch.Tensor:
    """The LLM path's label logits ``[B, L]`` under ``head_prior``: the LLM's label scores (any
    normalisation) plus the head's log-probabilities. The LLM starts from what the fast head concluded
    and, trained through this sum, learns how far to move it (where the head is already right on the
    training windows the LLM is taught nothing against it). The head is read, not trained, here."""
    return label_scores.log_softmax(-1) + head_logits.detach().log_softmax(-1)


class Projector(nn.Module):
    def __init__(self, cfg: ProjectorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.mlp = nn.Sequential(nn.Linear(cfg.in_dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.out_dim))
        # Separate type embeddings so the LLM can tell fine from coarse tokens.
        self.kind = nn.Parameter(torch.zeros(2, cfg.out_dim))
        if cfg.evidence_tokens:  # the last layer's bias doubles as these tokens' type embedding
            self.evidence = nn.Sequential(nn.Linear(cfg.evidence_dim, cfg.hidden), nn.GELU(),
                                          nn.Linear(cfg.hidden, cfg.evidence_tokens * cfg.out_dim))

    def forward(self, enc: dict[str, torch.Tensor], evidence: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder outputs (+ descriptor features ``[B, F]`` when the config has evidence tokens; with
        ``head_evidence`` the head's probabilities ``[B, L]`` are appended here) -> prompt tokens
        ``[B, S, H]``, in the order semantic, evidence, spatio-temporal."""
        parts = []
        if self.cfg.use_sem_tokens:
            parts.append(self.mlp(enc["sem_tokens"]) + self.kind[0])   # [B, Q, H]
        if self.cfg.evidence_tokens:
            if evidence is None:
                raise ValueError("this projector turns descriptor features into prompt tokens: pass evidence=")
            b = evidence.shape[0]
            if self.cfg.head_evidence:   # what the fast head concluded, as evidence (not trained through here)
                evidence = torch.cat([evidence, enc["logits"].detach().softmax(-1).to(evidence.dtype)], -1)
            parts.append(self.evidence(evidence.to(self.kind.dtype)).view(b, self.cfg.evidence_tokens, -1))  # [B, E, H]
        if self.cfg.use_st_tokens:
            parts.append(self.mlp(enc["st_tokens"]) + self.kind[1])    # [B, P*K, H]
        return torch.cat(parts, dim=1)
