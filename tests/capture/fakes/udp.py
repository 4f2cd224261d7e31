"""A fake sensor that pushes datagrams to a loopback port at a fixed rate until stopped."""
from __future__ import annotations

import socket
import threading
from typing import Callable


class PeriodicSender:
    """Sends ``packet(i)`` (bytes, or a list of datagrams) to 127.0.0.1:``port`` at ``rate`` Hz
    in a thread. ``stop()`` is the killed sensor; a new sender is the restarted one."""

    def __init__(self, port: int, packet: Callable[[int], bytes | list[bytes]],
                 rate: float = 100.0) -> None:
        self.port, self.packet, self.period = port, packet, 1.0 / rate
        self.sent = 0
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def send_raw(self, data: bytes) -> None:
        """One extra datagram now (malformed-packet tests)."""
        self._sock.sendto(data, ("127.0.0.1", self.port))

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            out = self.packet(self.sent)
            for data in out if isinstance(out, list) else [out]:
                self._sock.sendto(data, ("127.0.0.1", self.port))
            self.sent += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()
