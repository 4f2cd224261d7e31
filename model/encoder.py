"""The skeleton encoder: a compact ST-GCN over the unified joint set, with EAI-LLM's two token kinds.

Input  x [B, T, J, C] (``features.prepare``), layout ids [B] (the unified skeleton token module:
a learned embedding per source joint set, so data from several sensors trains one model).
Output
  st_tokens   [B, P * K, D]  spatio-temporal tokens: P body parts x K time chunks (fine grain)
  sem_tokens  [B, Q, D]      semantic tokens: Q learned queries attending over all of them (coarse;
                             aligned with language in the alignment stage)
  logits      [B, L]         the fast label head, on the pooled semantic tokens
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bodytalk.capture.layouts import BODY_PARTS, U, UNIFIED_JOINTS, UNIFIED_PARENTS
from bodytalk.capture.layouts_known import LAYOUT_FAMILIES
from bodytalk.model.skeleton.features import CHANNELS


@dataclass(frozen=True)
class EncoderConfig:
    channels: int = CHANNELS
    dim: int = 64                 # D
    strides: tuple[int, ...] = (1, 2, 3)  # temporal stride per block: 60 frames -> 10 steps
    temporal_kernel: int = 9
    frames: int = 60              # T the encoder is built for (windows are resampled to it)
    time_chunks: int = 2          # K
    semantic_tokens: int = 2      # Q
    num_labels: int = 5
    layouts: tuple[str, ...] = LAYOUT_FAMILIES
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.dim % 4 or self.dim <= 0:
            raise ValueError("dim must be a positive multiple of 4 (attention heads)")
        object.__setattr__(self, "strides", tuple(self.strides))
        if self.frames % self.reduction or self.time_chunks < 1 or self.steps % self.time_chunks:
            raise ValueError(f"frames ({self.frames}) / strides {self.strides} = {self.frames / self.reduction}"
                             f" steps must split into time_chunks ({self.time_chunks})")
        if self.semantic_tokens < 1 or self.num_labels < 2:
            raise ValueError("need >= 1 semantic token and >= 2 labels")
        object.__setattr__(self, "layouts", tuple(self.layouts))

    @property
    def reduction(self) -> int:
        return int(np.prod(self.strides))

    @property
    def steps(self) -> int:
        """Time steps after the strided blocks."""
        return self.frames // self.reduction

    @property
    def num_st_tokens(self) -> int:
        return len(BODY_PARTS) * self.time_chunks

    def to_dict(self) -> dict:
        return asdict(self)


def _adjacency() -> torch.Tensor:
    """Symmetrically normalised adjacency of the unified skeleton with self loops, [J, J]."""
    n = len(UNIFIED_JOINTS)
    a = np.eye(n, dtype=np.float32)
    for child, parent in enumerate(UNIFIED_PARENTS):
        if parent >= 0:
            a[child, parent] = a[parent, child] = 1.0
    d = 1.0 / np.sqrt(a.sum(1))
    return torch.from_numpy(a * d[:, None] * d[None, :])


class STBlock(nn.Module):
    """Graph convolution over joints, then a (strided) temporal convolution; residual.

    Striding early keeps the encoder inside its CPU budget: most of the cost is the temporal
    convolution, which scales with the number of time steps.
    """

    def __init__(self, dim: int, kernel: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.register_buffer("adj", _adjacency(), persistent=False)
        self.stride = stride
        self.spatial = nn.Linear(dim, dim)
        self.temporal = nn.Conv2d(dim, dim, (kernel, 1), stride=(stride, 1), padding=(kernel // 2, 0))
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # h [B, T, J, D] -> [B, T / stride, J, D]
        h = h + self.drop(torch.relu(self.spatial(torch.einsum("ij,btjd->btid", self.adj, self.norm1(h)))))
        t = self.temporal(self.norm2(h).permute(0, 3, 1, 2))                      # [B, D, T/s, J]
        res = F.avg_pool2d(h.permute(0, 3, 1, 2), (self.stride, 1)) if self.stride > 1 else h.permute(0, 3, 1, 2)
        return (res + self.drop(torch.relu(t))).permute(0, 2, 3, 1)


class SkeletonEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, j = cfg.dim, len(UNIFIED_JOINTS)
        self.input = nn.Linear(cfg.channels, d)
        self.joint_emb = nn.Parameter(torch.randn(j, d) * 0.02)
        self.time_emb = nn.Parameter(torch.randn(cfg.frames, d) * 0.02)
        self.layout_emb = nn.Embedding(len(cfg.layouts), d)
        nn.init.normal_(self.layout_emb.weight, std=0.02)
        self.blocks = nn.ModuleList(STBlock(d, cfg.temporal_kernel, s, cfg.dropout) for s in cfg.strides)
        # Body-part pooling matrix [P, J]: mean over the joints of each part.
        parts = torch.zeros(len(BODY_PARTS), j)
        for p, names in enumerate(BODY_PARTS.values()):
            parts[p, [U[n] for n in names]] = 1.0 / len(names)
        self.register_buffer("parts", parts, persistent=False)
        self.token_pos = nn.Parameter(torch.randn(cfg.num_st_tokens, d) * 0.02)
        self.queries = nn.Parameter(torch.randn(cfg.semantic_tokens, d) * 0.02)
        self.attn = nn.MultiheadAttention(d, 4, batch_first=True)
        self.out_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.num_labels)

    def layout_ids(self, layouts: list[str]) -> torch.Tensor:
        """Source layout ids -> embedding indices (unknown layouts share the 'unified' slot)."""
        index = {name: i for i, name in enumerate(self.cfg.layouts)}
        return torch.tensor([index.get(name, 0) for name in layouts], dtype=torch.long)

    def forward(self, x: torch.Tensor, layout_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t, _, _ = x.shape  # x [B, T, J, C]
        if t != self.cfg.frames:
            raise ValueError(f"encoder built for {self.cfg.frames} frames, got {t}")
        h = self.input(x) + self.joint_emb + self.time_emb[:, None, :]
        h = h + self.layout_emb(layout_ids)[:, None, None, :]            # [B, T, J, D]
        for block in self.blocks:
            h = block(h)                                                  # -> [B, T', J, D]
        h = torch.einsum("pj,btjd->btpd", self.parts, h)                  # [B, T', P, D]
        k = self.cfg.time_chunks
        h = h.reshape(b, k, self.cfg.steps // k, h.shape[2], -1).mean(2)  # [B, K, P, D]
        st = self.out_norm(h.transpose(1, 2).reshape(b, -1, self.cfg.dim) + self.token_pos)  # [B, P*K, D]
        q = self.queries.expand(b, -1, -1)
        sem, _ = self.attn(q, st, st)                                     # [B, Q, D]
        sem = self.out_norm(sem + q)
        return {"st_tokens": st, "sem_tokens": sem, "logits": self.head(sem.mean(1))}
