"""The capture process in-process, with a fake source registered exactly like a real one."""

import numpy as np
import pytest

from bodytalk.capture import layouts_known, service, source
from bodytalk.stream import schema, topics
from tests.capture.helpers import captured
from tests.helpers import Collect

N_FRAMES = 150  # 5 s at 30 Hz


class FakeSource(source.Source):
    scheme = "fake"
    help = "test fake: two bodies, 5 s"
    example = "fake:"

    def open(self):
        self.layout, self.fps = layouts_known.KINECT_V2, 30.0
        if self.target == "fail":
            raise source.SourceError("fake: device not found")

    def frames(self):
        # "leave": body 9 leaves after 20 frames; "short": the source ends after 30 frames
        for i in range(30 if self.target == "short" else N_FRAMES):
            ids = [4] if self.target == "leave" and i >= 20 else [4, 9]
            joints = np.tile(np.linspace(0, 1, 25, dtype=np.float32)[None, :, None], (len(ids), 1, 3)) + i * 0.01
            yield source.Frame(t=i / 30, body_ids=np.array(ids, np.int32), joints=joints,
                               confidence=np.ones((len(ids), 25), np.float32), labels={4: {"emotion": "sad"}})
            if self.target == "disconnect" and i == 40:
                raise source.SourceError("fake: sensor unplugged")


source.register("fake", __name__, "FakeSource")


def test_frames_windows_and_end_status():
    rc, msgs = captured("fake:", speed=0)
    assert rc == 0
    frames = [m for m in msgs if isinstance(m, schema.SkeletonFrame)]
    windows = [m for m in msgs if isinstance(m, schema.SkeletonWindow)]
    status = [m for m in msgs if isinstance(m, schema.Status)]
    assert len(frames) == N_FRAMES and [f.seq for f in frames] == list(range(N_FRAMES))
    assert frames[0].joints.shape == (2, 25, 3) and frames[0].layout == "kinect_v2"
    # 150 frames, 60-frame windows every 15 frames -> starts at frames 0, 15, ..., 90: 7 a body
    assert sorted({w.body for w in windows}) == ["4", "9"]
    assert sum(w.body == "4" for w in windows) == 7
    assert windows[0].joints.shape == (60, 17, 3) and windows[0].topic == topics.window("fake", "4")
    assert [w.labels for w in windows if w.body == "4"][0] == {"emotion": "sad"}
    assert status[-1].state == "ended" and status[-1].counters["frames"] == N_FRAMES


def test_disconnect_is_reported_on_the_status_topic():
    rc, msgs = captured("fake:disconnect", speed=0)
    assert rc == 1
    last = [m for m in msgs if isinstance(m, schema.Status)][-1]
    assert last.state == "disconnected" and "unplugged" in last.message


def test_open_failure_is_reported_not_raised():
    # The only message is the first one (the helper joins its subscriber before the run).
    rc, msgs = captured("fake:fail", speed=0)
    assert rc == 1
    assert [m.message for m in msgs if isinstance(m, schema.Status)] == ["fake: device not found"]


def test_unknown_scheme_lists_the_known_ones():
    with pytest.raises(source.SourceError, match="known schemes: .*bvh.*synthetic"):
        source.create("kinect7:")


def test_cli_exit_codes(capsys):
    assert service.main(["--source", "nope:x", "--speed", "0"]) == 2
    assert service.main(["--source", "fake:", "--speed", "-1"]) == 2


def test_loop_keeps_time_increasing():
    rc, msgs = captured("fake:", speed=0, loop=True, duration=1.0)
    frames = [m for m in msgs if isinstance(m, schema.SkeletonFrame)]
    assert rc == 0 and len(frames) > N_FRAMES  # looped at least once at speed 0
    t = np.array([f.t_capture for f in frames])
    assert np.all(np.diff(t) > 0)


def test_capture_steps_one_frame_at_a_time():
    # The process's shape (as Server and Worker): a test drives it frame by frame with no socket.
    pub = Collect()
    cap = service.Capture(service.CaptureConfig(source="fake:", speed=0, stagger=False), source.create("fake:"), pub)
    assert cap.open()
    frames = cap.src.frames()
    times = [cap.step(next(frames)) for _ in range(60)]
    assert times == pytest.approx([i / 30 for i in range(60)])
    kinds = [type(m) for m in pub.msgs]
    assert kinds.count(schema.SkeletonFrame) == 60
    # A 2 s window at 30 fps closes on the 60th frame, one per body.
    windows = [m for m in pub.msgs if isinstance(m, schema.SkeletonWindow)]
    assert sorted(w.body for w in windows) == ["4", "9"] and cap.counts == {**cap.counts, "frames": 60, "windows": 2}
    cap.beat(rate_hz=30.0)
    assert isinstance(pub.msgs[-1], schema.Status) and pub.msgs[-1].counters["frames"] == 60


def test_a_body_that_leaves_before_its_first_window_gives_one_padded_window():
    rc, msgs = captured("fake:leave", speed=0)
    windows = [m for m in msgs if isinstance(m, schema.SkeletonWindow)]
    assert rc == 0
    (left,) = [w for w in windows if w.body == "9"]
    assert left.padded and left.real_frames == 20 and left.joints.shape == (60, 17, 3)
    assert left.t_start == 0.0 and left.t_end == pytest.approx(19 / 30)
    stayed = [w for w in windows if w.body == "4"]
    assert len(stayed) == 7 and not any(w.padded for w in stayed)


def test_a_source_that_ends_early_gives_each_body_one_padded_window():
    rc, msgs = captured("fake:short", speed=0)
    windows = [m for m in msgs if isinstance(m, schema.SkeletonWindow)]
    assert rc == 0 and sorted(w.body for w in windows) == ["4", "9"]
    assert all(w.padded and w.real_frames == 30 for w in windows)
    # the padding reflects the motion (each frame's joints grow by 0.01): frame 30 repeats frame 28
    w = windows[0]
    assert np.allclose(w.joints[30] - w.joints[28], 0) and not np.allclose(w.joints[30], w.joints[29])
    status = [m for m in msgs if isinstance(m, schema.Status)][-1]
    assert status.state == "ended" and status.counters["windows"] == 2
