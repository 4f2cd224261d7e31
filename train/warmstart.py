"""What the alignment and instruction stages share: the model they start from (the previous
stage's checkpoint, ``init:``, or fresh), leak checks against it, per-window evidence
(descriptors, which their text targets are written from and the projector's evidence tokens read),
and the checkpoint meta they record.

A stage that starts from a checkpoint keeps its encoder (and its label order); the projector is
kept when it already maps into the configured LLM (and no projector setting changes it), else
made fresh for that LLM's hidden size. The split is
recomputed from the stage's own data config, and training refuses to start when the starting
checkpoint trained on clips this stage tests on.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from bodytalk.model import checkpoint
from bodytalk.model.skeleton import descriptors as desc, mg_rules
from bodytalk.model.text import evidence_text
from bodytalk.model.checkpoint import ModelConfig
from bodytalk.model.encoder import EncoderConfig, SkeletonEncoder
from bodytalk.model.llm.hf import LLMConfig
from bodytalk.model.skeleton.microgestures import MGResult
from bodytalk.model.projector import Projector, ProjectorConfig, evidence_dim, evidence_features
from bodytalk.train import config as config_io
from bodytalk.train.config import ConfigError
from bodytalk.train.data import DataConfig, DatasetError, load_split_ranked
from bodytalk.train.windowset import WindowSet
from bodytalk.train.loop import setup
from bodytalk.train.splits import Split, SplitError
from bodytalk.train.views import WindowDataset

_PROJECTOR_KEYS = {"hidden", "use_st_tokens", "use_sem_tokens", "evidence_tokens", "head_evidence", "head_prior"}
_LLM_KEYS = {f.name for f in dataclasses.fields(LLMConfig)}
_ENCODER_KEYS = {f.name for f in dataclasses.fields(EncoderConfig)} - {"num_labels"}


def check_sections(encoder: dict, projector: dict, llm: dict) -> None:
    """Config-time validation of the free-form model sections (unknown keys named)."""
    for name, given, known in (("encoder", encoder, _ENCODER_KEYS), ("projector", projector, _PROJECTOR_KEYS),
                               ("llm", llm, _LLM_KEYS)):
        if unknown := sorted(set(given) - known):
            raise ValueError(f"{name}: unknown key(s) {unknown}; known: {', '.join(sorted(known))}")
    LLMConfig(**llm)


def llm_hidden(base: str) -> int:
    """Hidden size of a base LLM from its config alone (no weights loaded)."""
    from transformers import AutoConfig

    from bodytalk.model.llm.weights import resolve_base

    return AutoConfig.from_pretrained(resolve_base(base), local_files_only=True).hidden_size


@dataclass
class Start:
    cfg: ModelConfig
    encoder: SkeletonEncoder
    projector: Projector
    adapter: Path | None     # the init checkpoint's LoRA adapter, if any
    meta: dict               # the init checkpoint's meta ({} when fresh)


def data_config(data: DataConfig, init: str | None) -> DataConfig:
    """A stage starting from a checkpoint reads its data in the checkpoint's label order."""
    if init is None or data.labels is not None:
        return data
    return dataclasses.replace(data, labels=checkpoint.load(init).cfg.labels)


def start(init: str | None, labels: tuple[str, ...], encoder: dict, projector: dict, llm: dict,
          seed: int, mg_cues: bool | None = None) -> Start:
    """The model a stage trains: from ``init`` (a checkpoint folder) or fresh, with an LLM config.
    ``mg_cues`` None keeps the checkpoint's setting (fresh: off)."""
    torch.manual_seed(seed)
    if init is None:
        base = LLMConfig(**llm)
        enc = SkeletonEncoder(EncoderConfig(num_labels=len(labels), **encoder))
        ck_llm, ck_proj, adapter, meta, ck_cues, learned = None, None, None, {}, False, None
    else:
        ck = checkpoint.load(init)
        if differ := sorted(k for k, v in encoder.items() if getattr(ck.cfg.encoder, k) != _same_type(v)):
            raise ConfigError(f"encoder settings {differ} differ from those of init={init}; the encoder comes "
                              "from the checkpoint: drop them, or start fresh (init: null)")
        if tuple(labels) != ck.cfg.labels:
            raise ConfigError(f"the data's labels {labels} differ from init={init}'s {ck.cfg.labels}")
        base = LLMConfig(**{**dataclasses.asdict(ck.cfg.llm or LLMConfig()), **llm})
        enc, ck_llm, ck_proj, adapter, meta = ck.encoder, ck.cfg.llm, ck.projector, ck.adapter, ck.meta
        ck_cues, learned = ck.cfg.mg_cues, ck.cfg.label_cues   # learned explanation cues carry on (align.learn_cues)
    cues = ck_cues if mg_cues is None else mg_cues
    head = projector.get("head_evidence", ck_proj.cfg.head_evidence if ck_proj is not None else False)
    projector = {**projector, "evidence_dim": evidence_dim(cues, len(labels) * bool(head))}
    same_space = ck_proj is not None and ck_llm is not None and ck_llm.base == base.base
    if same_space:   # the projector already maps into this LLM: keep it (settings given override)
        proj_cfg = dataclasses.replace(ck_proj.cfg, **projector)
    else:
        hidden = llm_hidden(base.base)
        proj_cfg = ProjectorConfig(in_dim=enc.cfg.dim, out_dim=hidden, hidden=projector.get("hidden", hidden),
                                   **{k: v for k, v in projector.items() if k != "hidden"})
    if same_space and ck_proj.cfg == proj_cfg:
        proj = ck_proj
    else:
        proj = Projector(proj_cfg)
        if same_space:  # e.g. evidence tokens added: keep the trained token MLP, the new parts start fresh
            fresh = proj.state_dict()
            proj.load_state_dict({k: v for k, v in ck_proj.state_dict().items()
                                  if k in fresh and fresh[k].shape == v.shape}, strict=False)
    if adapter is not None and (ck_llm.base != base.base or _lora(ck_llm) != _lora(base)):
        adapter = None  # another base or LoRA shape: the old adapter cannot continue
    cfg = ModelConfig(labels=tuple(labels), encoder=enc.cfg, projector=proj_cfg, llm=base, mg_cues=cues,
                      label_cues=learned)
    return Start(cfg, enc, proj, adapter, meta)


