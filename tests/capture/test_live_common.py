"""The shared live-source pieces, and every live scheme's behaviour without its optional package."""
import sys

import numpy as np
import pytest

from bodytalk.capture import source as sources
from bodytalk.capture.source import SourceError
from bodytalk.capture.sources.live import BodyIds, LinkConfig, sanitize

LIVE = ("kinect2", "azure-kinect", "natnet", "xsens", "neuron", "rokoko", "lsl", "osc", "webcam", "video")


@pytest.mark.parametrize("scheme", LIVE)
def test_every_live_scheme_is_listed_without_its_sdk(monkeypatch, scheme):
    for sdk in ("pylsl", "pythonosc", "natnet", "mediapipe", "cv2", "pykinect2", "pykinect_azure"):
        monkeypatch.setitem(sys.modules, sdk, None)  # importing it now fails
    cls = sources.source_class(scheme)
    assert cls.scheme == scheme and cls.help and cls.example.startswith(scheme + ":")


@pytest.mark.parametrize("uri, package", [("osc://127.0.0.1:0", "pythonosc"),
                                          ("natnet://127.0.0.1", "natnet"),
                                          ("lsl:some_stream", "pylsl")])
def test_a_missing_package_names_the_extra(monkeypatch, uri, package):
    monkeypatch.setitem(sys.modules, package, None)
    with pytest.raises(SourceError, match=r"bodytalk\[mocap\]"):
        sources.create(uri).open()


def test_link_options_are_validated():
    with pytest.raises(SourceError, match="timeout > 0"):
        sources.create("xsens://:0?timeout=0")
    with pytest.raises(SourceError, match="backoff"):
        LinkConfig(backoff=2, backoff_max=1)
    with pytest.raises(SourceError, match="not a valid float"):
        sources.create("rokoko://:0?timeout=soon")


def test_bad_ports_are_clear_errors():
    with pytest.raises(SourceError, match="not a number"):
        sources.create("xsens://:ninety").open()
    with pytest.raises(SourceError, match="out of range"):
        sources.create("rokoko://:70000").open()


def test_body_ids_are_small_stable_and_never_reused():
    ids = BodyIds()
    assert ids([2**60, "ana"]).tolist() == [1, 2]
    assert ids(["ana"]).tolist() == [2]
    assert ids([7, 2**60]).tolist() == [3, 1]
    assert ids([]).dtype == np.int32


def test_sanitize_marks_non_finite_joints_missing():
    joints = np.ones((1, 3, 3), np.float32)
    joints[0, 1, 2] = np.nan
    joints[0, 2, 0] = np.inf
    j, c = sanitize(joints, np.array([[1.5, 1.0, 0.7]]))
    assert np.isfinite(j).all() and c.tolist() == [[1.0, 0.0, 0.0]]
    assert (j[0, 1:] == 0).all() and (j[0, 0] == 1).all()
