"""Raw datagrams or bytes a test hands a fake server to send next.

The test thread adds while the server thread sends: a plain list there loses what is added between
the server's read of it and its ``clear()``, and a test waiting for those bytes then waits forever.
"""
from __future__ import annotations

import threading


class Outbox:
    def __init__(self) -> None:
        self._items: list[bytes] = []
        self._lock = threading.Lock()

    def put(self, *items: bytes) -> None:
        """Queue ``items`` for the server's next send (test thread)."""
        with self._lock:
            self._items.extend(items)

    def take(self) -> list[bytes]:
        """Everything queued so far, in order, and empty the box (server thread)."""
        with self._lock:
            items, self._items = self._items, []
        return items
