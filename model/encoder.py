"""The skeleton encoder over the unified joint set, with EAI-LLM's two token kinds.

Two trunks (``EncoderConfig.arch``; old checkpoints carry no key and get ``stgcn``):
- ``stgcn``: a compact ST-GCN (graph convolution over joints, strided temporal convolution).
- ``tcn``: a body-part temporal CNN (``PartTCN``): each part's joints enter their own channel
  group, grouped convolutions keep the parts apart and full ones let them exchange; 1-D
  convolutions over time are several times cheaper than the ST-GCN on a CPU, so the encoder can
  train the longer schedules that generalise across contents (BENCHMARKS.md, "Bandai recognition across contents").

Input  x [B, T, J, C] (``features.prepare`` of the config's ``features`` version), layout ids [B]
(the unified skeleton token module: a learned embedding per source joint set, so data from several
sensors trains one model).
Output
  st_tokens   [B, P * K, D]  spatio-temporal tokens: P body parts x K time chunks (fine grain)
  sem_tokens  [B, Q, D]      semantic tokens: Q learned queries attending over all of them (coarse;
                             aligned with language in the alignment stage)
  logits      [B, L]         the fast label head, on the pooled semantic tokens; with ``members`` > 1
                             or the ``statistics`` stream, the log of their averaged probabilities
  pooled      [B, D]         the pooled semantic tokens the label head reads
  member_logits [M, B, L]    (only then) each trunk's own head, what training fits one by one
  member_pooled [M, B, D]    (only then) each trunk's pooled tokens

``head_bias`` (set by pre-training's ``label_shift``, never trained) is added to ``logits`` last:
the served label moves, each member's own head does not.

An ensemble (``members``: trunks of the same design from different initialisations, trained side
by side; ``statistics``: a logistic regression on the window's kinematic statistics) makes the
label steadier across contents than one trunk, whose held-out accuracy moves with its seed. The
tokens the projector reads stay those of the first trunk.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bodytalk.capture.layouts import BODY_PARTS, U, UNIFIED_JOINTS, UNIFIED_PARENTS
from bodytalk.capture.layouts_known import LAYOUT_FAMILIES
from bodytalk.model.skeleton.features import FEATURE_CHANNELS, WindowInput, prepare
from bodytalk.model.statistics_head import StatisticsHead


@dataclass(frozen=True)
class EncoderConfig:
    channels: int | None = None   # input channels C (None: those of the feature version)
    dim: int = 64                 # D
    strides: tuple[int, ...] = (1, 2, 3)  # temporal stride per block: 60 frames -> 10 steps
    temporal_kernel: int = 9
    frames: int = 60              # T the encoder is built for (windows are resampled to it)
    time_chunks: int = 2          # K
    semantic_tokens: int = 2      # Q
    num_labels: int = 5
    layouts: tuple[str, ...] = LAYOUT_FAMILIES
    dropout: float = 0.1
    features: int = 1             # features.prepare version (1: first-frame heading; 2: per-frame, local)
    arch: str = "stgcn"           # trunk: stgcn | tcn
    part_width: int = 32          # tcn: channels per body part
    input_noise: float = 0.0      # tcn, training only: Gaussian noise on the standardised input
    members: int = 1              # trunks averaged for the label (an ensemble; tokens from the first)
    statistics: bool = False      # a statistics stream joins the average (needs features 2)
    head_bias: tuple[float, ...] = ()  # [L] added to the label logits (train/label_shift.py; (): none)

    def __post_init__(self) -> None:
        if self.features not in FEATURE_CHANNELS:
            raise ValueError(f"features: unknown version {self.features}; known: {sorted(FEATURE_CHANNELS)}")
        if self.channels is None:
            object.__setattr__(self, "channels", FEATURE_CHANNELS[self.features])
        if self.channels != FEATURE_CHANNELS[self.features]:
            raise ValueError(f"channels {self.channels} != {FEATURE_CHANNELS[self.features]}, the width of "
                             f"feature version {self.features}")
        if self.arch not in ("stgcn", "tcn") or self.part_width < 1 or self.input_noise < 0:
            raise ValueError(f"arch must be stgcn or tcn and part_width >= 1, got {self.arch}, {self.part_width}")
        if self.members < 1 or (self.statistics and self.features != 2):
            raise ValueError(f"need members >= 1 (got {self.members}); the statistics stream reads feature "
                             f"version 2 (got {self.features})")
        if self.dim % 4 or self.dim <= 0:
            raise ValueError("dim must be a positive multiple of 4 (attention heads)")
        object.__setattr__(self, "strides", tuple(self.strides))
        if self.frames % self.reduction or self.time_chunks < 1 or self.steps % self.time_chunks:
            raise ValueError(f"frames ({self.frames}) / strides {self.strides} = {self.frames / self.reduction}"
                             f" steps must split into time_chunks ({self.time_chunks})")
        if self.semantic_tokens < 1 or self.num_labels < 2:
            raise ValueError("need >= 1 semantic token and >= 2 labels")
        object.__setattr__(self, "layouts", tuple(self.layouts))
        try:
            object.__setattr__(self, "head_bias", tuple(float(b) for b in self.head_bias))
        except (TypeError, ValueError):
            raise ValueError(f"head_bias must be a list of numbers, got {self.head_bias!r}") from None
        if self.head_bias and (len(self.head_bias) != self.num_labels or not np.isfinite(self.head_bias).all()):
            raise ValueError(f"head_bias needs {self.num_labels} finite values (one a label), got {self.head_bias}")

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

    def featurise(self, w: WindowInput) -> np.ndarray:
        """The encoder input of one window, ``[frames, 17, channels]`` (``features.prepare``)."""
        return prepare(w, self.frames, self.features)


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


class PartTCN(nn.Module):
    """Body-part temporal CNN: x [B, T, J, C] -> part features per time chunk [B, K, P, D].

    Each part's joints (``BODY_PARTS``) are flattened into its own group of ``part_width``
    channels by a per-part linear map (the input's per-channel scale is learned by batch
    normalisation, as a standardisation fitted on the training windows would be; in training,
    ``input_noise`` adds Gaussian noise to the standardised input). Then one 1-D
    convolution block per stride: even blocks grouped by part (each part's own rhythm), odd blocks
    full (parts exchange), each Conv1d -> BatchNorm -> ReLU, with a residual when the width and
    stride allow. Channel group p of the last block becomes part p's tokens.
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.index = [[U[n] for n in names] for names in BODY_PARTS.values()]
        p, w, c = len(self.index), cfg.part_width, cfg.channels
        self.norm_in = nn.BatchNorm1d(len(UNIFIED_JOINTS) * c)
        self.inputs = nn.ModuleList(nn.Linear(len(ix) * c, w) for ix in self.index)
        self.layout_emb = nn.Embedding(len(cfg.layouts), p * w)
        nn.init.normal_(self.layout_emb.weight, std=0.02)
        k = cfg.temporal_kernel
        self.convs = nn.ModuleList(
            nn.Conv1d(p * w, p * w, k, stride=s, padding=k // 2, groups=p if i % 2 == 0 else 1)
            for i, s in enumerate(cfg.strides))
        self.norms = nn.ModuleList(nn.BatchNorm1d(p * w) for _ in cfg.strides)
        self.out = nn.Linear(w, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, layout_ids: torch.Tensor) -> torch.Tensor:
        b, t, j, c = x.shape
        x = self.norm_in(x.reshape(b, t, j * c).transpose(1, 2)).transpose(1, 2).reshape(b, t, j, c)
        if self.training and self.cfg.input_noise:
            x = x + self.cfg.input_noise * torch.randn_like(x)
        h = torch.cat([lin(x[:, :, ix].reshape(b, t, -1)) for lin, ix in zip(self.inputs, self.index)], -1)
        h = torch.relu(h + self.layout_emb(layout_ids)[:, None, :]).transpose(1, 2)   # [B, P*W, T]
        for conv, norm, s in zip(self.convs, self.norms, self.cfg.strides):
            y = torch.relu(norm(conv(h)))                                            # [B, P*W, T/s]
            h = y + (F.avg_pool1d(h, s) if s > 1 else h)
        h = self.drop(h)
        k = self.cfg.time_chunks
        h = F.adaptive_avg_pool1d(h, k).reshape(b, len(self.index), -1, k)           # [B, P, W, K]
        return self.out(h.permute(0, 3, 1, 2))                                       # [B, K, P, D]


class SkeletonEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, j = cfg.dim, len(UNIFIED_JOINTS)
        if cfg.arch == "tcn":
            self.tcn = PartTCN(cfg)
        else:  # stgcn: attribute names kept as they were, so old checkpoints load
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
        # Empty for one trunk without statistics, so such checkpoints keep their keys.
        self.others = nn.ModuleList(SkeletonEncoder(replace(cfg, members=1, statistics=False, head_bias=()))
                                    for _ in range(cfg.members - 1))
        self.stats_head = StatisticsHead(cfg.num_labels) if cfg.statistics else None

    @torch.no_grad()
    def keep_labels(self, index: list[int]) -> None:
        """Keep only these rows of every label head (the trunks' and the statistics stream's), in this
        order: each member's softmax becomes its distribution renormalised over the kept labels. What a
        pre-training run with auxiliary classes does before it saves the model."""
        rows = torch.as_tensor(index, dtype=torch.long)
        for trunk in (self, *self.others):
            head = nn.Linear(trunk.head.in_features, len(index))
            head.weight.copy_(trunk.head.weight[rows])
            head.bias.copy_(trunk.head.bias[rows])
            bias = tuple(trunk.cfg.head_bias[i] for i in index) if trunk.cfg.head_bias else ()
            trunk.head, trunk.cfg = head, replace(trunk.cfg, num_labels=len(index), head_bias=bias)
        if self.stats_head is not None:
            self.stats_head.keep(rows)

    def layout_ids(self, layouts: list[str]) -> torch.Tensor:
        """Source layout ids -> embedding indices (unknown layouts share the 'unified' slot)."""
        index = {name: i for i, name in enumerate(self.cfg.layouts)}
        return torch.tensor([index.get(name, 0) for name in layouts], dtype=torch.long)

    def _stgcn(self, x: torch.Tensor, layout_ids: torch.Tensor) -> torch.Tensor:
        b = len(x)
        h = self.input(x) + self.joint_emb + self.time_emb[:, None, :]
        h = h + self.layout_emb(layout_ids)[:, None, None, :]            # [B, T, J, D]
        for block in self.blocks:
            h = block(h)                                                  # -> [B, T', J, D]
        h = torch.einsum("pj,btjd->btpd", self.parts, h)                  # [B, T', P, D]
        k = self.cfg.time_chunks
        return h.reshape(b, k, self.cfg.steps // k, h.shape[2], -1).mean(2)  # [B, K, P, D]

    def forward(self, x: torch.Tensor, layout_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t, _, _ = x.shape  # x [B, T, J, C]
        if t != self.cfg.frames:
            raise ValueError(f"encoder built for {self.cfg.frames} frames, got {t}")
        h = self.tcn(x, layout_ids) if self.cfg.arch == "tcn" else self._stgcn(x, layout_ids)  # [B, K, P, D]
        st = self.out_norm(h.transpose(1, 2).reshape(b, -1, self.cfg.dim) + self.token_pos)  # [B, P*K, D]
        q = self.queries.expand(b, -1, -1)
        sem, _ = self.attn(q, st, st)                                     # [B, Q, D]
        sem = self.out_norm(sem + q)
        pooled = sem.mean(1)                                              # [B, D]
        out = {"st_tokens": st, "sem_tokens": sem, "pooled": pooled, "logits": self.head(pooled)}
        if self.others or self.stats_head is not None:
            others = [m(x, layout_ids) for m in self.others]
            members = [out["logits"]] + [o["logits"] for o in others]
            out["member_logits"] = torch.stack(members)                   # [M, B, L]
            out["member_pooled"] = torch.stack([pooled] + [o["pooled"] for o in others])  # [M, B, D]
            if self.stats_head is not None and bool(self.stats_head.fitted):
                members.append(self.stats_head(x))
            # log of the mean probability: its softmax is the average of the members' distributions
            out["logits"] = torch.logsumexp(torch.stack(members).log_softmax(-1), 0) - math.log(len(members))
        if self.cfg.head_bias:   # after training: the label shift (train/label_shift.py)
            out["logits"] = out["logits"] + out["logits"].new_tensor(self.cfg.head_bias)
        return out
