"""Stage 2: skeleton-language alignment (EAI-LLM's contrastive stage, LLaVA's projector stage).

Each window's semantic tokens (and, with ``projector.evidence_tokens``, the tokens made from its
measured descriptors) go through the projector into the LLM's embedding space, are pooled
(``[B, H]``) and, for a text encoder of another size, mapped by a small trainable head to its
dimension; a symmetric InfoNCE (``losses.clip_loss``) pulls them towards the frozen text embedding
of the window's text and away from the other labels' texts. A window's text is its label prompt
("a sad person") or, with probability ``align.describe``, a description of it written from its
own measured descriptors ("Looks sad: slow walk (0.60 m/s), head lowered 25°."). Windows of the
same label are positives of each other (``positives``), so a batch never pushes two sad windows
apart.

Text encoders (``align.text_encoder``): ``minilm`` (all-MiniLM-L6-v2, 384-d, through the head) or
``llm`` (the LLM's mean input token embedding, 576-d, no head: the projector output itself is
aligned). Only the projector and the head train (and the encoder with ``align.train_encoder``,
then with its label head's cross-entropy added, ``align.head_weight``, so the fast head path keeps
matching the features it reads); the LLM is never run here. Evaluation: zero-shot label retrieval
on the held-out clips (the nearest label prompt), before (``init_*``) and after training.

    bodytalk train --config align --out runs/align init=runs/pretrain_sup/checkpoint
    bodytalk train --config align align.text_encoder=llm --out runs/align_llm
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from bodytalk.model import checkpoint
from bodytalk.model.text import evidence_text
from bodytalk.train import config as config_io, label_cues, warmstart
from bodytalk.train.config import strict
from bodytalk.train.data import DataConfig
from bodytalk.train.windowset import WindowSet
from bodytalk.train.loop import OptimConfig, RuntimeConfig, Trainer
from bodytalk.train.losses import clip_loss, head_loss
from bodytalk.train.rundir import RunDir
from bodytalk.train.text_encoder import TextEncoder, create as create_text_encoder

LABEL_PROMPT = "a {label} person"


@strict
@dataclass(frozen=True)
class AlignOptions:
    text_encoder: Literal["minilm", "llm"] = "minilm"
    train_encoder: bool = False
    head_weight: float = 1.0       # with train_encoder: cross-entropy on the encoder's label head too,
                                   # so the fast head path stays fitted to the features it reads
    describe: float = 0.5          # share of windows whose text is a description, not the label prompt
    temperature: float = 0.07      # CLIP's initial temperature
    learn_cues: bool = False       # learn the explanation cues from the training windows first (label_cues.py)

    def __post_init__(self) -> None:
        if not (0 <= self.describe <= 1 and self.temperature > 0 and self.head_weight >= 0):
            raise ValueError(f"need 0 <= describe <= 1, temperature > 0 and head_weight >= 0: {self}")


@strict
@dataclass(frozen=True)
class Config:
    stage: Literal["align"]
    data: DataConfig
    init: str | None = None        # checkpoint to start from (pre-training); None: a fresh encoder
    mg_cues: bool | None = None    # micro-gestures join the evidence (None: as the init checkpoint)
    align: AlignOptions = field(default_factory=AlignOptions)
    encoder: dict[str, Any] = field(default_factory=dict)    # EncoderConfig fields (fresh encoder only)
    projector: dict[str, Any] = field(default_factory=dict)  # hidden, use_st_tokens, use_sem_tokens, evidence_tokens, head_evidence
    llm: dict[str, Any] = field(default_factory=dict)        # LLMConfig fields: whose embedding space
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adamw", lr=1e-3, weight_decay=0.01,
                                                                   batch_size=64, epochs=20, schedule="cosine",
                                                                   warmup_epochs=1, reference_epochs=None))
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    seed: int = 0
    out: str = "runs/align"

    def __post_init__(self) -> None:
        warmstart.check_sections(self.encoder, self.projector, self.llm)


def label_texts(labels: tuple[str, ...]) -> list[str]:
    return [LABEL_PROMPT.format(label=evidence_text.canonical_label(lab).replace("-", " ")) for lab in labels]


class AlignModel(nn.Module):
    """Encoder + projector + head; ``forward`` -> the InfoNCE loss of a batch (what DDP wraps).

    ``bank [L + N, E]``: the label prompts' embeddings, then one description per training window;
    ``features [N, F]``: each training window's evidence features (the projector's evidence tokens)."""

    def __init__(self, encoder, projector, text_dim: int, bank: torch.Tensor, features: torch.Tensor,
                 n_labels: int, opts: AlignOptions) -> None:
        super().__init__()
        self.n_labels, self.opts = n_labels, opts
        self.encoder, self.projector = encoder, projector
        hidden = projector.cfg.out_dim
        self.head = nn.Identity() if text_dim == hidden else nn.Linear(hidden, text_dim)
        self.register_buffer("bank", bank, persistent=False)
        self.register_buffer("features", features, persistent=False)
        self.encoder.requires_grad_(opts.train_encoder)

    def train(self, mode: bool = True) -> "AlignModel":
        super().train(mode)
        self.encoder.train(mode and self.opts.train_encoder)   # a frozen encoder keeps dropout off
        return self

    def embed(self, x: torch.Tensor, layout: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Windows + evidence features ``[B, F]`` -> (pooled projected semantic and evidence tokens
        through the head ``[B, E]``, the encoder's outputs)."""
        enc = self.encoder(x, layout)
        tokens = self.projector(enc, features)                                  # [B, S, H]
        p = self.projector.cfg
        q = self.encoder.cfg.semantic_tokens * p.use_sem_tokens + p.evidence_tokens or tokens.shape[1]
        return self.head(tokens[:, :q].mean(1)), enc

    def forward(self, x, layout, label, index, draw) -> dict[str, torch.Tensor]:
        describe = (draw % 1000).float() / 1000 < self.opts.describe           # [B] this epoch's choice
        text = self.bank[torch.where(describe, index + self.n_labels, label)]  # [B, E]
        z, enc = self.embed(x, layout, self.features[index])
        positives = label[:, None] == label[None, :]                            # same label: positive
        contrast = clip_loss(z, text, self.opts.temperature, positives)
        out = {"contrast": contrast.detach(), "described": describe.float().mean()}
        loss = contrast
        if self.opts.train_encoder and self.opts.head_weight:
            head = head_loss(enc, label)
            loss = loss + self.opts.head_weight * head
            out["head_loss"] = head.detach()
        return {"loss": loss, **out}


