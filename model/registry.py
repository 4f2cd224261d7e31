"""Which checkpoint a command uses when none is given, and loading with a graceful LLM fallback."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from bodytalk.model.llm.weights import BaseModelNotFound

log = logging.getLogger("bodytalk.model")

# The demo checkpoint ships inside the package (encoder, projector, a small LoRA adapter; the base
# LLM itself comes from `bodytalk models pull`). BODYTALK_MODEL points commands at another one.
PACKAGED = Path(__file__).parent / "assets" / "demo"


def default_checkpoint() -> Path:
    env = os.environ.get("BODYTALK_MODEL")
    path = Path(env) if env else PACKAGED
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}: train one with `bodytalk train --config train/configs/smoke.yaml "
            f"--out runs/smoke` and pass --model runs/smoke/checkpoint (or set BODYTALK_MODEL)")
    return path


BACKENDS = ("transformers", "vllm")


def load_model(path: str | os.PathLike | None = None, with_llm: bool = True, backend: str = "transformers",
               vllm=None, int8: bool = True):
    """Load a checkpoint; if its base LLM is not available, fall back to the encoder's label head
    (no explanations) and say how to get the LLM. ``backend="vllm"`` serves the LLM with vLLM
    (``vllm``: a llm_vllm.VLLMConfig, e.g. a server URL; default in-process). ``int8``: see
    EmotionModel.load."""
    from bodytalk.model.inference import EmotionModel

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    path = Path(path) if path else default_checkpoint()
    if not with_llm:
        return EmotionModel.load(path, with_llm=False)
    try:
        if backend == "vllm":
            from bodytalk.model.llm.vllm import load_emotion_model
            return load_emotion_model(path, vllm)
        return EmotionModel.load(path, with_llm=True, int8=int8)
    except BaseModelNotFound as err:
        log.warning("%s -- using the encoder's fast label head, without explanations", err)
        return EmotionModel.load(path, with_llm=False)
