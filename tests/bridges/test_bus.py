"""What the bridges share: bodies leave after ``forget_after`` seconds unseen, or at once when the
``max_bodies`` bound needs room, so a stream of new body ids cannot grow a bridge's state."""
from __future__ import annotations

import time

import numpy as np

from bodytalk.bridges import bus
from bodytalk.stream import schema


class Recorder(bus.Bridge):
    def __init__(self) -> None:
        super().__init__(intake=None, forget_after=0.05)
        self.gone: list[tuple[str, str]] = []

    def handle(self, msg, ts) -> None:
        pass

    def left(self, key) -> None:
        self.gone.append(key)


def frame(ids: list[int]) -> schema.SkeletonFrame:
    n = len(ids)
    return schema.SkeletonFrame(sensor="k", seq=1, t_capture=0.0, layout="kinect_v2",
                                body_ids=np.array(ids, np.int32), joints=np.zeros((n, 25, 3), np.float32),
                                confidence=np.ones((n, 25), np.float32))


def test_new_bodies_beyond_the_bound_push_the_longest_unseen_out() -> None:
    bridge = Recorder()
    for i in range(bus.MAX_BODIES + 6):
        bridge.present(frame([i]))
    assert len(bridge.presence.seen) == bus.MAX_BODIES
    assert bridge.gone == [("k", str(i)) for i in range(6)]


def test_a_body_unseen_for_forget_after_leaves_at_the_next_beat() -> None:
    bridge = Recorder()
    bridge.present(frame([1, 2]))
    time.sleep(0.1)
    bridge.present(frame([2]))
    bridge.beat()
    assert bridge.gone == [("k", "1")] and list(bridge.presence.seen) == [("k", "2")]
