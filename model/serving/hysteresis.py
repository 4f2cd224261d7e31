"""A stable label per body: no flicker between windows.

Probabilities are smoothed with an exponential moving average; the stable label moves to a new
label only when that label leads the smoothed distribution by ``margin`` for ``hold`` consecutive
windows. One noisy window never changes what a robot reacts to.
"""
from __future__ import annotations

from typing import Mapping, Sequence


class StableLabel:
    def __init__(self, labels: Sequence[str], alpha: float = 0.5, margin: float = 0.1, hold: int = 2) -> None:
        if not 0 < alpha <= 1 or margin < 0 or hold < 1:
            raise ValueError("need 0 < alpha <= 1, margin >= 0, hold >= 1")
        self.labels, self.alpha, self.margin, self.hold = tuple(labels), alpha, margin, hold
        self.smoothed: dict[str, float] | None = None
        self.label: str | None = None
        self._streak = 0

    def update(self, probs: Mapping[str, float]) -> bool:
        """Feed one window's probabilities; True when the stable label changed."""
        if self.smoothed is None:
            self.smoothed = {k: float(probs.get(k, 0.0)) for k in self.labels}
        else:
            self.smoothed = {k: (1 - self.alpha) * v + self.alpha * float(probs.get(k, 0.0))
                             for k, v in self.smoothed.items()}
        lead = max(self.smoothed, key=self.smoothed.get)
        if self.label is None:
            self.label = lead
            return True
        if lead != self.label and self.smoothed[lead] - self.smoothed[self.label] >= self.margin:
            self._streak += 1
        else:
            self._streak = 0
        if self._streak >= self.hold:
            self.label, self._streak = lead, 0
            return True
        return False
