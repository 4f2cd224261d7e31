"""One pacing timer for every fixed-rate loop: sleeps to the schedule, counts overruns.

Sources carry capture timestamps; ``Pacer.wait(t)`` releases a frame when wall time reaches
``start + (t - t0) / speed``. ``speed=0`` means as fast as possible. A frame that is released
more than one frame period late is an overrun: counted, and the schedule is not shifted, so a
short stall catches up instead of drifting.
"""
from __future__ import annotations

import time


class Pacer:
    def __init__(self, speed: float = 1.0, period: float = 1 / 30, clock=time.monotonic,
                 sleep=time.sleep) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0 (0 = as fast as possible)")
        self.speed, self.period = speed, period
        self._clock, self._sleep = clock, sleep
        self._t0: float | None = None     # first source timestamp
        self._w0 = 0.0                    # wall clock at the first frame
        self.overruns = 0
        self.max_lag = 0.0                # seconds, worst lateness seen

    def reset(self) -> None:
        """Restart the schedule (a looping file source jumps back in time)."""
        self._t0 = None

    def wait(self, t: float) -> float:
        """Block until source time ``t`` is due; return the lateness in seconds (>= 0)."""
        now = self._clock()
        if self._t0 is None or t < self._t0:
            self._t0, self._w0 = t, now
            return 0.0
        if self.speed == 0:
            return 0.0
        due = self._w0 + (t - self._t0) / self.speed
        if due > now:
            self._sleep(due - now)
            return 0.0
        lag = now - due
        self.max_lag = max(self.max_lag, lag)
        if lag > self.period:
            self.overruns += 1
        return lag
