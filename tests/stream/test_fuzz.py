"""Hostile input: thousands of random and mutated messages through ``decode`` and through a real
Subscriber. Nothing may escape but ``DecodeError`` (with a known reason); a receiver drops and
counts exactly the bad ones, delivers every good one, and keeps running.

Mutations are drawn from a seeded numpy RNG (reproducible); hypothesis adds arbitrary headers.
"""
from __future__ import annotations

import dataclasses
import math

import msgpack
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bodytalk.stream import schema
from bodytalk.stream.transport import Publisher, Subscriber
from tests.stream import wire

BASES = [*wire.every_type(), wire.frame(bodies=0), wire.frame(bodies=3), wire.window(t=2, joints=1)]
KEYS = sorted({"v", "type", "ts", "nd", "dtype", "shape", "x"}
              | {name for cls in schema.Message.REGISTRY.values() for name in cls.__dataclass_fields__})
TYPES = sorted(schema.Message.REGISTRY)
WEIRD_FLOATS = [math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324, 0.5, 2.0]


def random_value(rng: np.random.Generator, depth: int = 0):
    """Any msgpack value: what a broken or hostile peer might put anywhere in a header."""
    kind = rng.integers(12 if depth < 3 else 8)
    if kind == 0:
        return int(rng.integers(-2**63, 2**63 - 1))
    if kind == 1:
        return int(rng.integers(-3, 70))
    if kind == 2:
        return WEIRD_FLOATS[rng.integers(len(WEIRD_FLOATS))]
    if kind == 3:
        return [*KEYS, *TYPES, "<f4", "|b1", "é\u2028", ""][rng.integers(len(KEYS) + len(TYPES) + 4)]
    if kind == 4:
        return rng.bytes(int(rng.integers(0, 9)))
    if kind == 5:
        return bool(rng.integers(2))
    if kind == 6:
        return None
    if kind == 7:
        return msgpack.ExtType(int(rng.integers(0, 128)), rng.bytes(3))
    if kind == 8:
        return [random_value(rng, depth + 1) for _ in range(rng.integers(0, 4))]
    if kind == 9:
        return {"nd": random_value(rng, 3), "dtype": random_value(rng, 3), "shape":
                [int(rng.integers(-2, 30)) for _ in range(rng.integers(0, 4))]}
    return {str(random_value(rng, 3)): random_value(rng, depth + 1) for _ in range(rng.integers(0, 4))}


def mutate(rng: np.random.Generator) -> list[bytes]:
    """One message: a valid one, mutated one way or another (or sometimes left alone)."""
    frames = wire.frames_of(BASES[rng.integers(len(BASES))], ts=float(rng.uniform(0, 2e9)))
    kind = rng.integers(10)
    if kind == 0:    # bit flips anywhere
        i = int(rng.integers(len(frames)))
        data = bytearray(frames[i])
        for _ in range(rng.integers(1, 4)):
            if data:
                data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
        frames[i] = bytes(data)
    elif kind == 1:  # truncation
        i = int(rng.integers(len(frames)))
        frames[i] = frames[i][:rng.integers(0, max(1, len(frames[i])))]
    elif kind in (2, 3, 4, 5):  # header surgery: swap two values, replace, delete or add a key
        h = wire.header(frames)
        keys = list(h)
        a, b = (keys[i] for i in rng.integers(len(keys), size=2))
        if kind == 2:
            h[a], h[b] = h[b], h[a]
        elif kind == 3:
            h[a] = random_value(rng)
        elif kind == 4:
            del h[a]
        else:  # a plausible name, sometimes as bytes (msgpack allows bin map keys)
            key = KEYS[rng.integers(len(KEYS))]
            h[key.encode() if rng.integers(2) else key] = random_value(rng)
        frames = wire.raw(frames[0], h, *frames[2:])
    elif kind == 6:  # random frame counts
        for _ in range(rng.integers(1, 4)):
            i = int(rng.integers(1, len(frames) + 1))
            if rng.integers(2) and len(frames) > 1:
                del frames[min(i, len(frames) - 1)]
            else:
                frames.insert(i, rng.bytes(int(rng.integers(0, 400))))
    elif kind == 7:  # a random map with plausible keys, random buffers
        head = {KEYS[i]: random_value(rng) for i in rng.integers(len(KEYS), size=rng.integers(0, 12))}
        if rng.integers(2):
            head.update(v=1, type=TYPES[rng.integers(len(TYPES))], ts=1.0)
        buffers = [rng.bytes(int(rng.integers(0, 300))) for _ in range(rng.integers(0, 4))]
        frames = wire.raw(frames[0], head, *buffers)
    elif kind == 8:  # garbage header or topic
        frames[int(rng.integers(2))] = rng.bytes(int(rng.integers(0, 64)))
    return frames


