"""``sessions export --to foxglove,ros2`` and ``record --foxglove``: the file reads back with the
mcap, mcap-ros2-support and mcap-protobuf-support decoders, with the right schemas and counts, and
the bus messages still replay."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("foxglove", reason="the foxglove extra (foxglove-sdk) is not installed")
pytest.importorskip("rosbags", reason="the ros2 extra (rosbags) is not installed")
ros2_decoder = pytest.importorskip("mcap_ros2.decoder", reason="mcap-ros2-support is not installed")
pb_decoder = pytest.importorskip("mcap_protobuf.decoder", reason="mcap-protobuf-support is not installed")

from mcap.reader import make_reader  # noqa: E402

from bodytalk.stream import schema  # noqa: E402
from bodytalk.stream.session_file import SessionReader, SessionWriter  # noqa: E402
from bodytalk.stream.transport import Publisher  # noqa: E402
from tests.helpers import free_addr, run_bodytalk, start_bodytalk, stop  # noqa: E402
from tests.bridges.messages import event  # noqa: E402

FRAMES, BODIES = 12, 2


def two_body_frame(seq: int) -> schema.SkeletonFrame:
    rng = np.random.default_rng(seq)
    return schema.SkeletonFrame(sensor="kinect0", seq=seq, t_capture=seq / 30, layout="kinect_v2",
                                body_ids=np.array([3, 4], np.int32),
                                joints=rng.normal(size=(BODIES, 25, 3)).astype(np.float32),
                                confidence=np.ones((BODIES, 25), np.float32))


@pytest.fixture
def session(tmp_path):
    path = tmp_path / "in.mcap"
    with SessionWriter(path) as w:
        t = 1_700_000_000_000_000_000
        for n in range(1, FRAMES + 1):
            w.write(schema.encode(two_body_frame(n), ts=t / 1e9), log_time=t)
            if n % 4 == 0:
                w.write(schema.encode(event(n), ts=t / 1e9), log_time=t + 1)
            t += 33_000_000
        w.write([b"skeleton.frame.bad", b"\x00garbage"], log_time=t)  # kept, nothing derived
    return path


def read_back(path) -> tuple[dict, dict]:
    """topic -> (schema name, schema encoding, message encoding) and topic -> decoded messages:
    CDR and protobuf by the mcap-ros2-support / mcap-protobuf-support decoders, JSON by json."""
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[ros2_decoder.DecoderFactory(), pb_decoder.DecoderFactory()])
        summary = reader.get_summary()
        channels = {c.topic: c for c in summary.channels.values()}
        kinds = {t: (summary.schemas[c.schema_id].name if c.schema_id else None,
                     summary.schemas[c.schema_id].encoding if c.schema_id else None, c.message_encoding)
                 for t, c in channels.items()}
        typed = [t for t, c in channels.items() if c.message_encoding in ("cdr", "protobuf")]
        decoded: dict[str, list] = {}
        for _, channel, _, obj in reader.iter_decoded_messages(topics=typed):
            decoded.setdefault(channel.topic, []).append(obj)
        for _, channel, message in reader.iter_messages(topics=[t for t in channels if kinds[t][2] == "json"]):
            decoded.setdefault(channel.topic, []).append(json.loads(message.data))
    return kinds, decoded


def check_foxglove(kinds: dict, decoded: dict) -> None:
    assert kinds["/bodytalk/scene"] == ("foxglove.SceneUpdate", "protobuf", "protobuf")
    assert kinds["/bodytalk/tf"][:2] == ("foxglove.FrameTransforms", "protobuf")
    assert kinds["/bodytalk/explanations"][:2] == ("foxglove.Log", "protobuf")
    assert kinds["/bodytalk/bodies/kinect0_3/emotion"] == ("bodytalk.Emotion", "jsonschema", "json")
    scenes = decoded["/bodytalk/scene"]
    assert len(scenes) == FRAMES
    assert sum(len(s.entities) for s in scenes) == BODIES * FRAMES
    last = scenes[-1].entities[0]
    assert last.id == "body_kinect0_3" and len(last.spheres) == 25 and len(last.lines[0].points) == 2 * 24
    assert last.texts[0].text.startswith("fearful\nArms drawn in.")
    assert len(decoded["/bodytalk/explanations"]) == FRAMES // 4
    assert decoded["/bodytalk/bodies/kinect0_3/emotion"][0]["probs"] == {"fearful": 0.6, "sad": 0.4}


def test_export_to_foxglove_and_ros2_reads_back_with_the_decoders(session, tmp_path) -> None:
    out = tmp_path / "out.mcap"
    done = run_bodytalk(["sessions", "export", session, "--to", "foxglove,ros2", out])
    assert done.returncode == 0, done.stderr
    kinds, decoded = read_back(out)
    check_foxglove(kinds, decoded)
    assert kinds["/humans/bodies/kinect0_3/expression"] == ("hri_msgs/msg/Expression", "ros2msg", "cdr")
    assert kinds["/humans/bodies/tracked"] == ("hri_msgs/msg/IdsList", "ros2msg", "cdr")
    assert kinds["/tf"] == ("tf2_msgs/msg/TFMessage", "ros2msg", "cdr")
    assert len(decoded["/tf"]) == FRAMES and len(decoded["/tf"][0].transforms) == BODIES * 26
    expressions = decoded["/humans/bodies/kinect0_3/expression"]
    assert len(expressions) == FRAMES // 4 and expressions[0].expression == "scared"
    assert [len(m.ids) for m in decoded["/humans/bodies/tracked"]] == [BODIES] * FRAMES
    # The bus messages are all there, byte for byte, and only they replay.
    original, copy = SessionReader(session), SessionReader(out)
    assert [r.frames for r in copy.records()] == [r.frames for r in original.records()]
    assert copy.skipped == 0


def test_record_foxglove_writes_the_channels_next_to_the_bus_payloads(tmp_path) -> None:
    addr, out = free_addr(), tmp_path / "rec.mcap"
    with Publisher(addr) as pub:
        rec = start_bodytalk(["record", "--sub", addr, "--foxglove", "--out", out, "--duration", 8])
        sent = 0
        for n in range(1, 400):
            if rec.poll() is not None:
                break
            pub.send(two_body_frame(n))
            if n % 4 == 0:
                pub.send(event(n))
            sent = n
            time.sleep(0.015)
        _, err = stop(rec, timeout=20)
    assert rec.returncode == 0, err
    kinds, decoded = read_back(out)
    bus = list(SessionReader(out).records())
    frames = sum(r.topic.startswith("skeleton.frame.") for r in bus)
    assert frames > 0 and sent
    assert len(decoded["/bodytalk/scene"]) == frames
    assert kinds["/bodytalk/scene"][0] == "foxglove.SceneUpdate"
    assert kinds["skeleton.frame.kinect0"][2] == "bodytalk-multipart/msgpack"