def _retrieval(model: AlignModel, data: warmstart.TaggedWindows, features: torch.Tensor, labels: torch.Tensor,
               y: np.ndarray, device: str) -> dict[str, float]:
    """Zero-shot label retrieval: each window's nearest label prompt (cosine)."""
    from sklearn.metrics import f1_score

    z = torch.cat([model.embed(x.to(device), layout.to(device), features[index].to(device))[0].cpu()
                   for x, layout, _, index, _ in DataLoader(data, batch_size=256)])
    pred = (F.normalize(z, dim=1) @ labels.T).argmax(1).numpy()
    return {"retrieval_acc": float((pred == y).mean()),
            "retrieval_f1": float(f1_score(y, pred, average="macro", zero_division=0))}


def run(cfg: Config, out: str | Path | None = None,
        on_epoch_end: Callable[[int, dict], None] | None = None) -> Path:
    return warmstart.run_stage(cfg, out, lambda c, stage: _run(c, stage, on_epoch_end), "align")


def _run(cfg: Config, stage: warmstart.Stage, on_epoch_end) -> Path:
    out, info, windows, split, train, test, start = stage
    a = cfg.align
    text = create_text_encoder(a.text_encoder, start.cfg.llm)
    progress = cfg.runtime.progress and info.main
    evidence = warmstart.evidence_of(train, start.cfg.mg_cues, progress)
    model_cfg = start.cfg
    if a.learn_cues:   # before any text is written: the targets of this stage and the next cite them
        groups = [train.clips[c].groups.get(cfg.data.split.group, "") for c in train.clip]
        model_cfg = dataclasses.replace(start.cfg, label_cues=label_cues.learn(evidence.descriptors, train.label,
                                                                               windows.labels, groups))
    bank = _bank(text, train, windows.labels, cfg.seed, evidence, evidence_text.cue_table(model_cfg.label_cues))
    model = AlignModel(start.encoder, start.projector, text.dim, bank, evidence.features, len(windows.labels), a)
    enc = start.cfg.encoder
    data = warmstart.TaggedWindows(train, enc.layouts, enc.frames, seed=cfg.seed, version=enc.features)
    evaluate = None   # a split that holds out nothing (``none``) measures nothing
    if len(test):
        test_set = warmstart.TaggedWindows(test, enc.layouts, enc.frames, version=enc.features)
        test_features = warmstart.evidence_of(test, start.cfg.mg_cues, progress).features
        prompts = bank[:len(windows.labels)]
        evaluate = lambda m: _retrieval(m, test_set, test_features, prompts, test.label, info.device)  # noqa: E731

    resolved = config_io.to_dict(dataclasses.replace(cfg, out=str(out)))
    rundir = RunDir(out, resolved, main=info.main, resume=cfg.runtime.resume)
    trainer = Trainer(rundir, model, cfg.optim, cfg.runtime, cfg.seed, info)
    baseline = {}
    if info.main and evaluate:   # retrieval before training: what alignment adds
        with torch.no_grad():
            baseline = {f"init_{k}": v for k, v in evaluate(model.eval()).items()}
    history = trainer.fit(data, _step, evaluate, on_epoch_end)
    if info.main:
        final = {k: v for k, v in history[-1].items() if k.startswith("retrieval_")} | baseline
        meta = warmstart.stage_meta("align", cfg, out, split, windows, final, start.meta,
                                    text_encoder=a.text_encoder, text_dim=text.dim, train_encoder=a.train_encoder)
        checkpoint.save(rundir.checkpoint, model_cfg, model.encoder.cpu(), model.projector.cpu(), meta=meta)
        rundir.write_results({**meta, "train": train.summary(), "test": test.summary(), "history": history})
    info.barrier()
    return out


def _step(model: nn.Module, batch) -> dict[str, torch.Tensor]:
    return model(*batch)


def _bank(text: TextEncoder, train: WindowSet, labels: tuple[str, ...], seed: int,
          evidence: warmstart.Evidence, cues: evidence_text.Cues) -> torch.Tensor:
    """``[L + N, E]``: label prompt embeddings, then one seeded description per training window."""
    descriptions = [evidence_text.explain_template(d, labels[y], np.random.default_rng((seed, i)), cues=cues)
                    for i, (d, y) in enumerate(zip(evidence.descriptors, train.label))]
    return text.encode(label_texts(labels) + descriptions)
