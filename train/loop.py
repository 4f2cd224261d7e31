"""The training loop every stage shares: optimiser and LR schedule, seeded determinism, progress
bar, metrics, a checkpoint every epoch, resume, and ``torchrun`` (DDP).

A stage builds its module (whatever holds every trainable parameter), a torch ``Dataset`` and a
``step(model, batch) -> {"loss": ..., other scalars}``, then calls ``Trainer.fit``. Everything
else is here, so the alignment and instruction stages get resume and DDP for free.

Determinism: the data order of epoch e comes from ``DistributedSampler(seed + e)``, augmentations
from ``(seed, e, window)`` (``views``), and torch's global RNG (dropout) is re-seeded from
``(seed, e, rank)`` at each epoch start. No RNG state has to be saved: a run resumed after epoch k
trains epoch k + 1 exactly as an uninterrupted run does (same weights, bit for bit, on CPU).

DDP: under ``torchrun`` (``WORLD_SIZE`` set) the process group is initialised from the
environment (once per process, shared by a pipeline's stages), the module is wrapped in ``DistributedDataParallel``, each rank trains on its
``DistributedSampler`` shard with ``batch_size / world`` windows, and only rank 0 evaluates,
logs and writes files (the others wait at a barrier).
"""
from __future__ import annotations

import atexit
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from bodytalk.train.config import ConfigError, strict
from bodytalk.train.rundir import RunDir

Batch = tuple[torch.Tensor, ...]
StepFn = Callable[[nn.Module, Batch], dict[str, torch.Tensor]]   # -> {"loss": scalar, ...}
EvalFn = Callable[[nn.Module], dict[str, float]]                 # raw module, eval mode, no grad


@strict
@dataclass(frozen=True)
class OptimConfig:
    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.9          # sgd
    nesterov: bool = False         # sgd
    weight_decay: float = 1e-4
    batch_size: int = 64           # global: split over the ranks under torchrun
    epochs: int = 200
    schedule: Literal["step", "cosine", "constant"] = "step"
    warmup_epochs: float = 5.0     # linear warm-up from ~0 to lr
    milestones: tuple[float, ...] = (100, 150, 175)  # step: lr *= gamma at each
    gamma: float = 0.1
    # Milestones and warm-up are written for this many epochs and scale with `epochs`, so
    # `optim.epochs=20` runs the paper's schedule compressed tenfold. None: they are absolute.
    reference_epochs: int | None = 200
    grad_clip: float | None = None  # max gradient norm

    def __post_init__(self) -> None:
        if not (self.lr > 0 and self.batch_size >= 1 and self.epochs >= 1 and 0 < self.gamma <= 1):
            raise ValueError(f"need lr > 0, batch_size >= 1, epochs >= 1, 0 < gamma <= 1: {self}")
        if list(self.milestones) != sorted(set(self.milestones)) or any(m <= 0 for m in self.milestones):
            raise ValueError(f"optim.milestones must be increasing positive epochs, got {self.milestones}")
        if self.warmup_epochs < 0 or (self.reference_epochs is not None and self.reference_epochs < 1):
            raise ValueError("optim.warmup_epochs must be >= 0 and reference_epochs >= 1")

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        """Learning rate of optimiser step ``step`` (0-based)."""
        f = self.epochs / self.reference_epochs if self.reference_epochs else 1.0
        warm = self.warmup_epochs * f * steps_per_epoch        # in steps
        if step < warm:
            return self.lr * (step + 1) / math.ceil(warm)
        epoch = step // steps_per_epoch
        if self.schedule == "step":
            return self.lr * self.gamma ** sum(epoch >= m * f for m in self.milestones)
        if self.schedule == "cosine":
            progress = (step - warm) / max(self.epochs * steps_per_epoch - warm, 1)
            return self.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        return self.lr

    def optimizer(self, params) -> torch.optim.Optimizer:
        params = [p for p in params if p.requires_grad]
        if self.name == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, nesterov=self.nesterov,
                                   weight_decay=self.weight_decay)
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)


@strict
@dataclass(frozen=True)
class RuntimeConfig:
    device: str = "auto"      # auto (cuda if present), cpu, cuda
    threads: int = 2          # torch CPU threads per process
    workers: int = 0          # DataLoader worker processes
    progress: bool = True     # tqdm bars (rank 0)
    eval_every: int = 1       # epochs between evaluations (the last epoch always evaluates)
    resume: bool = True       # continue from the run folder's last checkpoint if there is one
    deterministic: bool = True

    def __post_init__(self) -> None:
        if self.threads < 1 or self.workers < 0 or self.eval_every < 1:
            raise ValueError(f"need threads >= 1, workers >= 0, eval_every >= 1: {self}")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if dist.is_initialized():
            dist.barrier()


def setup(runtime: RuntimeConfig, seed: int) -> DistInfo:
    """Threads, determinism, device, and the process group when launched by ``torchrun``."""
    torch.set_num_threads(runtime.threads)
    torch.use_deterministic_algorithms(runtime.deterministic, warn_only=True)
    local = int(os.environ.get("LOCAL_RANK", 0))
    cuda = runtime.device == "cuda" or (runtime.device == "auto" and torch.cuda.is_available())
    device = f"cuda:{local}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(device)
    if "WORLD_SIZE" in os.environ and not dist.is_initialized():
        # Once per process: the stages of a pipeline share the group (a group destroyed and made
        # again from torchrun's store can meet the previous group's stale addresses).
        dist.init_process_group("nccl" if cuda else "gloo")
        atexit.register(dist.destroy_process_group)
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    seed_all(seed)
    return DistInfo(rank, world, local, device)


