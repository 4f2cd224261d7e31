"""UDP sources listen on loopback unless asked, and drop (and count) datagrams from senders
outside ``?allow=``."""
import time

import pytest

from tests.capture.fakes.reader import SourceReader
from tests.capture.fakes.rokoko import scene
from tests.capture.fakes.udp import PeriodicSender


@pytest.mark.parametrize("query, host", [("", "127.0.0.1"), ("?bind=0.0.0.0", "0.0.0.0")])
def test_udp_sources_listen_on_loopback_unless_asked(query, host):
    reader = SourceReader(f"rokoko://:0{query}")
    try:
        assert reader.src._udp.sock.getsockname()[0] == host
    finally:
        reader.close()


def test_datagrams_from_other_senders_are_dropped_and_counted():
    reader = SourceReader("rokoko://:0?allow=10.9.9.9")
    sender = PeriodicSender(reader.src.port, scene)
    try:
        deadline = time.monotonic() + 20
        while reader.src.counters["refused_sender"] < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reader.src.counters["refused_sender"] >= 5
        assert reader.frames.empty() and reader.src.counters["packets"] == 0
    finally:
        sender.stop()
        reader.close()


def test_an_allowed_sender_gets_through():
    reader = SourceReader("rokoko://:0?allow=127.0.0.1")
    sender = PeriodicSender(reader.src.port, scene)
    try:
        assert len(reader.take(3)) == 3 and reader.src.counters["refused_sender"] == 0
    finally:
        sender.stop()
        reader.close()


def test_a_bad_allow_list_is_one_line():
    from bodytalk.capture import source as sources
    with pytest.raises(sources.SourceError, match="expected IPv4 addresses"):
        sources.create("rokoko://:0?allow=robot").open()
