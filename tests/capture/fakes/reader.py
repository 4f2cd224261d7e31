"""Read a live source in a thread, as the capture loop does, and wait on what it yields.

Every wait is bounded (a generous deadline that only a broken source hits) and the tests assert
on what arrived, never on how long it took.
"""
from __future__ import annotations

import queue
import threading

from bodytalk.capture import source as sources

DEADLINE = 20.0  # seconds; a working source needs a small fraction of this


class SourceReader:
    """Opens ``uri`` with fast link timing, runs ``frames()`` in a thread and records frames
    and ``(state, message)`` status reports."""

    def __init__(self, uri: str, fast: bool = True) -> None:
        if fast:  # short disconnect detection so the kill/restart tests stay short
            uri += ("&" if "?" in uri else "?") + "timeout=0.5&backoff=0.05&backoff_max=0.2"
        self.src = sources.create(uri)
        self.frames: queue.Queue = queue.Queue()
        self.statuses: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.src.on_status = lambda state, message: self.statuses.put((state, message))
        self.src.open()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self.src.frames():
                self.frames.put(frame)
        except BaseException as err:  # surfaced by the waits below
            self.error = err

    def take(self, n: int) -> list:
        """The next ``n`` frames (fails the test if they do not come)."""
        out = []
        for _ in range(n):
            try:
                out.append(self.frames.get(timeout=DEADLINE))
            except queue.Empty:
                raise AssertionError(f"got {len(out)} of {n} frames; source error: {self.error!r}; "
                                     f"counters {dict(self.src.counters)}") from None
        return out

    def drain(self) -> None:
        while not self.frames.empty():
            self.frames.get_nowait()

    def wait_status(self, state: str) -> str:
        """The message of the next status report in ``state`` (earlier other states skipped)."""
        while True:
            try:
                got, message = self.statuses.get(timeout=DEADLINE)
            except queue.Empty:
                raise AssertionError(f"no {state!r} status; source error: {self.error!r}") from None
            if got == state:
                return message

    def close(self) -> None:
        self.src.close()
        self._thread.join(timeout=DEADLINE)
