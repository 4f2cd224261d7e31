"""A run folder: what one training run leaves behind, and what lets it resume.

    RUN/
      config.yaml      the resolved config (file + overrides + defaults)
      metrics.jsonl    one line per epoch (losses, lr, throughput, evaluation)
      curves.png       loss and accuracy curves (matplotlib, Agg)
      state/last.pt    training state after the last finished epoch (module, optimiser, history)
      checkpoint/      the model checkpoint folder the stage writes at the end (model/checkpoint)
      results.json     the stage's final results, with the split

Resuming into a folder whose config differs (outside ``runtime``) is refused: the weights in
``state/`` belong to the old config.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml

from bodytalk.train.config import ConfigError

_VOLATILE = ("runtime",)  # sections that may change between a run and its resumption


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) if not (not where and k in _VOLATILE)
                for d in _differences(a.get(k), b.get(k), f"{where}.{k}" if where else k)]
    return [] if a == b else [where]


class RunDir:
    def __init__(self, path: str | Path, config: dict[str, Any], main: bool = True, resume: bool = True) -> None:
        self.path, self.main = Path(path), main
        self.state_file = self.path / "state" / "last.pt"
        if not main:
            return
        saved = self.path / "config.yaml"
        if self.state_file.is_file() and resume and saved.is_file():
            changed = _differences(yaml.safe_load(saved.read_text()), config)
            if changed:
                raise ConfigError(f"{self.path} holds a run with a different config ({', '.join(changed[:6])}); "
                                  "resume it with the same config, use another --out, or runtime.resume=false")
        if not resume:
            shutil.rmtree(self.path / "state", ignore_errors=True)
            (self.path / "metrics.jsonl").unlink(missing_ok=True)
        self.path.mkdir(parents=True, exist_ok=True)
        saved.write_text(yaml.safe_dump(config, sort_keys=False))

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint"

    def load_state(self) -> dict | None:
        if not self.state_file.is_file():
            return None
        # weights_only: tensors and plain containers only, so a planted state file cannot run code.
        try:
            return torch.load(self.state_file, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
            raise ConfigError(f"{self.state_file} is not a training state this code wrote ({type(err).__name__}); "
                              "refusing to load it: delete it to start the run over") from None

    def save_state(self, state: dict) -> None:
        """Atomically (a crash mid-write leaves the previous epoch's state)."""
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(f".{os.getpid()}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.state_file)

    def write_metrics(self, history: list[dict]) -> None:
        """The whole history (so a resumed run's file holds each epoch once) and its plot."""
        (self.path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in history))
        self.plot(history)

    def plot(self, history: list[dict]) -> Path:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        epochs = [m["epoch"] for m in history]
        panels = [("loss", [k for k in history[-1] if k.endswith("loss")]),
                  ("accuracy / F1", [k for k in history[-1] if k.endswith(("acc", "f1"))])]
        panels = [(title, keys) for title, keys in panels if keys]
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
        for ax, (title, keys) in zip(axes[0], panels):
            for key in keys:
                points = [(e, m[key]) for e, m in zip(epochs, history) if key in m]
                ax.plot(*zip(*points), marker="o" if len(points) < 30 else None, label=key)
            ax.set_xlabel("epoch")
            ax.set_title(title)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        out = self.path / "curves.png"
        fig.savefig(out, dpi=100)
        plt.close(fig)
        return out

    def write_results(self, results: dict) -> Path:
        out = self.path / "results.json"
        out.write_text(json.dumps(results, indent=2))
        return out
