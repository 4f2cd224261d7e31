"""Stage 3: LoRA instruction tuning on prompt QA built from labelled windows (EAI-LLM).

Every training window gets one of two tasks per epoch (a share ``instruct.explain_share`` of each
shuffled batch explains, the rest recognise):

- recognition: the RECOGNITION prompt (skeleton tokens + the window's descriptor line; with
  ``projector.evidence_tokens`` RECOGNITION_TOKENS, the descriptors as tokens); the loss is
  the cross-entropy over the label set with ``SkeletonLLM.label_log_likelihoods`` as logits --
  exactly the scoring ``EmotionModel.recognise`` uses at inference;
- explanation: the EXPLANATION prompt naming the true label, followed by a target written from the
  window's own measured descriptors (``evidence_text.explain_template``, drawn anew each epoch), so
  every target sentence is true of its window; next-token loss on the target tokens only.

LoRA (paper: r 64, alpha 16, dropout 0.05, max LR 1e-5; ``llm:`` section) trains with the
projector (``instruct.train_projector``) and optionally the encoder. The base LLM stays frozen in
its own dtype (bf16 on CPU is fine; the LoRA weights are float32). ``instruct.cache_prefix``
computes the prompt prefix shared by every window once per step without gradient (LoRA then
learns from the per-window part: skeleton tokens, descriptors, answer), which saves a third of
the tokens. The end evaluation scores held-out windows through ``EmotionModel`` by both label
paths. Writes a full checkpoint: encoder, projector, adapter, config, meta (split, metrics).

    bodytalk train --config instruct --out runs/instruct init=runs/align/checkpoint
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bodytalk.model.checkpoint import ModelConfig
from bodytalk.model.text import evidence_text
from bodytalk.model.constants import EXPLANATION, RECOGNITION, RECOGNITION_TOKENS
from bodytalk.model.inference import EmotionModel
from bodytalk.model.llm.hf_conventions import kv_name
from bodytalk.model.llm.hf import SkeletonLLM
from bodytalk.model.llm.prompt import PromptBuilder
from bodytalk.model.projector import head_prior_logits
from bodytalk.train import baselines, config as config_io, label_bias, warmstart
from bodytalk.train.config import strict
from bodytalk.train.data import DataConfig
from bodytalk.train.windowset import WindowSet
from bodytalk.train.loop import OptimConfig, RuntimeConfig, Trainer
from bodytalk.train.rundir import RunDir

log = logging.getLogger("bodytalk.train")


@strict
@dataclass(frozen=True)
class InstructOptions:
    explain_share: float = 0.5     # share of each batch trained on explanations (the rest: recognition)
    explain_weight: float = 1.0    # weight of the explanation loss
    train_projector: bool = True
    train_encoder: bool = False
    cache_prefix: bool = True      # shared prompt prefix once per step, without gradient (faster)
    max_windows: int | None = None  # train on a seeded subset of the training windows (CPU budget)
    eval_windows: int | None = 64  # held-out windows both label paths score at the end (None: all)
    adapter_dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # on disk (small demo files)
    label_bias_windows: int = 0    # training windows per label the LLM's label-word bias is measured on (0: none)

    def __post_init__(self) -> None:
        if not (0 <= self.explain_share <= 1 and self.explain_weight >= 0):
            raise ValueError(f"need 0 <= explain_share <= 1 and explain_weight >= 0: {self}")
        if (self.max_windows is not None and self.max_windows < 1) or (self.eval_windows is not None
                                                                       and self.eval_windows < 1):
            raise ValueError("max_windows and eval_windows must be >= 1 (or null for all)")
        if self.label_bias_windows < 0:
            raise ValueError(f"label_bias_windows must be >= 0, not {self.label_bias_windows}")


@strict
@dataclass(frozen=True)
class Config:
    stage: Literal["instruct"]
    data: DataConfig
    init: str | None = None        # checkpoint to start from (alignment); None: fresh encoder + projector
    mg_cues: bool | None = None    # micro-gestures join the evidence (None: as the init checkpoint)
    instruct: InstructOptions = field(default_factory=InstructOptions)
    encoder: dict[str, Any] = field(default_factory=dict)    # EncoderConfig fields (fresh encoder only)
    projector: dict[str, Any] = field(default_factory=dict)  # hidden, use_st_tokens, use_sem_tokens, evidence_tokens, head_evidence, head_prior
    llm: dict[str, Any] = field(default_factory=dict)        # LLMConfig fields: base, dtype, lora_*
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adamw", lr=1e-5, weight_decay=0.0,
                                                                   batch_size=16, epochs=3, schedule="cosine",
                                                                   warmup_epochs=0.1, reference_epochs=None))
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    seed: int = 0
    out: str = "runs/instruct"

    def __post_init__(self) -> None:
        warmstart.check_sections(self.encoder, self.projector, self.llm)


class InstructModel(nn.Module):
    """Encoder + projector + LoRA LLM; ``forward`` -> the batch's losses (what DDP wraps)."""

    def __init__(self, encoder, projector, llm: SkeletonLLM, labels: tuple[str, ...], evidence: warmstart.Evidence,
                 opts: InstructOptions, cues: evidence_text.Cues = evidence_text.LABEL_CUES) -> None:
        super().__init__()
        self.encoder, self.projector, self.llm = encoder, projector, llm
        self.labels, self.evidence, self.opts, self.cues = labels, evidence.descriptors, opts, cues
        self.lines = evidence.lines()                                           # evidence text per window
        self.register_buffer("features", evidence.features, persistent=False)   # [N, F] evidence features
        recognise = RECOGNITION_TOKENS if projector.cfg.evidence_tokens else RECOGNITION
        self.prompts = {kind: PromptBuilder(llm.tokenizer, llm.embed, template, labels)
                        for kind, template in (("recognise", recognise), ("explain", EXPLANATION))}
        encoder.requires_grad_(opts.train_encoder)
        projector.requires_grad_(opts.train_projector)

    def train(self, mode: bool = True) -> "InstructModel":
        super().train(mode)
        self.encoder.train(mode and self.opts.train_encoder)   # frozen parts keep dropout off
        self.projector.train(mode and self.opts.train_projector)
        return self

    def state_dict(self, *args, **kwargs) -> dict:
        """Without the frozen base LLM (hundreds of MB that never change): what resume needs."""
        return {k: v for k, v in super().state_dict(*args, **kwargs).items() if _trained(k)}

    def load_state_dict(self, state: dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state, strict=False, assign=assign)
        if strict and (result.unexpected_keys or [k for k in result.missing_keys if _trained(k)]):
            raise RuntimeError(f"state does not fit: missing {result.missing_keys[:5]}, "
                               f"unexpected {result.unexpected_keys[:5]}")
        return result

    def forward(self, x, layout, label, index, draw) -> dict[str, torch.Tensor]:
        enc = self.encoder(x, layout)
        tokens = self.projector(enc, self.features[index])                      # [B, S, H]
        b = len(x)
        n_exp = int(round(b * self.opts.explain_share))                         # the batch is shuffled
        out, total = {}, tokens.new_zeros(())
        if n_exp < b:
            scores = self._label_scores(tokens[n_exp:], index[n_exp:])          # [b - n_exp, L]
            if self.projector.cfg.head_prior:
                scores = head_prior_logits(scores, enc["logits"][n_exp:].to(scores.device))
            rec = F.cross_entropy(scores, label[n_exp:].to(scores.device))
            total = total + rec * (b - n_exp) / b
            out |= {"rec_loss": rec.detach(), "rec_acc": (scores.argmax(1).cpu() == label[n_exp:].cpu()).float().mean()}
        if n_exp:
            exp = self._explanation_nll(tokens[:n_exp], index[:n_exp], label[:n_exp], draw[:n_exp])
            total = total + self.opts.explain_weight * exp * n_exp / b
            out["exp_loss"] = exp.detach()
        return {"loss": total, **out}

    def _prompt(self, kind: str, tokens, index, labels=None):
        builder = self.prompts[kind]
        prefix = self.llm.cache_prefix(builder.prefix_embeds()) if self.opts.cache_prefix else None
        batch = builder.build(tokens, [self.lines[i] for i in index.tolist()], labels=labels,
                              with_prefix=prefix is None)
        return batch, prefix

    def _label_scores(self, tokens, index) -> torch.Tensor:
        batch, prefix = self._prompt("recognise", tokens, index)
        return self.llm.label_log_likelihoods(batch.inputs_embeds, batch.attention_mask, self.labels, prefix)

    def _explanation_nll(self, tokens, index, label, draw) -> torch.Tensor:
        """Mean next-token loss over the target tokens (prompt and padding excluded)."""
        names = [self.labels[y] for y in label.tolist()]
        batch, prefix = self._prompt("explain", tokens, index, labels=names)
        targets = [evidence_text.explain_template(self.evidence[i], name, np.random.default_rng(d), cues=self.cues)
                   + self.llm.turn_end
                   for i, name, d in zip(index.tolist(), names, draw.tolist())]
        ids = self.llm.tokenizer(targets, add_special_tokens=False)["input_ids"]
        b, n = batch.attention_mask.shape
        width = max(map(len, ids))
        target = torch.zeros(b, width, dtype=torch.long)                        # right-padded [B, Lt]
        tmask = torch.zeros(b, width, dtype=torch.long)
        for row, seq in enumerate(ids):
            target[row, :len(seq)] = torch.tensor(seq)
            tmask[row, :len(seq)] = 1
        device = self.llm.config.device
        target, tmask = target.to(device), tmask.to(device)
        embeds = torch.cat([batch.inputs_embeds, self.llm.embed(target)], dim=1)  # [B, N + Lt, H]
        mask = torch.cat([batch.attention_mask.to(device), tmask], dim=1)
        cache = None
        if prefix is not None:
            mask = torch.cat([mask.new_ones(b, prefix.length), mask], dim=1)
            cache = prefix.expand(b, self.llm.lm.config)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -(n + width):]
        logits = self.llm.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                             **{kv_name(self.llm.lm): cache}, use_cache=cache is not None,
                             logits_to_keep=width + 1).logits
        # logits at the prompt's last token predict target 0, at target t predict target t + 1
        nll = -logits[:, :-1].float().log_softmax(-1).gather(-1, target[..., None])[..., 0]   # [B, Lt]
        return (nll * tmask).sum() / tmask.sum()


