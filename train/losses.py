"""Contrastive losses: NT-Xent between two views, the Spatial-Temporal-Balanced dual-stream loss
(self-supervised pre-training), and the CLIP-style skeleton-text loss (alignment stage).

Our reading of the micro-gesture paper's Spatial-Temporal-Balanced (STB) dual-stream contrastive
learning, on this encoder's spatio-temporal tokens ``st [B, P*K, D]`` (P body parts x K time
chunks):

- spatial stream  = tokens pooled over time, kept per body part: ``[B, P*D]`` -- which parts are
  where (the pose / shape configuration);
- temporal stream = tokens pooled over body parts, kept per time chunk: ``[B, K*D]`` -- how the
  body moves from chunk to chunk (the dynamics micro-gestures live in);
- each stream has its own projection head and is contrasted across the two augmented views of a
  window with NT-Xent;
- the fusion balances the streams so neither dominates the encoder: ``uncertainty`` (default)
  learns a log-variance s_k per stream, ``L = sum_k exp(-s_k) L_k + s_k`` (Kendall et al. 2018: a
  stream whose loss stays high is down-weighted, and the +s_k term stops the weights vanishing);
  ``inverse`` weights each stream by the (detached) inverse of its loss so both contribute equally;
  ``sum`` is the unbalanced ablation;
- a cross-stream term asks the two streams to agree on *which* windows are alike without making
  their features equal: the symmetric KL between the spatial and the temporal view-1 -> view-2
  similarity distributions, each side taking the other (detached) as its target.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

Fusion = Literal["uncertainty", "inverse", "sum"]


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's loss for two views ``[N, E]``: each of the 2N embeddings must pick its partner
    among the other 2N - 1 (cosine similarity / temperature)."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)                       # [2N, E]
    n = len(z1)
    sim = z @ z.T / temperature                                       # [2N, 2N]
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, target)


def info_nce(query: torch.Tensor, keys: torch.Tensor, temperature: float = 0.1,
             positives: torch.Tensor | None = None) -> torch.Tensor:
    """One-way InfoNCE: row i of ``query [N, E]`` against all ``keys [M, E]``; the positive is
    key i, or the keys marked in ``positives [N, M]`` (bool, several per row share the target)."""
    logits = F.normalize(query, dim=1) @ F.normalize(keys, dim=1).T / temperature  # [N, M]
    if positives is None:
        return F.cross_entropy(logits, torch.arange(len(query), device=logits.device))
    target = positives.float() / positives.float().sum(1, keepdim=True)
    return torch.sum(-target * F.log_softmax(logits, dim=1), dim=1).mean()


def clip_loss(skeleton: torch.Tensor, text: torch.Tensor, temperature: float | torch.Tensor = 0.07,
              positives: torch.Tensor | None = None) -> torch.Tensor:
    """CLIP's symmetric InfoNCE between paired ``skeleton [N, E]`` and ``text [N, E]`` embeddings.

    When texts repeat within a batch (label names), pass ``positives [N, N]`` (True where window
    i's text equals window j's) so identical texts are not pushed apart as negatives."""
    pos_t = None if positives is None else positives.T
    return 0.5 * (info_nce(skeleton, text, temperature, positives) + info_nce(text, skeleton, temperature, pos_t))


def streams(st_tokens: torch.Tensor, parts: int, chunks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``st [B, P*K, D]`` (token p*K + k) -> spatial ``[B, P*D]`` and temporal ``[B, K*D]``."""
    b = len(st_tokens)
    grid = st_tokens.reshape(b, parts, chunks, -1)                    # [B, P, K, D]
    return grid.mean(2).reshape(b, -1), grid.mean(1).reshape(b, -1)


def cross_stream(zs1: torch.Tensor, zs2: torch.Tensor, zt1: torch.Tensor, zt2: torch.Tensor,
                 temperature: float) -> torch.Tensor:
    """Symmetric KL between the streams' view-1 -> view-2 similarity distributions, each
    against the other's detached distribution; 0 when both streams see the same neighbours."""
    def logp(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / temperature, dim=1)
    ls, lt = logp(zs1, zs2), logp(zt1, zt2)
    kl = lambda target, pred: F.kl_div(pred, target.detach(), log_target=True, reduction="batchmean")  # noqa: E731
    return 0.5 * (kl(lt, ls) + kl(ls, lt))


