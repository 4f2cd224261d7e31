"""The server's explanations: generated on a background thread, so labels never wait for text.

At most one job waits behind the one in progress; another is refused (the server counts it and
explains that body at its next due window), so an explanation is at most one generation old when it
starts. A deeper queue (it was 4) let explanations of 4 bodies start 11-15 s after their windows. Each explanation streams
its raw pieces on emotion.text.<sensor>.<body> (index 0, 1, ..., then a "done" marker, also after a
failure, so a subscriber never waits for pieces that will not come); the grounding check needs the
whole text, so the checked explanation goes out afterwards on an emotion event of the same window.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import numpy as np
import torch

from bodytalk.model import grounding
from bodytalk.model.microgestures import MGResult
from bodytalk.model.worker import descriptors_of
from bodytalk.stream import schema

log = logging.getLogger("bodytalk.serve")


class Explainer:
    def __init__(self, model, send: Callable[[schema.Message], None], finish: Callable[[dict, float], None],
                 max_new_tokens: int = 40, stream_text: bool = True, depth: int = 1) -> None:
        """``send`` publishes a text piece; ``finish(event, t_received)`` publishes the explained event
        (the server stamps its total latency). Both are called from the explainer's thread."""
        self.model, self.send, self.finish = model, send, finish
        self.max_new_tokens, self.stream_text = max_new_tokens, stream_text
        self._jobs: queue.Queue = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._loop, name="explainer", daemon=True)

    @property
    def queued(self) -> int:
        return self._jobs.qsize()

    def start(self) -> None:
        self._thread.start()

    def submit(self, event: dict, work: schema.PromptWork, label: str) -> bool:
        """Queue an explanation of `label` for the window of `event`; False when the queue is full."""
        try:
            self._jobs.put_nowait((event, work, label))
            return True
        except queue.Full:
            return False

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the queued explanations (at most `timeout` seconds) and end the thread."""
        if self._thread.is_alive():
            self._jobs.put((None, None, None))
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        while True:
            event, work, label = self._jobs.get()
            if event is None:
                return
            t0 = time.perf_counter()
            try:
                text, bad = self.explain(work, label)
            except Exception as err:  # an explanation failure must not stop labels
                log.warning("explanation failed: %s", err)
                continue
            self.finish(dict(event, explanation=text, unsupported=[c.text for c in bad],
                             latency_ms=dict(event["latency_ms"], explain=(time.perf_counter() - t0) * 1e3)),
                        work.t_received)

    def explain(self, w: schema.PromptWork, label: str) -> tuple[str, list[grounding.Claim]]:
        """(grounded explanation, unsupported claims) of one work item; streams its raw pieces."""
        tokens = torch.from_numpy(np.array(w.tokens))[None]   # [1, S, H], a writable copy
        mgs = MGResult.from_jsonable(w.mgs) if w.mgs else None
        evidence = descriptors_of(w)
        if not self.stream_text:
            (text, bad), = self.model.explain_tokens(tokens, [evidence], [label],
                                                     max_new_tokens=self.max_new_tokens, mgs=[mgs])
            return text, bad
        pieces: list[str] = []

        def piece(text: str, done: bool = False) -> schema.EmotionText:
            return schema.EmotionText(sensor=w.sensor, body=w.body, window_seq=w.window_seq, text=text, done=done,
                                      index=len(pieces))
        try:
            for text in self.model.explain_tokens_stream(tokens, evidence, label, mgs, self.max_new_tokens):
                if text:  # the streamer may flush an empty piece at the end
                    self.send(piece(text))
                    pieces.append(text)
        finally:
            self.send(piece("", done=True))
        return self.model.ground("".join(pieces), evidence, mgs)
