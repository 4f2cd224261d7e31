"""``azure-kinect:`` against a fake ``pykinect_azure`` in ``sys.modules``, and its error paths."""
import sys

import numpy as np
import pytest

from bodytalk.capture import source as sources
from bodytalk.capture.layouts_known import AZURE_KINECT
from bodytalk.capture.source import SourceError
from bodytalk.capture.sources.azure_kinect import NEEDS
from tests.capture.fakes import pykinect_azure as fake
from tests.capture.fakes.reader import SourceReader


def test_missing_binding_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pykinect_azure", None)  # import raises ImportError
    with pytest.raises(SourceError) as err:
        sources.create("azure-kinect:0").open()
    assert NEEDS in str(err.value) and "ModuleNotFoundError" in str(err.value)


def test_missing_sdk_libraries_do_not_exit_the_process(monkeypatch):
    fake.install(monkeypatch, libraries_load=False)
    with pytest.raises(SourceError, match="did not load: SystemExit"):
        sources.create("azure-kinect:0").open()


def test_bodies_in_canonical_metres(monkeypatch):
    fake.install(monkeypatch)
    reader = SourceReader("azure-kinect:0")
    try:
        f = reader.take(3)[-1]
    finally:
        reader.close()
    assert f.joints.shape == (2, 32, 3) and f.body_ids.tolist() == [1, 2]
    np.testing.assert_allclose(f.joints[0, :, 1], np.arange(32) / 100, atol=1e-6)  # mm, Y down -> m, Y up
    np.testing.assert_allclose(f.joints[0, :, 2], 2.0, atol=1e-6)
    assert f.confidence[0, AZURE_KINECT.index("EAR_LEFT")] == 0.5
    assert f.confidence[0, AZURE_KINECT.index("PELVIS")] == 1.0


def test_unplugged_then_plugged_back(monkeypatch):
    device = fake.install(monkeypatch)
    reader = SourceReader("azure-kinect:0")
    try:
        reader.take(2)
        device.plugged = False
        assert "SystemExit" in reader.wait_status("disconnected")
        device.plugged = True
        reader.wait_status("running")
        assert reader.take(2)[-1].body_ids.tolist() == [1, 2]
    finally:
        reader.close()
    assert device.opened >= 2