def _trained(key: str) -> bool:
    return not key.startswith("llm.") or "lora_" in key


def run(cfg: Config, out: str | Path | None = None,
        on_epoch_end: Callable[[int, dict], None] | None = None) -> Path:
    return warmstart.run_stage(cfg, out, lambda c, stage: _run(c, stage, on_epoch_end), "instruction-tune")


def _run(cfg: Config, stage: warmstart.Stage, on_epoch_end) -> Path:
    out, info, windows, split, train, test, start = stage
    opts = cfg.instruct
    llm_cfg = dataclasses.replace(start.cfg.llm, device=info.device)
    llm = SkeletonLLM.load(llm_cfg)
    if start.adapter is not None:
        llm.load_adapter(start.adapter, trainable=True)
    else:
        llm.add_lora()
    fold_train, train = train, warmstart.pick(train, opts.max_windows, cfg.seed)
    evidence = warmstart.evidence_of(train, start.cfg.mg_cues, cfg.runtime.progress and info.main)
    model = InstructModel(start.encoder, start.projector, llm, windows.labels, evidence, opts,
                          evidence_text.cue_table(start.cfg.label_cues))
    enc = start.cfg.encoder
    data = warmstart.TaggedWindows(train, enc.layouts, enc.frames, seed=cfg.seed, version=enc.features)
    held = warmstart.pick(test, opts.eval_windows, cfg.seed)

    def evaluate(m: InstructModel) -> dict[str, float]:
        return recognition_scores(EmotionModel(start.cfg, m.encoder, m.projector, m.llm), held)
    # (a split that holds out nothing measures nothing: better_path then keeps the head)

    resolved = config_io.to_dict(dataclasses.replace(cfg, out=str(out)))
    rundir = RunDir(out, resolved, main=info.main, resume=cfg.runtime.resume)
    trainer = Trainer(rundir, model, cfg.optim, cfg.runtime, cfg.seed, info)
    history = trainer.fit(data, lambda m, batch: m(*batch), evaluate if len(held) else None, on_epoch_end)
    if info.main:
        final = {k: v for k, v in history[-1].items() if k.startswith("test_")}
        served = _served_config(model, start, fold_train, opts, cfg.seed)
        if served.label_bias is not None and len(held):   # score the LLM path as it will serve
            final = {**recognition_scores(EmotionModel(served, model.encoder, model.projector, llm), held),
                     "test_llm_acc_without_label_bias": final.get("test_llm_acc")}
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        meta = warmstart.stage_meta("instruct", cfg, out, split, windows, final, start.meta,
                                    train_windows=len(train), eval_windows=len(held), trainable_params=trainable,
                                    windows_per_s=[h["windows_per_s"] for h in history])
        meta["label_path"] = better_path(final)
        model.cpu()
        EmotionModel(dataclasses.replace(served, llm=dataclasses.replace(llm_cfg, device="cpu")),
                     model.encoder, model.projector, llm).save(rundir.checkpoint, meta)
        _cast_adapter(rundir.checkpoint / "adapter", opts.adapter_dtype)
        rundir.write_results({**meta, "train": train.summary(), "test": test.summary(), "history": history})
    info.barrier()
    return out


