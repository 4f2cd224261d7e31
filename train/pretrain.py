"""Stage 1: skeleton encoder pre-training, two recipes.

- ``supervised`` (EAI-LLM): cross-entropy on the encoder's label head; SGD lr 0.1, momentum 0.9,
  batch 64, 200 epochs, lr / 10 at epochs 100, 150 and 175 after a 5-epoch warm-up
  (``configs/pretrain_supervised.yaml``; ``optim.epochs=N`` compresses the same schedule).
  Evaluated on the held-out clips: window accuracy, macro-F1, and clip accuracy (mean
  probabilities over a clip's windows).
- ``stb`` (micro-gesture paper): self-supervised Spatial-Temporal-Balanced dual-stream
  contrastive learning on two augmented views (``losses.STBLoss``; MG augmentations by default,
  ``configs/pretrain_stb.yaml``). Evaluated by a linear probe: a logistic regression on the
  frozen encoder's stream features of the training windows, scored on the held-out ones; the
  same probe on the untrained encoder (``init_probe_*``) says what pre-training added.

Both write ``RUN/checkpoint/``: an encoder-only model checkpoint (no LLM: ``base_model`` None) whose meta
records the recipe, the split (clip ids) and the final metrics.

    bodytalk train --config pretrain_supervised optim.epochs=20 --out runs/sup
    bodytalk train --config pretrain_stb --out runs/stb
    torchrun --nproc-per-node 4 -m bodytalk.train.run --config pretrain_stb
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

from bodytalk.capture.layouts import BODY_PARTS
from bodytalk.model import checkpoint
from bodytalk.model.checkpoint import ModelConfig
from bodytalk.model.encoder import EncoderConfig, SkeletonEncoder
from bodytalk.model.projector import Projector
from bodytalk.train import config as config_io, label_shift
from bodytalk.train.adversary import Adversarial, group_index, group_loss
from bodytalk.train.augment import AugmentConfig, Augmenter
from bodytalk.train.config import strict
from bodytalk.train.data import DataConfig, DatasetError, load_split_ranked
from bodytalk.train.windowset import WindowSet
from bodytalk.train.loop import DistInfo, OptimConfig, RuntimeConfig, Trainer, setup
from bodytalk.train.losses import Fusion, STBLoss, class_weights, clip_weights, head_loss, streams
from bodytalk.train.rundir import RunDir
from bodytalk.train.views import WindowDataset


@strict
@dataclass(frozen=True)
class PretrainOptions:
    recipe: Literal["supervised", "stb"] = "supervised"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    temperature: float = 0.1       # stb: NT-Xent temperature
    fusion: Fusion = "uncertainty"  # stb: how the spatial and temporal losses are balanced
    cross_weight: float = 0.5      # stb: weight of the cross-stream agreement term
    proj_dim: int = 64             # stb: projection head output size
    probe_c: float = 1.0           # stb: inverse L2 strength of the linear probe
    balance: bool = False          # supervised: class-weighted loss (each label weighs as much in all)
    clip_balance: bool = False     # supervised: and within a label each clip as much as another
    label_smoothing: float = 0.0   # supervised
    adversary: float = 0.0         # supervised: reversed-gradient scale of a group classifier (train/adversary)
    adversary_group: str = "content"  # supervised: the clip group the adversary tries to name
    mixup: float = 0.0             # supervised: Beta(a, a) of input mixup between a batch's windows (0: off)
    label_shift: float = 0.0       # supervised: tau of the saved head's coverage bias (train/label_shift; 0: off)
    label_shift_group: str = "content"  # supervised: the clip group whose coverage of a label sets its bias

    def __post_init__(self) -> None:
        if self.recipe == "stb" and not self.augment.names:
            raise ValueError("pretrain.recipe=stb contrasts two augmented views: set pretrain.augment.policy")
        if self.clip_balance and (self.recipe != "supervised" or not self.balance):
            raise ValueError("pretrain.clip_balance refines the supervised recipe's balance: set pretrain.balance=true")
        if self.adversary < 0 or (self.adversary and self.recipe != "supervised"):
            raise ValueError(f"pretrain.adversary must be >= 0, and only the supervised recipe has one: {self.adversary}")
        if self.mixup < 0 or (self.mixup and self.recipe != "supervised"):
            raise ValueError(f"pretrain.mixup must be >= 0, and only the supervised recipe mixes: {self.mixup}")
        if self.label_shift < 0 or (self.label_shift and self.recipe != "supervised"):
            raise ValueError(f"pretrain.label_shift must be >= 0, and only the supervised recipe's head has one: "
                             f"{self.label_shift}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"pretrain.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not (self.temperature > 0 and self.cross_weight >= 0 and self.proj_dim > 0 and self.probe_c > 0):
            raise ValueError(f"need temperature > 0, cross_weight >= 0, proj_dim > 0, probe_c > 0: {self}")


# num_labels comes from the data, head_bias from pretrain.label_shift
_ENCODER_KEYS = {f.name for f in dataclasses.fields(EncoderConfig)} - {"num_labels", "head_bias"}


@strict
@dataclass(frozen=True)
class Config:
    stage: Literal["pretrain"]
    data: DataConfig
    pretrain: PretrainOptions = field(default_factory=PretrainOptions)
    encoder: dict[str, Any] = field(default_factory=dict)  # EncoderConfig fields (labels set num_labels)
    optim: OptimConfig = field(default_factory=OptimConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    seed: int = 0
    out: str = "runs/pretrain"

    def __post_init__(self) -> None:
        if unknown := sorted(set(self.encoder) - _ENCODER_KEYS):
            raise ValueError(f"encoder: unknown key(s) {unknown}; known: {', '.join(sorted(_ENCODER_KEYS))}")
        EncoderConfig(num_labels=2, **self.encoder)  # validates the values


class STBModel(nn.Module):
    """Encoder + STB loss in one module (what DDP wraps): two views -> loss dict."""

    def __init__(self, encoder: SkeletonEncoder, loss: STBLoss) -> None:
        super().__init__()
        self.encoder, self.loss = encoder, loss

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, layout: torch.Tensor) -> dict[str, torch.Tensor]:
        st = self.encoder(torch.cat([x1, x2]), torch.cat([layout, layout]))["st_tokens"]  # [2B, P*K, D]
        return self.loss(*st.chunk(2))


class _PerWindow(torch.utils.data.Dataset):
    """A window dataset whose items also carry the window's loss weight and group index:
    ``(*item, weight [], group [])``."""

    def __init__(self, base: WindowDataset, weight: np.ndarray, group: np.ndarray) -> None:
        self.base, self.weight, self.group = base, torch.from_numpy(weight), torch.from_numpy(group)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        return (*self.base[i], self.weight[i], self.group[i])

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)


def _supervised_step(weight: torch.Tensor | None, p: PretrainOptions):
    def step(model: nn.Module, batch) -> dict[str, torch.Tensor]:
        x, layout, y, *per_window = batch           # per_window: [B] weights, [B] groups when _PerWindow
        sw = per_window[0] if p.clip_balance else None
        lam, perm = _mix(len(y), p.mixup)
        out = model(x if perm is None else lam * x + (1 - lam) * x[perm], layout)   # x [B, T, J, C]
        loss = head_loss(out, y, weight, p.label_smoothing, sw)
        if perm is not None:   # mixup: the same blend of the partner windows' targets
            loss = lam * loss + (1 - lam) * head_loss(out, y[perm], weight, p.label_smoothing,
                                                      None if sw is None else sw[perm])
        metrics = {"acc": (out["logits"].argmax(1) == y).float().mean()}
        if p.adversary:
            groups = per_window[1]
            g_loss, metrics["group_acc"] = group_loss(out, groups)
            if perm is not None:
                g_loss = lam * g_loss + (1 - lam) * group_loss(out, groups[perm])[0]
            loss, metrics["group_loss"] = loss + g_loss, g_loss.detach()
        return {"loss": loss, **metrics}
    return step


def _mix(n: int, alpha: float) -> tuple[float, torch.Tensor | None]:
    """Mixup's weight ``lam ~ Beta(alpha, alpha)`` and partner order ``[n]`` for one batch (torch's
    RNG, re-seeded every epoch by the trainer); ``(1.0, None)`` when ``alpha`` is 0."""
    if not alpha:
        return 1.0, None
    return float(torch.distributions.Beta(alpha, alpha).sample()), torch.randperm(n)


@torch.no_grad()
def fit_statistics(encoder: SkeletonEncoder, train: WindowSet, dataset: WindowDataset, seed: int) -> float:
    """Fit the encoder's statistics stream (a logistic regression, ``baselines.fit_logistic``) on the
    un-augmented training windows; returns its training accuracy."""
    from bodytalk.train.baselines import fit_logistic

    head = encoder.stats_head
    device = head.mean.device
    x = torch.cat([head.features(xb.to(device)).cpu()
                   for xb, _, _ in DataLoader(dataset, batch_size=256)]).numpy()   # [N, F]
    pipe = fit_logistic(x, train.label, train.clip, impute=False, seed=seed)
    scaler, lr = pipe.named_steps["standardscaler"], pipe.named_steps["logisticregression"]
    head.set(scaler.mean_, scaler.scale_, lr.coef_, lr.intercept_, lr.classes_)
    return float((pipe.predict(x) == train.label).mean())



def _stb_step(model: nn.Module, batch) -> dict[str, torch.Tensor]:
    x1, x2, layout, _ = batch  # labels unused: self-supervised
    return model(x1, x2, layout)


def _encode(encoder: SkeletonEncoder, dataset: WindowDataset, device: str, batch: int = 256):
    """Frozen outputs over un-augmented windows: logits [N, L], stream features [N, (P+K)*D]."""
    logits, feats = [], []
    for x, layout, _ in DataLoader(dataset, batch_size=batch):
        out = encoder(x.to(device), layout.to(device))
        logits.append(out["logits"].cpu())
        feats.append(torch.cat(streams(out["st_tokens"], len(BODY_PARTS), encoder.cfg.time_chunks), 1).cpu())
    return torch.cat(logits), torch.cat(feats).numpy()


def _scores(y: np.ndarray, pred: np.ndarray, prefix: str) -> dict[str, float]:
    from sklearn.metrics import f1_score
    return {f"{prefix}_acc": float((pred == y).mean()),
            f"{prefix}_f1": float(f1_score(y, pred, average="macro", zero_division=0))}


def _supervised_eval(test: WindowSet, test_set: WindowDataset, device: str) -> Callable[[nn.Module], dict]:
    def evaluate(model: SkeletonEncoder | Adversarial) -> dict[str, float]:
        logits, _ = _encode(model.encoder if isinstance(model, Adversarial) else model, test_set, device)
        y = test.label
        probs = logits.softmax(1).numpy()
        clips = np.unique(test.clip)
        clip_pred = np.array([probs[test.clip == c].mean(0).argmax() for c in clips])
        clip_true = np.array([y[test.clip == c][0] for c in clips])
        return {"test_loss": float(F.cross_entropy(logits, torch.from_numpy(y))),
                **_scores(y, logits.argmax(1).numpy(), "test"),
                "test_clip_acc": float((clip_pred == clip_true).mean())}
    return evaluate


def _probe_eval(train: WindowSet, test: WindowSet, sets: tuple[WindowDataset, WindowDataset], device: str,
                c: float) -> Callable[[nn.Module], dict]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def evaluate(model: STBModel) -> dict[str, float]:
        (_, f_train), (_, f_test) = (_encode(model.encoder, s, device) for s in sets)
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
        probe.fit(f_train, train.label)
        return _scores(test.label, probe.predict(f_test), "probe")
    return evaluate


def run(cfg: Config, out: str | Path | None = None,
        on_epoch_end: Callable[[int, dict], None] | None = None) -> Path:
    """Train as configured; returns the run folder (its ``checkpoint/`` is the model)."""
    info = setup(cfg.runtime, cfg.seed)
    return _run(cfg, Path(out or cfg.out), info, on_epoch_end)


def _run(cfg: Config, out: Path, info: DistInfo, on_epoch_end) -> Path:
    progress = cfg.runtime.progress and info.main
    windows, split, train, test = load_split_ranked(cfg.data, info, progress, auxiliary=True)
    served = cfg.data.served(windows.labels)   # the labels the saved model keeps (auxiliary ones dropped)
    if len(served) < 2:
        raise DatasetError(f"need at least 2 labels to pre-train, found {list(served)}")
    # With auxiliary classes the head trains on every label and the held-out windows are scored on it
    # (the kept labels' windows only) until the end, when the head keeps the served labels' rows.
    model_cfg = ModelConfig.create(windows.labels, encoder=dict(cfg.encoder), with_llm=False)
    enc_cfg = model_cfg.encoder
    encoder = SkeletonEncoder(enc_cfg)
    p = cfg.pretrain
    augment = Augmenter(p.augment)
    fixed = lambda w: WindowDataset(w, enc_cfg.layouts, enc_cfg.frames, version=enc_cfg.features)  # noqa: E731
    if p.recipe == "supervised":
        weight = class_weights(train.label, len(windows.labels)) if p.balance and not p.clip_balance else None
        module, step, find_unused = encoder, _supervised_step(weight, p), False
        data = WindowDataset(train, enc_cfg.layouts, enc_cfg.frames, augment or None, 1, cfg.seed,
                             version=enc_cfg.features)
        evaluate = _supervised_eval(test, fixed(test), info.device) if len(test) else None
        if p.clip_balance or p.adversary:
            ones = np.ones(len(train), np.float32)
            group, values = group_index(train, p.adversary_group) if p.adversary else (ones.astype(np.int64), ())
            data = _PerWindow(data, clip_weights(train.label, train.clip) if p.clip_balance else ones, group)
        if p.adversary:
            module = Adversarial(encoder, len(values), p.adversary)
    else:
        loss = STBLoss(enc_cfg.dim, len(BODY_PARTS), enc_cfg.time_chunks, p.proj_dim, p.temperature,
                       p.fusion, p.cross_weight)
        module, step, find_unused = STBModel(encoder, loss), _stb_step, True  # label head, queries unused
        data = WindowDataset(train, enc_cfg.layouts, enc_cfg.frames, augment, 2, cfg.seed, version=enc_cfg.features)
        evaluate = _probe_eval(train, test, (fixed(train), fixed(test)), info.device, p.probe_c) if len(test) else None

    resolved = config_io.to_dict(dataclasses.replace(cfg, out=str(out)))
    rundir = RunDir(out, resolved, main=info.main, resume=cfg.runtime.resume)
    trainer = Trainer(rundir, module, cfg.optim, cfg.runtime, cfg.seed, info, find_unused)
    baseline = {}
    if p.recipe == "stb" and info.main and evaluate:  # the probe on the untrained encoder: what pre-training adds
        with torch.no_grad():
            baseline = {f"init_{k}": v for k, v in evaluate(module.eval()).items()}
    history = trainer.fit(data, step, evaluate, on_epoch_end)
    if info.main:
        final = {k: v for k, v in history[-1].items() if k.startswith(("test_", "probe_"))} | baseline
        if encoder.stats_head is not None:   # the statistics stream joins the label once the trunks trained
            final["statistics_train_acc"] = fit_statistics(encoder, train, fixed(train), cfg.seed)
        restricted = served != windows.labels
        if restricted:
            encoder.keep_labels([windows.labels.index(lab) for lab in served])
            test = test.relabel(served)
        shift = label_shift.apply(encoder, train, served, p.label_shift, p.label_shift_group) if p.label_shift else None
        if restricted or shift:   # the saved config: the kept labels, the shift's bias
            model_cfg = ModelConfig.create(served, encoder={**cfg.encoder, "head_bias": encoder.cfg.head_bias},
                                           with_llm=False)
        # the saved head on the held-out windows (stb's probe reads no head: its scores stand)
        if evaluate and p.recipe == "supervised" and (restricted or encoder.stats_head is not None or shift):
            evaluate = _supervised_eval(test, fixed(test), info.device) if restricted else evaluate
            suffix = ("_shifted" if shift else "_with_statistics" if encoder.stats_head is not None
                      else "_served_labels")
            with torch.no_grad():
                final |= {f"{k}{suffix}": v for k, v in evaluate(encoder.eval()).items()}
        meta = {"stage": "pretrain", "recipe": p.recipe, "augment": list(p.augment.names),
                "auxiliary_labels": [lab for lab in windows.labels if lab not in served],
                "head_trained": p.recipe == "supervised", "split": split.to_dict(), "label_shift": shift,
                "datasets": [d.uri for d in cfg.data.datasets], "data": windows.summary(),
                "metrics": final, "seed": cfg.seed, "run": str(out)}
        checkpoint.save(rundir.checkpoint, model_cfg, encoder.cpu(), Projector(model_cfg.projector), meta=meta)
        rundir.write_results({**meta, "train": train.summary(), "test": test.summary(), "history": history})
    info.barrier()
    return out
