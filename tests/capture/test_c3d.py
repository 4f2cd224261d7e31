"""c3d: source -- C3D fixtures written with ezc3d itself: marker map, units, axes, missing markers."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from bodytalk.capture.layouts import U, UNIFIED_JOINTS
from bodytalk.capture.source import SourceError, create

# A T-pose in the body frame (person's left L, up, forward), metres.
BODY = {
    "pelvis": (0, 0.95, 0), "spine": (0, 1.15, 0), "thorax": (0, 1.40, 0), "neck": (0, 1.50, 0),
    "head": (0, 1.62, 0), "l_shoulder": (0.18, 1.42, 0), "l_elbow": (0.45, 1.42, 0),
    "l_wrist": (0.70, 1.42, 0), "r_shoulder": (-0.18, 1.42, 0), "r_elbow": (-0.45, 1.42, 0),
    "r_wrist": (-0.70, 1.42, 0), "l_hip": (0.10, 0.92, 0), "l_knee": (0.10, 0.50, 0),
    "l_ankle": (0.10, 0.08, 0), "r_hip": (-0.10, 0.92, 0), "r_knee": (-0.10, 0.50, 0),
    "r_ankle": (-0.10, 0.08, 0),
}
# The pelvis is the mean of four markers around it; every other joint has one marker.
PELVIS_MARKERS = {"LASI": (0.12, 0, 0.1), "RASI": (-0.12, 0, 0.1), "LPSI": (0.05, 0, -0.1),
                  "RPSI": (-0.05, 0, -0.1)}
MAP = {"pelvis": list(PELVIS_MARKERS), **{j: [j.upper()] for j in UNIFIED_JOINTS if j != "pelvis"}}
INLINE = ",".join(f"{j}:{'+'.join(m)}" for j, m in MAP.items())


def markers_body_frame() -> dict[str, np.ndarray]:
    out = {m: np.add(BODY["pelvis"], off) for m, off in PELVIS_MARKERS.items()}
    out.update({j.upper(): np.array(p, float) for j, p in BODY.items() if j != "pelvis"})
    return out


def write_c3d(path, frames=3, units="mm", z_up=True, missing=(), labels_prefix=""):
    """Markers of the T-pose walking +0.1 m forward per frame; ``missing`` = (frame, marker)."""
    ezc3d = pytest.importorskip("ezc3d")
    per_unit = {"mm": 1000.0, "m": 1.0, "": 1000.0}[units]
    names = list(markers_body_frame())
    pts = np.ones((4, len(names), frames))
    res = np.zeros((1, len(names), frames))
    for f in range(frames):
        for n, name in enumerate(names):
            lat, up, fwd = markers_body_frame()[name] + [0, 0, 0.1 * f]
            # Z-up lab: person faces -Y, left is +X; Y-up: person faces +Z, left is +X
            pts[:3, n, f] = np.array((lat, -fwd, up) if z_up else (lat, up, fwd)) * per_unit
    for f, name in missing:
        res[0, names.index(name), f] = -1
    c3d = ezc3d.c3d()
    c3d["parameters"]["POINT"]["RATE"]["value"] = [100]
    c3d["parameters"]["POINT"]["LABELS"]["value"] = tuple(labels_prefix + n for n in names)
    if units:
        c3d["parameters"]["POINT"]["UNITS"]["value"] = [units]
    c3d["data"]["points"] = pts
    c3d["data"]["meta_points"] = {"residuals": res}
    c3d.write(str(path))
    return path


def open_c3d(path, query):
    src = create(f"c3d:{path}?{query}")
    src.open()
    return src


def unified_frames(src):
    frames = list(src.frames())
    return frames, np.stack([f.joints[0] for f in frames]), np.stack([f.confidence[0] for f in frames])


def test_z_up_millimetres_to_canonical_with_json_map(tmp_path):
    (tmp_path / "map.json").write_text(json.dumps(MAP))
    src = open_c3d(write_c3d(tmp_path / "t.c3d"), f"map={tmp_path / 'map.json'}")
    frames, joints, conf = unified_frames(src)
    assert src.layout.id == "c3d" and src.layout.joints == UNIFIED_JOINTS and src.fps == 100.0
    assert [f.t for f in frames] == pytest.approx([0, 0.01, 0.02])
    assert frames[0].body_ids.tolist() == [0] and (conf == 1).all()
    # canonical: left +X, up +Y, the person walks along +Z; the pelvis is its markers' mean
    np.testing.assert_allclose(joints[0], np.array([BODY[j] for j in UNIFIED_JOINTS]), atol=1e-5)
    np.testing.assert_allclose(joints[2, U["pelvis"]], [0, 0.95, 0.2], atol=1e-5)


def test_inline_map_metres_and_y_up(tmp_path):
    src = open_c3d(write_c3d(tmp_path / "t.c3d", units="m", z_up=False), f"map={INLINE}&up=y")
    _, joints, _ = unified_frames(src)
    assert src.layout.scale == 1.0
    np.testing.assert_allclose(joints[1, U["head"]], [0, 1.62, 0.1], atol=1e-6)
    assert joints[0, U["l_shoulder"], 0] > joints[0, U["r_shoulder"], 0]


def test_missing_marker_zeroes_confidence_and_holds_the_last_position(tmp_path):
    path = write_c3d(tmp_path / "t.c3d", frames=4, missing=[(2, "LASI"), (0, "HEAD")])
    _, joints, conf = unified_frames(open_c3d(path, f"map={INLINE}"))
    assert conf[:, U["pelvis"]].tolist() == [1, 1, 0, 1]
    np.testing.assert_allclose(joints[2, U["pelvis"]], joints[1, U["pelvis"]])  # held
    assert conf[:, U["head"]].tolist() == [0, 1, 1, 1]
    np.testing.assert_allclose(joints[0, U["head"]], joints[1, U["head"]])      # first valid
    assert conf[:, U["l_knee"]].tolist() == [1, 1, 1, 1]


def test_a_marker_never_seen_gives_a_finite_joint_of_confidence_zero(tmp_path):
    path = write_c3d(tmp_path / "t.c3d", frames=2, missing=[(0, "L_WRIST"), (1, "L_WRIST")])
    _, joints, conf = unified_frames(open_c3d(path, f"map={INLINE}"))
    assert np.isfinite(joints).all() and (conf[:, U["l_wrist"]] == 0).all()


def test_subject_prefixed_labels_match(tmp_path):
    src = open_c3d(write_c3d(tmp_path / "t.c3d", labels_prefix="Anna:"), f"map={INLINE}")
    assert unified_frames(src)[1][0, U["head"], 1] == pytest.approx(1.62, abs=1e-5)


@pytest.mark.parametrize("query, what", [
    ("", "no marker map"),
    ("map=" + INLINE.replace("head:HEAD,", ""), r"no markers for \['head'\]"),
    ("map=" + INLINE + ",tail:TAIL", r"unknown joints \['tail'\]"),
    ("map=" + INLINE.replace("HEAD", "LFHD"), r"no marker\(s\) \['LFHD'\]"),
    ("map=" + INLINE + "&up=x", "up='x'"),
    ("map=" + INLINE + "&units=furlong", "units 'furlong' unknown"),
])
def test_bad_maps_and_options_say_what_to_do(tmp_path, query, what):
    with pytest.raises(SourceError, match=what):
        open_c3d(write_c3d(tmp_path / "t.c3d"), query)


def test_missing_units_ask_for_the_option(tmp_path):
    path = write_c3d(tmp_path / "t.c3d", units="")
    with pytest.raises(SourceError, match="give \\?units="):
        open_c3d(path, f"map={INLINE}")
    assert open_c3d(path, f"map={INLINE}&units=mm").layout.scale == 0.001


def test_unreadable_and_missing_files(tmp_path):
    pytest.importorskip("ezc3d")
    (tmp_path / "bad.c3d").write_bytes(b"not a c3d file")
    with pytest.raises(SourceError, match="cannot read"):
        open_c3d(tmp_path / "bad.c3d", f"map={INLINE}")
    with pytest.raises(SourceError, match="no such file"):
        open_c3d(tmp_path / "absent.c3d", f"map={INLINE}")


def test_without_ezc3d_the_error_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ezc3d", None)  # makes `import ezc3d` raise ImportError
    with pytest.raises(SourceError, match=r"pip install 'bodytalk\[c3d\]'"):
        open_c3d(tmp_path / "t.c3d", f"map={INLINE}")