def launched_rank() -> int:
    """This process's rank as ``torchrun`` set it (0 without torchrun), for work outside a stage's
    process group, such as a pipeline's summary."""
    return int(os.environ.get("RANK", 0))


def seed_all(*key: int) -> None:
    """Seed numpy's global RNG and torch's (CPU and CUDA) from a tuple of ints."""
    s = int(np.random.SeedSequence(key).generate_state(1)[0])
    np.random.seed(s)
    torch.manual_seed(s)


class Trainer:
    """One stage's training run in a run folder (see module doc)."""

    def __init__(self, run: RunDir, module: nn.Module, optim: OptimConfig, runtime: RuntimeConfig,
                 seed: int, info: DistInfo, find_unused_parameters: bool = False) -> None:
        if optim.batch_size % info.world:
            raise ConfigError(f"optim.batch_size {optim.batch_size} does not split over {info.world} ranks: "
                              f"give a multiple of {info.world} (it is the global batch)")
        self.run, self.optim, self.runtime, self.seed, self.info = run, optim, runtime, seed, info
        self.module = module.to(info.device)
        self.model = (DistributedDataParallel(self.module, device_ids=[info.local_rank] if info.device != "cpu"
                                              else None, find_unused_parameters=find_unused_parameters)
                      if dist.is_initialized() else self.module)
        self.optimizer = optim.optimizer(self.module.parameters())

    def _loader(self, dataset: Dataset) -> tuple[DataLoader, DistributedSampler]:
        per_rank = self.optim.batch_size // self.info.world
        sampler = DistributedSampler(dataset, num_replicas=self.info.world, rank=self.info.rank,
                                     shuffle=True, seed=self.seed)
        full = len(dataset) // self.info.world >= per_rank  # drop a ragged last batch when there is a full one
        return DataLoader(dataset, batch_size=per_rank, sampler=sampler, drop_last=full,
                          num_workers=self.runtime.workers), sampler

    def fit(self, dataset: Dataset, step: StepFn, evaluate: EvalFn | None = None,
            on_epoch_end: Callable[[int, dict], None] | None = None) -> list[dict[str, Any]]:
        """Train ``optim.epochs`` epochs (resuming when the run folder holds a checkpoint);
        returns the metrics history, one dict per epoch."""
        loader, sampler = self._loader(dataset)
        history, start, n_step = [], 0, 0
        state = self.run.load_state() if self.runtime.resume else None
        if state is not None:
            self.module.load_state_dict(state["module"])
            self.optimizer.load_state_dict(state["optimizer"])
            history, start, n_step = state["history"], state["epoch"], state["step"]
        for epoch in range(start, self.optim.epochs):
            seed_all(self.seed, epoch, self.info.rank)
            sampler.set_epoch(epoch)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            metrics, n_step = self._epoch(loader, step, epoch, n_step)
            last = epoch + 1 == self.optim.epochs
            if evaluate is not None and self.info.main and (last or (epoch + 1) % self.runtime.eval_every == 0):
                self.module.eval()
                with torch.no_grad():
                    metrics.update(evaluate(self.module))
            history.append(metrics)
            if self.info.main:
                self.run.save_state({"module": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                                     "epoch": epoch + 1, "step": n_step, "history": history})
                self.run.write_metrics(history)
            self.info.barrier()
            if on_epoch_end is not None:
                on_epoch_end(epoch, metrics)
        return history

    def _epoch(self, loader: DataLoader, step: StepFn, epoch: int, n_step: int) -> tuple[dict, int]:
        self.module.train()
        sums: dict[str, float] = {}
        seen, t0 = 0, time.perf_counter()
        total = len(loader) * loader.batch_size if loader.drop_last else len(loader.sampler)
        bar = tqdm(total=total, desc=f"epoch {epoch + 1}/{self.optim.epochs}", unit="win",
                   disable=not (self.runtime.progress and self.info.main), leave=False)
        for batch in loader:
            lr = self.optim.lr_at(n_step, len(loader))
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            batch = tuple(t.to(self.info.device, non_blocking=True) for t in batch)
            out = step(self.model, batch)
            self.optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            if self.optim.grad_clip:
                nn.utils.clip_grad_norm_(self.module.parameters(), self.optim.grad_clip)
            self.optimizer.step()
            n_step += 1
            size = len(batch[0])
            seen += size
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * size
            bar.update(size)
            bar.set_postfix(loss=f"{float(out['loss'].detach()):.4f}", lr=f"{lr:.2e}")
        bar.close()
        elapsed = time.perf_counter() - t0
        if dist.is_initialized():  # means over every rank's windows, not rank 0's shard alone
            totals = torch.tensor([seen, *sums.values()], dtype=torch.float64, device=self.info.device)
            dist.all_reduce(totals)
            seen, sums = int(totals[0]), dict(zip(sums, totals[1:].tolist()))
        metrics = {"epoch": epoch + 1, "step": n_step, "lr": lr,
                   **{f"train_{k}": v / max(seen, 1) for k, v in sums.items()},
                   "epoch_s": round(elapsed, 3), "windows_per_s": round(seen / elapsed, 1)}
        return metrics, n_step
