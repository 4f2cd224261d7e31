"""Bus messages the bridge tests send: one body (kinect0/3) in frames and emotion events."""
from __future__ import annotations

import numpy as np

from bodytalk.stream import schema


def frame(seq: int) -> schema.SkeletonFrame:
    return schema.SkeletonFrame(sensor="kinect0", seq=seq, t_capture=seq / 30, layout="kinect_v2",
                                body_ids=np.array([3], np.int32),
                                joints=np.full((1, 25, 3), 0.5, np.float32), confidence=np.ones((1, 25), np.float32))


def event(seq: int) -> schema.EmotionEvent:
    return schema.EmotionEvent(sensor="kinect0", body="3", window_seq=seq, t_start=0.0, t_end=2.0,
                               status="ok", label="fearful", stable_label="fearful",
                               probs={"fearful": 0.6, "sad": 0.4}, explanation="Arms drawn in.",
                               mgs=[{"name": "fold_arms", "t_start": 0.2, "t_end": 1.0, "confidence": 0.9}],
                               latency_ms={"total": 40.0})


def feeder(pub, bridge):
    """A function that publishes the next frame and event and lets ``bridge`` take them in."""
    seq = iter(range(1, 1_000_000))

    def feed() -> None:
        n = next(seq)
        pub.send(frame(n))
        pub.send(event(n))
        bridge.step(0.05)
    return feed