class STBLoss(nn.Module):
    """Projection heads and balanced fusion of the dual-stream contrastive loss (see module doc)."""

    def __init__(self, dim: int, parts: int, chunks: int, proj_dim: int = 64, temperature: float = 0.1,
                 fusion: Fusion = "uncertainty", cross_weight: float = 0.5) -> None:
        super().__init__()
        self.parts, self.chunks = parts, chunks
        self.temperature, self.fusion, self.cross_weight = temperature, fusion, cross_weight
        head = lambda n: nn.Sequential(nn.Linear(n, dim), nn.ReLU(), nn.Linear(dim, proj_dim))  # noqa: E731
        self.spatial_head, self.temporal_head = head(parts * dim), head(chunks * dim)
        self.log_vars = nn.Parameter(torch.zeros(2))  # used by fusion="uncertainty" only

    def forward(self, st1: torch.Tensor, st2: torch.Tensor) -> dict[str, torch.Tensor]:
        """Spatio-temporal tokens of two views ``[B, P*K, D]`` -> ``loss`` and its parts."""
        (s1, t1), (s2, t2) = streams(st1, self.parts, self.chunks), streams(st2, self.parts, self.chunks)
        zs1, zs2 = self.spatial_head(s1), self.spatial_head(s2)
        zt1, zt2 = self.temporal_head(t1), self.temporal_head(t2)
        losses = torch.stack([nt_xent(zs1, zs2, self.temperature), nt_xent(zt1, zt2, self.temperature)])
        if self.fusion == "uncertainty":
            weights = torch.exp(-self.log_vars)
            fused = (weights * losses).sum() + self.log_vars.sum()
        elif self.fusion == "inverse":
            weights = (losses.mean() / losses).detach()
            fused = (weights * losses).sum()
        else:
            weights = torch.ones_like(losses)
            fused = losses.sum()
        cross = cross_stream(zs1, zs2, zt1, zt2, self.temperature)
        return {"loss": fused + self.cross_weight * cross, "spatial": losses[0].detach(),
                "temporal": losses[1].detach(), "cross": cross.detach(),
                "w_spatial": weights[0].detach(), "w_temporal": weights[1].detach()}


def class_weights(labels: np.ndarray, n: int) -> torch.Tensor:
    """``[n]`` inverse-frequency weights (mean 1 over the labels present; 0 for absent ones)."""
    count = np.bincount(labels, minlength=n).astype(np.float64)
    w = np.where(count > 0, count.sum() / (np.count_nonzero(count) * np.maximum(count, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def clip_weights(labels: np.ndarray, clips: np.ndarray) -> np.ndarray:
    """``[N]`` per-window weights under which every label present weighs as much as another and,
    within a label, every clip as much as another, however many windows it has (mean 1). A long
    clip (one 4-minute dance gives 123 windows of ``neutral``) would otherwise teach its content
    as the label's look; the benchmark scores clips, not windows."""
    per_clip = np.bincount(clips)[clips].astype(np.float64)                          # [N] its clip's windows
    _, clip_label = np.unique(clips, return_index=True)
    clips_of_label = np.bincount(labels[clip_label], minlength=labels.max() + 1)[labels]  # [N]
    w = 1.0 / (per_clip * clips_of_label)
    return (w * len(w) / w.sum()).astype(np.float32)


def head_loss(enc: dict[str, torch.Tensor], label: torch.Tensor, weight: torch.Tensor | None = None,
              smoothing: float = 0.0, sample_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of the encoder's label head (``SkeletonEncoder`` output). An ensemble fits every
    trunk to the labels on its own, the mean of their losses (one trunk fitting the average would
    lean on the others); the fitted statistics stream is not trained here. ``weight`` weighs each
    label ``[L]``, ``sample_weight`` each window ``[B]`` (the loss is then their weighted mean)."""
    fitted = enc.get("member_logits", enc["logits"][None])                  # [M, B, L]
    if sample_weight is not None:
        if weight is not None:
            raise ValueError("give label weights or window weights, not both")
        sw = sample_weight.to(fitted.device)
        return torch.stack([(F.cross_entropy(m, label, label_smoothing=smoothing, reduction="none") * sw).sum()
                            / sw.sum() for m in fitted]).mean()
    w = None if weight is None else weight.to(fitted.device)
    return torch.stack([F.cross_entropy(m, label, weight=w, label_smoothing=smoothing) for m in fitted]).mean()
