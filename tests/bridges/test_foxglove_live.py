"""``bodytalk foxglove``: a WebSocket client speaking the Foxglove protocol sees the channels
advertised with their schemas, and receives the messages of one it subscribes to."""
from __future__ import annotations

import json
import struct
import time

import pytest

pytest.importorskip("foxglove", reason="the foxglove extra (foxglove-sdk) is not installed")
ws_client = pytest.importorskip("websockets.sync.client", reason="websockets is not installed")

from bodytalk.bridges.foxglove.live import FoxgloveBridge, ServerSink  # noqa: E402
from bodytalk.bridges.foxglove.scene import emotion_topic  # noqa: E402
from bodytalk.stream.transport import Publisher, Subscriber  # noqa: E402
from tests.helpers import free_addr  # noqa: E402
from tests.bridges.messages import feeder  # noqa: E402

BINARY_MESSAGE_DATA = 1  # opcode of a server -> client message on a subscription


def test_a_websocket_client_sees_the_channels_and_their_messages() -> None:
    addr = free_addr()
    sink = ServerSink(port=0)
    try:
        with Publisher(addr) as pub, Subscriber(addr, prefixes=("",)) as sub:
            bridge = FoxgloveBridge(sink, sub)
            feed = feeder(pub, bridge)
            with ws_client.connect(f"ws://127.0.0.1:{sink.port}", subprotocols=["foxglove.sdk.v1", "foxglove.websocket.v1"],
                                   open_timeout=10) as ws:
                channels, end = {}, time.monotonic() + 20
                while len(channels) < 4 and time.monotonic() < end:
                    feed()
                    try:
                        msg = ws.recv(timeout=0.05)
                    except TimeoutError:
                        continue
                    if isinstance(msg, str) and json.loads(msg)["op"] == "advertise":
                        channels.update({c["topic"]: c for c in json.loads(msg)["channels"]})
                assert channels["/bodytalk/scene"]["schemaName"] == "foxglove.SceneUpdate"
                assert channels["/bodytalk/tf"]["schemaName"] == "foxglove.FrameTransforms"
                assert channels["/bodytalk/explanations"]["schemaName"] == "foxglove.Log"
                probs = channels[emotion_topic("kinect0_3")]
                assert probs["encoding"] == "json"
                ws.send(json.dumps({"op": "subscribe", "subscriptions": [{"id": 7, "channelId": probs["id"]}]}))
                payload, end = None, time.monotonic() + 20
                while payload is None and time.monotonic() < end:
                    feed()
                    try:
                        msg = ws.recv(timeout=0.05)
                    except TimeoutError:
                        continue
                    if isinstance(msg, bytes) and msg[0] == BINARY_MESSAGE_DATA:
                        sub_id, _log_time = struct.unpack_from("<IQ", msg, 1)
                        assert sub_id == 7
                        payload = json.loads(msg[13:])
        assert payload is not None, "no message on the subscribed channel"
        assert payload["body"] == "kinect0_3" and payload["stable_label"] == "fearful"
        assert payload["probs"] == {"fearful": 0.6, "sad": 0.4} and payload["mgs"] == ["fold_arms"]
    finally:
        sink.close()
