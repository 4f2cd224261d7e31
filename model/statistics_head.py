"""The encoder's statistics stream: a linear label head on the window's kinematic statistics.

It reads ``skeleton.statistics.summarise`` of the encoder's own version-2 input (no second pass
over the raw window), standardised, through a linear map: a logistic regression whose numbers are
fitted after the network trains (``train/pretrain.py``: C by cross-validation over the training
clips) and kept as buffers, so it travels in ``encoder.safetensors`` with the trunks it is averaged
with. Until fitted it is left out of the average.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bodytalk.model.skeleton import statistics

UNSEEN_LOGIT = -30.0   # a label the fit never saw: probability ~0, never NaN


class StatisticsHead(nn.Module):
    def __init__(self, num_labels: int) -> None:
        super().__init__()
        n = len(statistics.NAMES)
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("scale", torch.ones(n))
        self.register_buffer("weight", torch.zeros(num_labels, n))
        self.register_buffer("bias", torch.zeros(num_labels))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, 17, 14] -> statistics [B, F] (what the fit reads)."""
        return statistics.summarise(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # x [B, T, 17, 14] -> logits [B, L]
        z = (self.features(x) - self.mean) / self.scale
        return z @ self.weight.T + self.bias

    def keep(self, rows: torch.Tensor) -> None:
        """Keep these label rows, in this order (``SkeletonEncoder.keep_labels``)."""
        self.weight = self.weight[rows].clone()
        self.bias = self.bias[rows].clone()

    def set(self, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
            classes: np.ndarray) -> None:
        """Take a fitted standardisation ``[F]`` and logistic regression (``coef [C, F]``, ``intercept [C]``
        over label indices ``classes [C]``; with two classes sklearn gives one row, for the second)."""
        as_buffer = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=self.mean.device)  # noqa: E731
        coef, intercept = np.atleast_2d(coef), np.atleast_1d(intercept)
        if len(classes) == 2 and len(coef) == 1:
            coef, intercept = np.concatenate([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
        self.mean.copy_(as_buffer(mean))
        self.scale.copy_(as_buffer(np.where(np.asarray(scale) > 0, scale, 1.0)))
        self.weight.zero_()
        self.bias.fill_(UNSEEN_LOGIT)
        index = torch.as_tensor(np.asarray(classes), dtype=torch.long, device=self.mean.device)
        self.weight[index] = as_buffer(coef)
        self.bias[index] = as_buffer(intercept)
        self.fitted.fill_(True)