def classify(frames: list[bytes]) -> schema.Message | None:
    """The decoded message, or None for a bad one; anything but DecodeError fails the test."""
    try:
        msg, ts = schema.decode(frames)
    except schema.DecodeError as err:
        assert err.reason in schema.DecodeError.REASONS, err.reason
        assert str(err)
        return None
    assert math.isfinite(ts) and msg.topic == frames[0].decode()
    wire.assert_same(schema.decode(wire.frames_of(msg, ts))[0], msg)  # a good one re-encodes
    return msg


def test_thousands_of_mutations_only_ever_raise_decode_error():
    rng = np.random.default_rng(20240601)
    results = [classify(mutate(rng)) for _ in range(6000)]
    bad = sum(r is None for r in results)
    assert 0.5 * len(results) < bad < len(results)  # the generator really produces both kinds


@settings(max_examples=400, deadline=None, derandomize=True)
@given(topic=st.binary(max_size=40) | st.sampled_from([b"skeleton.frame.k", b"status.c", b"emotion.a.b"]),
       head=st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4) | st.binary(max_size=4), st.recursive(
           st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=8)
           | st.binary(max_size=8), lambda inner: st.lists(inner, max_size=3)
           | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8), max_size=12),
       version=st.sampled_from([None, 1]), mtype=st.sampled_from([None, *TYPES]),
       buffers=st.lists(st.binary(max_size=320), max_size=4))
def test_arbitrary_headers_only_ever_raise_decode_error(topic, head, version, mtype, buffers):
    if version is not None:  # often get past the version and type checks to reach the fields
        head.update(v=version, ts=1.0)
    if mtype is not None:
        head["type"] = mtype
    msg = classify(wire.raw(topic, head, *buffers))  # asserts inside: only DecodeError may escape
    assert msg is None or isinstance(msg, schema.Message)


def test_a_subscriber_drops_exactly_the_bad_ones_and_delivers_the_rest():
    rng = np.random.default_rng(7)
    stream = [mutate(rng) for _ in range(3000)]
    expected = [classify(f) for f in stream]
    end = dataclasses.replace(wire.status(), component="fuzz-end")
    with Publisher("tcp://127.0.0.1:*", hwm=100_000) as pub, \
            Subscriber(pub.addr, hwm=100_000) as sub:  # every topic, no loss at the HWM
        wire.connect(pub, sub, end)
        received, dropped = sub.received, sub.dropped
        for frames in stream:
            pub.send_frames(frames)
        pub.send(end)
        got = []
        while (out := sub.recv(timeout=5)) is not None and out[0].topic != end.topic:
            got.append(out[0])
        good = [m for m in expected if m is not None]
        assert out is not None, "the end marker never arrived"
        assert len(got) == len(good) and sub.received - received == len(good) + 1
        for a, b in zip(got, good):
            wire.assert_same(a, b)
        assert sub.dropped - dropped == len(stream) - len(good) > 1000
        assert set(sub.drops) <= schema.DecodeError.REASONS
