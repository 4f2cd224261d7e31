"""kinect-csv: source -- KinectReader body CSVs: values, tracking states, gaps, corrupt lines,
and every recording of the LabanotationSuite data when the shared data is present."""
from __future__ import annotations

import numpy as np
import pytest

from bodytalk.capture.layouts import U
from bodytalk.capture.layouts_known import KINECT_V2
from bodytalk.capture.source import SourceError, create

T0 = 31_867_373_716  # ticks of 100 ns


def csv_line(ticks: int, joints: np.ndarray, states) -> str:
    """One KinectReader line: ticks, 25 x (x, y, z, state), trailing comma."""
    fields = [str(ticks)]
    for (x, y, z), s in zip(joints, states):
        fields += [f"{x:g}", f"{y:g}", f"{z:g}", str(s)]
    return ",".join(fields) + ",\n"


def body(frame: int) -> np.ndarray:
    """[25, 3] distinct positions per joint and frame."""
    return np.arange(75, dtype=np.float64).reshape(25, 3) / 100 + frame


def open_csv(tmp_path, lines, name="take.csv"):
    path = tmp_path / name
    path.write_text("".join(lines))
    src = create(f"kinect-csv:{path}")
    src.open()
    return src, path


def test_positions_states_and_real_timestamps(tmp_path):
    states = [2] * 25
    states[13], states[14] = 1, 0  # KneeLeft inferred, AnkleLeft not tracked
    # the third frame comes after a dropped one: 66.7 ms instead of 33.3 ms
    ticks = [T0, T0 + 333_333, T0 + 1_000_000]
    src, _ = open_csv(tmp_path, [csv_line(t, body(i), states) for i, t in enumerate(ticks)])
    frames = list(src.frames())
    assert src.layout is KINECT_V2 and src.fps == 30.0
    assert [f.t for f in frames] == pytest.approx([t / 1e7 for t in ticks])
    f = frames[2]
    assert f.body_ids.tolist() == [0] and f.joints.shape == (1, 25, 3) and f.joints.dtype == np.float32
    np.testing.assert_allclose(f.joints[0], body(2), atol=1e-6)
    assert f.confidence[0, 13] == 0.5 and f.confidence[0, 14] == 0.0 and f.confidence[0, 0] == 1.0
    _, conf = src.layout.to_unified(f.joints, f.confidence)
    assert conf[0, U["l_ankle"]] == 0.0 and conf[0, U["l_knee"]] == 0.5 and conf[0, U["r_ankle"]] == 1.0


@pytest.mark.parametrize("make, line, what", [
    (lambda ls: ls[:1] + [ls[1].replace(",2,", ",2,0.5,", 1)] + ls[2:], 2, "expected 101 values, found 102"),
    (lambda ls: ls[:2] + [ls[2].replace(",2,", ",x,", 1)] + ls[3:], 3, "'x'"),
    (lambda ls: ls[:1] + [ls[1].replace(",2,", ",3,", 1)] + ls[2:], 2, "SpineBase has tracking state 3"),
    (lambda ls: [ls[0], ls[2], ls[1]], 3, "timestamp does not increase"),
])
def test_corrupt_lines_name_file_and_line(tmp_path, make, line, what):
    lines = [csv_line(T0 + i * 333_333, body(i), [2] * 25) for i in range(3)]
    with pytest.raises(SourceError, match=what) as err:
        open_csv(tmp_path, make(lines))
    assert str(err.value).startswith(f"{tmp_path / 'take.csv'}:{line}:")


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(SourceError, match="no frames"):
        open_csv(tmp_path, ["\n"])
    with pytest.raises(SourceError, match="no such file"):
        create(f"kinect-csv:{tmp_path / 'absent.csv'}").open()


# frames and inferred / tracked joint samples per file (PROVENANCE.md of the data set)
LABAN = {
    "KinectReader_Data/joints.csv": (371, 2951, 6324),
    "LabanEditor_data_input/Ges01_wavehand.csv": (154, 13, 3837),
    "LabanEditor_data_input/Ges02_balancinghands.csv": (161, 5, 4020),
    "LabanEditor_data_input/Ges03_drawlines.csv": (213, 17, 5308),
    "LabanEditor_data_input/Ges04_comehere.csv": (172, 9, 4291),
    "LabanEditor_data_input/Ges05_demopoint.csv": (190, 3, 4747),
    "LabanEditor_data_input/Ges06_chickenwing.csv": (160, 305, 3695),
}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(LABAN))
def test_every_labanotation_recording(shared_data, name):
    src = create(f"kinect-csv:{shared_data('kinect-v2-labanotation', name)}")
    src.open()
    frames = list(src.frames())
    t = np.array([f.t for f in frames])
    conf = np.stack([f.confidence[0] for f in frames])
    uj, _ = src.layout.to_unified(np.stack([f.joints[0] for f in frames]), conf)
    assert (len(frames), (conf == 0.5).sum(), (conf == 1).sum()) == LABAN[name]
    dt = np.diff(t)
    assert 0.032 < np.median(dt) < 0.034 and dt.min() > 0 and dt.max() < 0.07  # gaps kept as recorded
    assert (uj[:, U["head"], 1] > uj[:, U["pelvis"], 1]).all()
    # the person faces the sensor (-Z), so their left is -X in camera space
    assert (uj[:, U["l_shoulder"], 0] < uj[:, U["r_shoulder"], 0]).all()
