"""The label paths ``bodytalk eval`` compares, each as probabilities ``[N, L]`` over the same windows:

- ``llm``: the LLM label path (``EmotionModel.recognise(path="llm")``: every label scored in one
  pass through the LoRA LLM, conditioned on the skeleton tokens and the descriptor line);
- ``head``: the encoder's own classification head (``path="head"``), the fast path;
- ``descriptors``: the movement descriptors (``descriptors.as_vector``) and the per-window
  kinematic statistics (``skeleton.statistics``) + a logistic regression fitted on the
  checkpoint's training windows (median imputation for values without data, standardised; its
  inverse regularisation C chosen by cross-validation over the training clips, never the
  held-out ones): what hand-made features get without any deep model;
- ``cnn``: baseline (c), a plain temporal CNN over the encoder's own input fitted on the same
  training windows (``cnn_baseline``): what a simple model gets.

A window the model cannot read (insufficient data) gets a NaN row: it counts as wrong.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from bodytalk.model.skeleton import descriptors as desc, statistics as stats
from bodytalk.model.skeleton.features import InsufficientData, WindowInput
from bodytalk.train.windowset import WindowSet

PATHS = ("llm", "head", "descriptors", "cnn")
DEFAULT_PATHS = ("llm", "head", "descriptors")   # cnn trains a network: asked for by name
FITTED = ("descriptors", "cnn")   # paths fitted on the training windows at evaluation time


def windows_of(ws: WindowSet) -> list[WindowInput]:
    """A WindowSet as model inputs (each window with its source layout and, padded, its real length)."""
    layouts, padded = ws.layouts(), ws.padded
    return [WindowInput(ws.joints[i], ws.confidence[i], ws.fps, layouts[i],
                        int(ws.real_frames[i]) if padded[i] else None) for i in range(len(ws))]


def model_probs(model, inputs: Sequence[WindowInput], path: str, batch: int = 16) -> np.ndarray:
    """``[N, L]`` probabilities of a label path of an ``EmotionModel`` (NaN rows: unreadable windows)."""
    model.reset_cache()
    out = np.full((len(inputs), len(model.labels)), np.nan)
    for start in range(0, len(inputs), batch):
        for row, reading in enumerate(model.recognise(inputs[start:start + batch], path=path), start):
            if reading.status == "ok":
                out[row] = [reading.probs[lab] for lab in model.labels]
    return out


def predict(probs: np.ndarray) -> np.ndarray:
    """Label index per row, -1 for a NaN row (an unreadable window)."""
    ok = np.isfinite(probs).all(1)
    return np.where(ok, np.nan_to_num(probs).argmax(1), -1)


def descriptor_matrix(ws: WindowSet) -> np.ndarray:
    """``[N, F]`` descriptor values then kinematic statistics (NaN where a value had too little data)."""
    if not len(ws):
        return np.zeros((0, len(desc.NAMES) + len(stats.NAMES)), dtype=np.float32)
    return np.stack([np.concatenate([desc.as_vector(desc.compute(ws.joints[i], ws.confidence[i], ws.fps)),
                                     _statistics(WindowInput(ws.joints[i], ws.confidence[i], ws.fps))])
                     for i in range(len(ws))])


def _statistics(w: WindowInput) -> np.ndarray:
    try:
        return stats.compute(w)
    except InsufficientData:
        return np.full(len(stats.NAMES), np.nan, dtype=np.float32)


C_GRID = (0.01, 0.1, 1.0)


def fit_logistic(x: np.ndarray, y: np.ndarray, groups: np.ndarray, impute: bool = True, seed: int = 0):
    """A standardised logistic regression on ``x [N, F]`` (median imputation first with ``impute``), its
    inverse regularisation C chosen from ``C_GRID`` by cross-validation over ``groups`` (a clip's windows
    stay together): the fitted sklearn pipeline."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(set(y.tolist())) < 2:
        raise ValueError("a logistic regression needs training windows of at least 2 labels")
    steps = [SimpleImputer(strategy="median", keep_empty_features=True)] if impute else []
    pipe = make_pipeline(*steps, StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed))
    folds = min(4, len(np.unique(groups)))
    if folds < 2:
        return pipe.fit(x, y)
    search = GridSearchCV(pipe, {"logisticregression__C": C_GRID}, cv=GroupKFold(folds))
    return search.fit(x, y, groups=groups).best_estimator_


class DescriptorBaseline:
    """Logistic regression on descriptor and statistics vectors (baseline a)."""

    def fit(self, train: WindowSet) -> "DescriptorBaseline":
        self.n_labels = len(train.labels)
        self.pipe = fit_logistic(descriptor_matrix(train), train.label, train.clip)
        return self

    def predict_proba(self, ws: WindowSet) -> np.ndarray:
        """``[N, L]`` over the full label set (labels absent from training get 0)."""
        out = np.zeros((len(ws), self.n_labels))
        if len(ws):
            out[:, self.pipe.classes_] = self.pipe.predict_proba(descriptor_matrix(ws))
        return out


def fit(name: str, train: WindowSet, features: int):
    """A fitted baseline of ``FITTED`` (``features``: the encoder input version the CNN reads)."""
    if name == "cnn":
        from bodytalk.train.cnn_baseline import CNNBaseline, CNNConfig
        return CNNBaseline(CNNConfig(features=features)).fit(train)
    return DescriptorBaseline().fit(train)


def timed(fn, *args, **kwargs) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t0
