"""Several stages in one run (``stage: pipeline``): pre-training -> alignment -> instruction tuning.

    stage: pipeline
    out: runs/smoke
    shared:                  # merged into every stage (a stage's own keys win), e.g. data, runtime
      data: {...}
    stages:
      - {stage: pretrain, ...}
      - {stage: align, ...}
      - {stage: instruct, ...}

A stage is an inline config, or ``{config: NAME, ...}``: a committed config file with the item's
keys merged over it (order: file < shared < item). Stage i runs in ``OUT/<i>-<stage>/``; each
stage after the first starts from the previous stage's checkpoint (``init``) unless it names one.
Every stage config is validated before the first one trains. A stage whose run folder already
holds its results is skipped, so an interrupted pipeline resumes with the same command. The last
checkpoint is copied to ``OUT/checkpoint`` and ``OUT/results.json`` lists each stage's metrics
and wall time.

    bodytalk train --config smoke --out runs/smoke
    bodytalk train --config smoke stages.2.optim.epochs=2      # override one stage
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bodytalk.train import config as config_io
from bodytalk.train.config import ConfigError, strict
from bodytalk.train.loop import launched_rank
from bodytalk.train.splits import Split


def _stage_modules() -> dict[str, str]:
    from bodytalk.train.run import STAGES   # the one stage table (imported late: run imports us)
    return {k: v for k, v in STAGES.items() if k != "pipeline"}


def merge(base: dict, over: dict) -> dict:
    """Deep merge of mappings; ``over`` wins (lists are replaced, not merged)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@strict
@dataclass(frozen=True)
class Config:
    stage: Literal["pipeline"]
    stages: tuple[dict[str, Any], ...]
    shared: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    out: str = "runs/pipeline"

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("stages is empty: list at least one stage config")
        self.plan(Path(self.out))   # validates every stage now

    def plan(self, out: Path) -> list[tuple[str, Any, Path]]:
        """(stage, validated stage config, run folder) in order."""
        modules, plan = _stage_modules(), []
        for i, item in enumerate(self.stages):
            item = dict(item)
            base = config_io.load_raw(item.pop("config")) if "config" in item else {}
            raw = merge(merge(base, self.shared), item)
            name = raw.get("stage")
            if name not in modules:
                raise ValueError(f"stages.{i}.stage: {name!r} is not one of {', '.join(modules)}")
            module = importlib.import_module(modules[name])
            folder = out / f"{i}-{name}"
            raw |= {"seed": item.get("seed", self.seed), "out": str(folder)}
            if i and "init" not in item and "init" in {f.name for f in dataclasses.fields(module.Config)}:
                raw["init"] = str(plan[-1][2] / "checkpoint")
            try:
                plan.append((name, config_io.parse(module.Config, raw, where=f"stages.{i} ({name})"), folder))
            except ConfigError as err:
                raise ValueError(str(err)) from None
        return plan


def run(cfg: Config, out: str | Path | None = None) -> Path:
    out = Path(out or cfg.out)
    main = launched_rank() == 0   # under torchrun every rank trains each stage; rank 0 writes the summary
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(config_io.dump(cfg))
    summary = []
    for name, stage_cfg, folder in cfg.plan(out):
        done = folder / "results.json"
        t0 = time.perf_counter()
        # Each stage ends at a barrier after rank 0 wrote its results, so every rank sees the same files.
        if not (done.is_file() and (folder / "checkpoint" / "config.json").is_file()):
            importlib.import_module(_stage_modules()[name]).run(stage_cfg, out=folder)
        if main:
            results = json.loads(done.read_text())
            summary.append({"stage": name, "run": str(folder), "seconds": round(time.perf_counter() - t0, 1),
                            "metrics": results.get("metrics", {}),
                            "split": Split.from_dict(results["split"]).name})
    if main:
        final = out / "checkpoint"
        shutil.rmtree(final, ignore_errors=True)
        shutil.copytree(folder / "checkpoint", final)
        (out / "results.json").write_text(json.dumps({"stages": summary,
                                                      "seconds": round(sum(s["seconds"] for s in summary), 1)},
                                                     indent=2))
    return out