def _same_type(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _lora(c: LLMConfig) -> tuple:
    return c.lora_r, c.lora_alpha, tuple(c.lora_targets)


def check_no_leak(meta: dict, split: Split, init: str | None) -> None:
    """Refuse to test on clips the starting checkpoint trained on (same clip ids)."""
    trained = set(meta.get("split", {}).get("train", ()))
    if leaked := sorted(trained & set(split.test)):
        raise SplitError(f"init={init} trained on {len(leaked)} clip(s) this stage tests on (e.g. "
                         f"{', '.join(leaked[:3])}): use the same data and split config in every stage")


@dataclass
class Evidence:
    """What the text targets and the projector's evidence tokens read, per window of a set."""
    descriptors: list[desc.Descriptors]
    mgs: list[MGResult | None]      # geometric micro-gestures (None each without MG cues)
    features: torch.Tensor          # [N, evidence_dim]

    def lines(self) -> list[str]:
        """The prompt's evidence text per window (what ``EmotionModel.evidence_line`` renders)."""
        return [evidence_text.render(d, mgs=m) for d, m in zip(self.descriptors, self.mgs)]


def evidence_of(windows: WindowSet, mg_cues: bool, progress: bool = False) -> Evidence:
    """Measured descriptors (and micro-gestures with ``mg_cues``) of every window."""
    ds, ms = [], []
    for i in tqdm(range(len(windows)), desc="descriptors", unit="win", disable=not progress, leave=False):
        j, c = windows.joints[i], windows.confidence[i]
        ds.append(desc.compute(j, c, windows.fps))
        ms.append(mg_rules.detect(j, c, windows.fps) if mg_cues else None)
    feats = np.stack([evidence_features(d, m) for d, m in zip(ds, ms)]) if ds else np.zeros((0, evidence_dim(mg_cues)))
    return Evidence(ds, ms, torch.from_numpy(feats.astype(np.float32)))


def pick(windows: WindowSet, count: int | None, seed: int) -> WindowSet:
    """A seeded random subset of ``count`` windows (all when None or more than there are)."""
    if count is None or count >= len(windows):
        return windows
    keep = np.sort(np.random.default_rng(seed).choice(len(windows), count, replace=False))
    return windows.subset(keep)


class TaggedWindows(WindowDataset):
    """Items ``(x [T,17,C], layout [], label [], index [], draw [])``: ``index`` finds the window's
    evidence, ``draw`` seeds its text choices for this epoch (from ``(seed, epoch, index)``, so a
    resumed run draws what an uninterrupted one would)."""

    def __getitem__(self, i: int):
        x, layout, label = super().__getitem__(i)
        draw = int(np.random.SeedSequence((self.seed, self.epoch, i)).generate_state(1)[0])
        return x, layout, label, torch.tensor(i), torch.tensor(draw)


def stage_meta(stage: str, cfg: Any, out: Path, split: Split, windows: WindowSet, metrics: dict,
               start_meta: dict, **extra: Any) -> dict:
    """Checkpoint meta: the split and the data config (``bodytalk eval`` rebuilds the test set and
    the baselines' training set from them), metrics, and the chain of stages so far."""
    record = {"stage": stage, "run": str(out), "metrics": metrics, **extra}
    return {"stage": stage, "split": split.to_dict(), "split_name": split.name,
            "data_config": config_io.to_dict(cfg.data), "datasets": [d.uri for d in cfg.data.datasets],
            "data": windows.summary(), "metrics": metrics, "seed": cfg.seed, "init": cfg.init, "run": str(out),
            "stages": [*start_meta.get("stages", _first(start_meta)), record], **extra}


def _first(meta: dict) -> list[dict]:
    """A pre-training checkpoint's meta as the first entry of the stage chain."""
    if not meta:
        return []
    return [{"stage": meta.get("stage", "pretrain"), "recipe": meta.get("recipe"), "run": meta.get("run"),
             "metrics": meta.get("metrics", {})}]


class Stage(NamedTuple):
    """What a later stage (align, instruct) starts from: its run context, data split and warm start."""
    out: Path
    info: Any                # loop.setup's device / rank information
    windows: WindowSet
    split: Split
    train: WindowSet
    test: WindowSet
    start: Start


def run_stage(cfg, out: str | Path | None, body: Callable[[Any, Stage], Path], doing: str) -> Path:
    """The prologue align and instruct share: set up the runtime, load and split the data, start from
    ``cfg.init`` (refusing a leak of the held-out windows into it), run ``body(cfg, stage)``."""
    info = setup(cfg.runtime, cfg.seed)
    windows, split, train, test = load_split_ranked(data_config(cfg.data, cfg.init), info, cfg.runtime.progress)
    if len(windows.labels) < 2:
        raise DatasetError(f"need at least 2 labels to {doing}, found {list(windows.labels)}")
    begun = start(cfg.init, windows.labels, dict(cfg.encoder), dict(cfg.projector), dict(cfg.llm), cfg.seed,
                  cfg.mg_cues)
    check_no_leak(begun.meta, split, cfg.init)
    return body(cfg, Stage(Path(out or cfg.out), info, windows, split, train, test, begun))
