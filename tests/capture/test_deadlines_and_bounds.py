"""Deadlines that hold while a live source is silent, and bounded synthetic sources."""
import subprocess
import time

import pytest

from bodytalk.capture import source as sources
from bodytalk.capture.sources.live import LinkDown, LiveSource
from tests.helpers import free_addr, run_bodytalk


def test_duration_ends_capture_of_a_silent_live_source():
    try:
        out = run_bodytalk(["capture", "--source", "rokoko://:0?timeout=0.5", "--pub", free_addr(),
                            "--duration", "1"], timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("capture --duration 1 of a silent source was still running after 60 s")
    assert out.returncode == 0, out.stderr


class _Unplugged(LiveSource):
    """A sensor that never answers."""
    scheme = "unplugged"

    def connect(self) -> None:
        raise LinkDown("nobody there")


def test_the_deadline_cuts_the_reconnect_back_off():
    src = _Unplugged("", {"backoff": "30", "backoff_max": "60"})
    src.open()
    src.stop_at = time.monotonic() + 0.5
    try:
        assert list(src.frames()) == []   # returns at the deadline instead of sleeping 30 s
    finally:
        src.close()


@pytest.mark.parametrize("uri, why", [("synthetic:?bodies=100000", "bodies must be 1-64"),
                                      ("synthetic:?fps=1e30", "fps <= 1000")])
def test_synthetic_sources_are_bounded(uri, why):
    with pytest.raises(sources.SourceError, match=why):
        sources.create(uri).open()
