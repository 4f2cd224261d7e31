"""Xsens MVN network streamer fake: ``MXTP02`` pose datagrams built with the decoder's own
struct layouts (a 24-byte big-endian header, 32-byte segments)."""
from __future__ import annotations

import numpy as np

from bodytalk.capture.sources.xsens import HEADER, LAST_DATAGRAM, POSE_QUATERNION, SEGMENT


def pose_datagram(sample: int, character: int, positions_cm: np.ndarray, first_id: int = 1,
                  last: bool = True) -> bytes:
    """Segments ``first_id..`` at ``positions_cm [N, 3]`` (identity orientations)."""
    n = len(positions_cm)
    seg = np.zeros(n, SEGMENT)
    seg["id"] = np.arange(first_id, first_id + n)
    seg["pos"] = positions_cm
    seg["quat"] = (1.0, 0.0, 0.0, 0.0)
    header = HEADER.pack(POSE_QUATERNION, sample, LAST_DATAGRAM if last else 0, n, 0, character,
                         23, 0, 0, 0, n * SEGMENT.itemsize)
    return header + seg.tobytes()


def body_cm(sample: int) -> np.ndarray:
    """23 segment positions [23, 3] in cm; segment k sits k cm up (Z), x follows the sample."""
    pos = np.zeros((23, 3), np.float32)
    pos[:, 2] = np.arange(1, 24)
    pos[:, 0] = sample % 100
    return pos


def sample_datagrams(sample: int, characters=(0, 1)) -> list[bytes]:
    """Each character's sample in two datagrams (segments 1..12, then 13..23 flagged last)."""
    out = []
    for c in characters:
        pos = body_cm(sample)
        out += [pose_datagram(sample, c, pos[:12], 1, last=False),
                pose_datagram(sample, c, pos[12:], 13, last=True)]
    return out