def _served_config(model: InstructModel, start: warmstart.Start, train: WindowSet, opts: InstructOptions,
                   seed: int) -> ModelConfig:
    """The checkpoint's config, with the LLM's label-word bias measured on the fold's training windows
    (never its held-out ones) when ``opts.label_bias_windows``; without it when that cannot be measured."""
    if not opts.label_bias_windows:
        return start.cfg
    model.eval()
    try:
        bias = label_bias.measure(EmotionModel(start.cfg, model.encoder, model.projector, model.llm), train,
                                  opts.label_bias_windows, seed)
        return dataclasses.replace(start.cfg, label_bias=bias)   # validated: one finite value per label
    except ValueError as err:   # no readable window, or a value no checkpoint may hold: the run is kept
        log.warning("the LLM's label bias is not stored: %s", err)
        return start.cfg


def recognition_scores(model: EmotionModel, ws: WindowSet) -> dict[str, float]:
    """Window accuracy of both label paths on ``ws`` (unreadable windows count as wrong)."""
    inputs = baselines.windows_of(ws)
    pred = {path: baselines.predict(baselines.model_probs(model, inputs, path)) for path in ("llm", "head")}
    return {f"test_{path}_acc": float((p == ws.label).mean()) for path, p in pred.items()}


def better_path(metrics: dict[str, float]) -> str:
    """The label path measured better on the held-out windows (``test_<path>_acc``), the fast head on
    a tie: `bodytalk demo` labels with it (explanations still come from the LLM). A missing or NaN
    accuracy was not measured and loses to a measured one (``max`` alone would keep the head whenever
    either is NaN, since every comparison with NaN is false); with neither measured, the head."""
    def measured(path: str) -> float:
        value = metrics.get(f"test_{path}_acc")
        return -math.inf if value is None or math.isnan(value) else value

    return "llm" if measured("llm") > measured("head") else "head"


def _cast_adapter(folder: Path, dtype: str) -> None:
    """Rewrite the adapter's float tensors in ``dtype`` (loading casts them back to the LoRA dtype)."""
    if dtype == "float32":
        return
    from safetensors.torch import load_file, save_file

    file = folder / "adapter_model.safetensors"
    target = getattr(torch, dtype)
    save_file({k: v.to(target) if v.is_floating_point() else v for k, v in load_file(str(file)).items()}, str(file))
