"""The server's explanations, generated between label batches on the server's own thread.

Why not a thread of their own: on a CPU, two threads running torch are two OpenMP teams on the same
cores. An explainer thread either slowed every explanation several-fold or made labels wait hundreds
of milliseconds, and OMP_WAIT_POLICY=passive traded the contention for slower passes (README). One thread
stepping both does neither: the server labels whatever is waiting, then runs ONE step of the
explanation in progress (a decoding step, or the prompt pass for a new one), then looks for windows
again, so a window waits for at most one step and explanations decode at full speed
while no window is waiting.

At most one job waits behind the one in progress; another is refused (the server counts it and
explains that body at its next due window), so an explanation starts at most one generation after
its window. Each explanation streams its raw pieces on emotion.text.<sensor>.<body> (index 0, 1,
..., then a "done" marker, also after a failure, so a subscriber never waits for pieces that will
not come); the grounding check needs the whole text, so the checked explanation goes out afterwards
on an emotion event of the same window.
"""
from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from bodytalk.model.skeleton import descriptors as desc
from bodytalk.model.skeleton.microgestures import MGResult
from bodytalk.model.serving.tokenize import descriptors_of
from bodytalk.stream import schema

log = logging.getLogger("bodytalk.serve")


@dataclass
class _Job:
    event: dict
    work: schema.PromptWork
    label: str
    pieces: list[str] = field(default_factory=list)
    stream: Iterator[str] | None = None    # the model's piece generator, once started
    evidence: desc.Descriptors | None = None   # from the work item, once started (grounding reads them too)
    mgs: MGResult | None = None
    t0: float = 0.0


class Explainer:
    def __init__(self, model, send: Callable[[schema.Message], None], finish: Callable[[dict, float], None],
                 max_new_tokens: int = 40, stream_text: bool = True, waiting: int = 1) -> None:
        """``send`` publishes a text piece (with ``stream_text``); ``finish(event, t_received)``
        publishes the explained event (the server stamps its total latency)."""
        self.model, self.send, self.finish = model, send, finish
        self.max_new_tokens, self.stream_text, self.waiting = max_new_tokens, stream_text, waiting
        self._jobs: collections.deque[_Job] = collections.deque()   # [0]: in progress once started

    @property
    def busy(self) -> bool:
        """Whether `step` has work: the server then polls for windows instead of blocking."""
        return bool(self._jobs)

    @property
    def queued(self) -> int:
        """Jobs waiting behind the one in progress."""
        return max(0, len(self._jobs) - 1)

    def submit(self, event: dict, work: schema.PromptWork, label: str) -> bool:
        """Queue an explanation of `label` for the window of `event`; False when one already waits."""
        if self.queued >= self.waiting:
            return False
        self._jobs.append(_Job(event, work, label))
        return True

    def step(self) -> None:
        """One step of the explanation in progress: the prompt pass and first piece of a new one, or
        its next piece; at its end, the grounding check and the explained event."""
        if not self._jobs:
            return
        job = self._jobs[0]
        try:
            if job.stream is None:
                job.t0 = time.perf_counter()
                job.stream = self._start(job)
            text = next(job.stream, None)
            if text is not None:
                if text:   # the streamer may flush an empty piece at the end
                    self._piece(job, text)
                    job.pieces.append(text)
                return
            explanation, bad = self.model.ground("".join(job.pieces), job.evidence, job.mgs)
        except Exception as err:  # an explanation failure must not stop labels
            log.warning("explanation failed: %s", err)
            self._end(job)
            return
        self._end(job)
        self.finish(dict(job.event, explanation=explanation, unsupported=[c.text for c in bad],
                         latency_ms=dict(job.event["latency_ms"], explain=(time.perf_counter() - job.t0) * 1e3)),
                    job.work.t_received)

    def drain(self, timeout: float = 30.0) -> None:
        """Finish the explanations queued (at most `timeout` seconds), e.g. when the server stops."""
        end = time.monotonic() + timeout
        while self._jobs and time.monotonic() < end:
            self.step()

    def _start(self, job: _Job) -> Iterator[str]:
        w = job.work
        job.evidence, job.mgs = descriptors_of(w), MGResult.from_jsonable(w.mgs) if w.mgs else None
        tokens = torch.from_numpy(np.array(w.tokens))[None]   # [1, S, H], a writable copy
        return self.model.explain_tokens_stream(tokens, job.evidence, job.label, job.mgs, self.max_new_tokens)

    def _piece(self, job: _Job, text: str, done: bool = False) -> None:
        if self.stream_text:
            w = job.work
            self.send(schema.EmotionText(sensor=w.sensor, body=w.body, window_seq=w.window_seq, text=text,
                                         done=done, index=len(job.pieces)))

    def _end(self, job: _Job) -> None:
        self._jobs.popleft()
        self._piece(job, "", done=True)
