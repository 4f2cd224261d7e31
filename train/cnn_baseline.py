"""Baseline (c): a plain temporal CNN over the encoder's own input, fitted on a split's training side.

What a simple model gets from the same input as the encoder, so every sweep shows it beside the
descriptor baseline (a) and the encoder head (b). Every joint's channels of
``features.prepare`` (the checkpoint encoder's feature version) are flattened into one vector per
frame, standardised with the training windows' mean and spread, and read by four 1-D convolution
blocks (64, 64 / 2, 128, 128 / 2 channels, kernel 5), average pooling over time, dropout and a
linear layer: the common small temporal CNN of skeleton-emotion work. It trains 30 epochs of
AdamW with a one-cycle schedule, a class-weighted loss and Gaussian noise on the standardised
input; no augmentation, no inner validation, one seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bodytalk.train.windowset import WindowSet


@dataclass(frozen=True)
class CNNConfig:
    frames: int = 60
    features: int = 2        # features.prepare version
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3         # one-cycle peak
    weight_decay: float = 1e-2
    noise: float = 0.05      # on the standardised input
    dropout: float = 0.3
    seed: int = 0


def _inputs(ws: WindowSet, cfg: CNNConfig) -> np.ndarray:
    """``[N, J * C, T]`` float32."""
    x = np.stack([ws.features(i, cfg.frames, cfg.features) for i in range(len(ws))])   # [N, T, J, C]
    return x.reshape(len(x), cfg.frames, -1).transpose(0, 2, 1).astype(np.float32)


class CNNBaseline:
    """``fit(train)`` then ``predict_proba(test)`` -> ``[N, L]``, as ``DescriptorBaseline``."""

    def __init__(self, cfg: CNNConfig = CNNConfig()) -> None:
        self.cfg = cfg

    def fit(self, train: WindowSet) -> "CNNBaseline":
        import torch
        from torch import nn

        from bodytalk.train.losses import class_weights

        cfg, n_labels = self.cfg, len(train.labels)
        if len(set(train.label.tolist())) < 2:
            raise ValueError("the CNN baseline needs training windows of at least 2 labels")
        torch.manual_seed(cfg.seed)
        x = _inputs(train, cfg)
        self.mean = x.mean((0, 2), keepdims=True)
        self.std = x.std((0, 2), keepdims=True) + 1e-6
        x = torch.from_numpy((x - self.mean) / self.std)
        y = torch.from_numpy(train.label)

        def block(i: int, o: int, stride: int) -> list[nn.Module]:
            return [nn.Conv1d(i, o, 5, stride=stride, padding=2), nn.BatchNorm1d(o), nn.ReLU()]

        self.net = nn.Sequential(*block(x.shape[1], 64, 1), *block(64, 64, 2), *block(64, 128, 1),
                                 *block(128, 128, 2), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                                 nn.Dropout(cfg.dropout), nn.Linear(128, n_labels))
        loss_fn = nn.CrossEntropyLoss(weight=class_weights(train.label, n_labels))
        opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr / 3, weight_decay=cfg.weight_decay)
        steps = int(np.ceil(len(x) / cfg.batch_size))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
        gen = torch.Generator().manual_seed(cfg.seed)
        self.net.train()
        for _ in range(cfg.epochs):
            order = torch.randperm(len(x), generator=gen)
            for b in range(steps):
                idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                xb = x[idx] + cfg.noise * torch.randn(x[idx].shape, generator=gen)
                loss = loss_fn(self.net(xb), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        self.net.eval()
        self.n_labels = n_labels
        return self

    def predict_proba(self, ws: WindowSet) -> np.ndarray:
        import torch

        if not len(ws):
            return np.zeros((0, self.n_labels))
        x = torch.from_numpy((_inputs(ws, self.cfg) - self.mean) / self.std)
        with torch.no_grad():
            return torch.softmax(self.net(x), 1).double().numpy()
