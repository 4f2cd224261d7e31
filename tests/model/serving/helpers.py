"""Shared by the serving tests (worker, server, client, faults, end to end): small checkpoints,
synthetic windows as bus messages, and background ``bodytalk`` processes that are always stopped."""
from __future__ import annotations

import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from bodytalk.capture import source as sources
from bodytalk.capture.windowing import windows_of
from bodytalk.stream import schema
from tests.helpers import start_bodytalk, stop

def encoder_checkpoint(path: Path, seed: int = 0) -> Path:
    """An untrained encoder-only checkpoint: loads in a blink, labels from the encoder's head."""
    from bodytalk.model.checkpoint import ModelConfig
    from bodytalk.model.inference import EmotionModel

    return EmotionModel.untrained(ModelConfig.create(with_llm=False), seed=seed).save(path)


def tiny_llm_checkpoint(path: Path, tiny_model_dir: Path, seed: int = 0) -> Path:
    """An untrained checkpoint over the tiny random llama (hidden 32): the LLM path, in float32."""
    from bodytalk.model.checkpoint import ModelConfig
    from bodytalk.model.inference import EmotionModel
    from bodytalk.model.llm.hf import LLMConfig, SkeletonLLM

    llm_cfg = {"base": str(tiny_model_dir), "dtype": "float32"}
    llm = SkeletonLLM.load(LLMConfig(**llm_cfg))
    cfg = ModelConfig.create(hidden=llm.hidden_size, llm=llm_cfg)
    return EmotionModel.untrained(cfg, llm=llm, seed=seed).save(path)


def synthetic_windows(bodies: int = 2, seconds: float = 4.0, sensor: str = "synthetic") -> list[schema.SkeletonWindow]:
    """Every window of a synthetic recording, as capture publishes them (unified joints)."""
    return source_windows(f"synthetic:?bodies={bodies}&duration={seconds}&sensor={sensor}&seed=3")


def source_windows(uri: str) -> list[schema.SkeletonWindow]:
    """Every window of a source, as capture publishes them (unified joints)."""
    src = sources.create(uri)
    src.open()
    try:
        return [schema.SkeletonWindow(sensor=src.sensor, body=str(w.body), seq=w.seq, t_start=w.t_start,
                                      t_end=w.t_end, fps=src.fps, layout=src.layout.id, joints=w.joints,
                                      confidence=w.confidence, interpolated=w.interpolated, labels=w.labels)
                for w in windows_of(src)]
    finally:
        src.close()


def unreadable(like: schema.SkeletonWindow, seq: int | None = None) -> schema.SkeletonWindow:
    """A well-formed window the model must refuse: every joint has confidence 0."""
    return schema.SkeletonWindow(sensor=like.sensor, body=like.body, seq=like.seq if seq is None else seq,
                                 t_start=like.t_start, t_end=like.t_end, fps=like.fps, layout=like.layout,
                                 joints=like.joints, confidence=np.zeros_like(like.confidence),
                                 interpolated=like.interpolated)


def wait_for(predicate, timeout: float, what, step: float = 0.05):
    """Poll ``predicate`` until truthy (returned) or fail saying ``what`` (a str, or a callable
    giving one at failure time, e.g. to include a process's log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")


class Processes:
    """Background ``bodytalk`` processes by name, always stopped at exit; ``log(name)`` is the
    stderr of a process (kept in a file: a pipe nobody reads fills up and stalls the process)."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, tempfile._TemporaryFileWrapper] = {}

    def start(self, name: str, args: list) -> subprocess.Popen:
        log = self.logs[name] = tempfile.NamedTemporaryFile("w+", prefix=f"{name}-", suffix=".log")
        args = [str(a) for a in args]
        proc = start_bodytalk(args, stdout=subprocess.DEVNULL, stderr=log)
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        """SIGKILL: no clean shutdown, as a crash would leave it."""
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait(timeout=10)

    def alive(self, name: str) -> bool:
        return name in self.procs and self.procs[name].poll() is None

    def log(self, name: str) -> str:
        f = self.logs[name]
        f.seek(0)
        return f.read()

    def __enter__(self) -> "Processes":
        return self

    def __exit__(self, *exc) -> None:
        for name in list(self.procs):
            stop(self.procs.pop(name))
        for f in self.logs.values():
            f.close()


class ListIntake:
    """Stands in for a Subscriber: hands out queued messages, then times out at once."""

    def __init__(self, msgs=()) -> None:
        self.msgs, self.drops = list(msgs), Counter()

    def recv(self, timeout=None):
        return (self.msgs.pop(0), 0.0) if self.msgs else None

    @property
    def dropped(self) -> int:
        return 0
