"""``kinect2:`` against a fake ``pykinect2`` in ``sys.modules``, and its platform-error paths."""
import time

import numpy as np
import pytest

from bodytalk.capture import source as sources
from bodytalk.capture.layouts_known import KINECT_V2
from bodytalk.capture.source import SourceError
from bodytalk.capture.sources import kinect2
from bodytalk.capture.sources.kinect2 import NEEDS
from tests.capture.fakes import pykinect2 as fake
from tests.capture.fakes.reader import SourceReader


@pytest.fixture
def windows(monkeypatch):
    """Pretend to be Windows, and undo the shims the source installs into time and numpy."""
    monkeypatch.setattr(kinect2, "PLATFORM", "win32")
    had = {"clock": "clock" in time.__dict__, "object": "object" in np.__dict__}
    yield
    if not had["clock"]:
        time.__dict__.pop("clock", None)
    if not had["object"]:
        np.__dict__.pop("object", None)


def test_off_windows_the_error_says_where_to_run(monkeypatch):
    monkeypatch.setattr(kinect2, "PLATFORM", "linux")
    fake.install(monkeypatch)  # even with a binding importable, Linux has no Kinect SDK
    with pytest.raises(SourceError) as err:
        sources.create("kinect2:").open()
    assert NEEDS in str(err.value) and "linux" in str(err.value)


@pytest.mark.parametrize("error", [SyntaxError("unknown encoding: mbcs"),
                                   ImportError("No module named 'comtypes'"),
                                   OSError("[WinError 126] Kinect20.dll not found")])
def test_every_import_failure_is_one_clear_error(windows, monkeypatch, error):
    fake.install_broken(monkeypatch, error)
    with pytest.raises(SourceError) as err:
        sources.create("kinect2:").open()
    assert NEEDS in str(err.value) and type(error).__name__ in str(err.value)


def test_bodies_arrive_despite_the_bindings_traps(windows, monkeypatch):
    runtime = fake.install(monkeypatch)
    reader = SourceReader("kinect2:")
    try:
        frames = reader.take(5)
    finally:
        reader.close()
    assert runtime.opened == 1
    f = frames[-1]
    assert f.joints.shape == (2, 25, 3) and f.body_ids.tolist() == [1, 2]  # 64-bit ids -> 1, 2
    assert all(x.body_ids.tolist() == [1, 2] for x in frames)
    stamps = [x.joints[0, 0, 0] for x in frames]  # x = frame number / 1000: no frame twice
    assert len(set(stamps)) == len(stamps)
    np.testing.assert_allclose(f.joints[0, :, 1], np.arange(25) / 10, atol=1e-6)
    assert f.confidence[0, KINECT_V2.index("ThumbLeft")] == 0.5
    assert f.confidence[0, KINECT_V2.index("ThumbRight")] == 0.0
    assert f.confidence[0, KINECT_V2.index("Head")] == 1.0


def test_a_new_person_gets_a_new_id(windows, monkeypatch):
    runtime = fake.install(monkeypatch)
    reader = SourceReader("kinect2:")
    try:
        reader.take(2)
        runtime.tracked_ids = (fake.TRACKING_IDS[1], 99)  # body 1 left, someone new came
        ids: list = []
        for _ in range(100):  # frames already queued before the change come first
            ids = reader.take(1)[0].body_ids.tolist()
            if ids == [2, 3]:
                break
        assert ids == [2, 3], f"the new person did not get a new id: {ids}"
    finally:
        reader.close()


def test_sensor_unplugged_and_plugged_back(windows, monkeypatch):
    runtime = fake.install(monkeypatch)
    reader = SourceReader("kinect2:")
    try:
        reader.take(3)
        runtime.sensor_present = False
        assert "no data" in reader.wait_status("disconnected")
        runtime.sensor_present = True
        assert "reconnected" in reader.wait_status("running")
        assert reader.take(2)[-1].joints.shape == (2, 25, 3)
    finally:
        reader.close()
    assert runtime.opened >= 2  # the runtime was reopened


@pytest.mark.filterwarnings("ignore::FutureWarning")  # numpy announces np.object's future meaning
def test_the_fakes_traps_are_real_without_the_shims():
    # What the shims repair: on current NumPy and Python these raise inside the binding's
    # bare try/except, so the frame thread never publishes a frame.
    assert "object" not in np.__dict__ and not hasattr(time, "clock")
    with pytest.raises(AttributeError):
        fake.KinectBodyFrameData(0, fake.TRACKING_IDS)
