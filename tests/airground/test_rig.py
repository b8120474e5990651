"""The air-ground rig file: round trip, both extrinsic spellings, defaults, and one-line errors naming file + key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation

from perception.camera import OpenCVCamera, PinholeCamera
from perception.datasets.rig import DEFAULT_TOPICS, Rig, load_rig, save_rig
from perception.errors import InputError
from perception.geometry import SE3


def _rig() -> Rig:
    T_imu_cam = SE3.from_quat_t(Rotation.from_euler("zyx", [80, -3, 95], degrees=True).as_quat(), [0.3, 0.02, 0.6])
    T_body_cam = SE3.from_quat_t(Rotation.from_euler("y", 40, degrees=True).as_quat(), [0.1, 0.0, -0.05])
    ugv = OpenCVCamera.from_params(640, 480, np.array([455.5, 452.25, 319.5, 239.5, -0.1, 0.01, 1e-4, -2e-4]))
    uav = PinholeCamera.from_params(1280, 720, np.array([900.0, 900.0, 639.5, 359.5]))
    topics = dict(DEFAULT_TOPICS, ugv_odometry="/Odometry", uav_image="/drone/cam/image")
    return Rig(ugv, T_imu_cam, -12_500_000, uav, T_body_cam, topics)


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_round_trip_is_exact(tmp_path: Path) -> None:
    rig = _rig()
    p = save_rig(tmp_path / "sub" / "rig.yaml", rig)
    assert not [f for f in p.parent.iterdir() if f.name != "rig.yaml"]  # atomic: no partial file left
    r = load_rig(p)
    # the file holds the exact float64 values; SE3.from_matrix re-orthonormalises (differences of an ulp)
    np.testing.assert_allclose(r.T_imu_cam.matrix(), rig.T_imu_cam.matrix(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(r.T_body_cam_uav.matrix(), rig.T_body_cam_uav.matrix(), rtol=0, atol=1e-15)
    assert r.time_offset_ns == -12_500_000 and r.time_offset_s == -0.0125
    assert type(r.ugv_camera) is OpenCVCamera and type(r.uav_camera) is PinholeCamera
    assert np.array_equal(r.ugv_camera.params, rig.ugv_camera.params)
    assert (r.ugv_camera.width, r.ugv_camera.height, r.uav_camera.width) == (640, 480, 1280)
    assert r.topics == rig.topics
    # the file holds 4x4 rows and COLMAP model names
    raw = yaml.safe_load(p.read_text())
    assert np.array_equal(np.array(raw["ugv"]["T_imu_cam"]), rig.T_imu_cam.matrix())
    assert raw["ugv"]["camera"]["model"] == "OPENCV" and raw["ugv"]["time_offset_s"] == -0.0125


def test_quaternion_form_defaults_and_3x4(tmp_path: Path) -> None:
    q = Rotation.from_euler("xyz", [10, 20, 30], degrees=True).as_quat()  # scipy: xyzw, same as the file
    data = {
        "ugv": {"camera": {"model": "PINHOLE", "width": 320, "height": 240, "params": [300, 300, 159.5, 119.5]},
                "T_imu_cam": {"translation": [1.0, 2.0, 3.0], "rotation_xyzw": [float(v) for v in q]}},
        "uav": {"camera": {"model": "SIMPLE_RADIAL", "width": 320, "height": 240, "params": [280, 159.5, 119.5, 0.01]},
                "T_body_cam": [[1, 0, 0, 0.5], [0, 1, 0, 0], [0, 0, 1, 0]]},
    }  # fmt: skip
    r = load_rig(_write(tmp_path / "rig.yaml", data))
    np.testing.assert_allclose(r.T_imu_cam.R, Rotation.from_quat(q).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(r.T_imu_cam.t, [1, 2, 3])
    np.testing.assert_allclose(r.T_body_cam_uav.t, [0.5, 0, 0])
    assert r.time_offset_ns == 0 and r.topics == DEFAULT_TOPICS
    # T_imu_cam maps camera points into the IMU frame: the camera centre lands on the translation
    np.testing.assert_allclose(r.T_imu_cam.R @ np.zeros(3) + r.T_imu_cam.t, [1, 2, 3])
    # quaternion saved as 4x4 rows reads back the same
    r2 = load_rig(save_rig(tmp_path / "again.yaml", r))
    np.testing.assert_allclose(r2.T_imu_cam.matrix(), r.T_imu_cam.matrix(), atol=1e-15)


def _base(tmp_path: Path) -> dict:
    p = save_rig(tmp_path / "base.yaml", _rig())
    return yaml.safe_load(p.read_text())


@pytest.mark.parametrize(
    "edit,pattern",
    [
        (lambda d: d["ugv"].pop("T_imu_cam"), r"rig\.yaml: ugv\.T_imu_cam missing"),
        (
            lambda d: d["ugv"].update(T_imu_camera=d["ugv"].pop("T_imu_cam")),
            r"rig\.yaml: ugv\.T_imu_cam missing .*unknown key\(s\) T_imu_camera",
        ),
        (lambda d: d["ugv"]["T_imu_cam"][0].__setitem__(0, 2.0), r"rig\.yaml: ugv\.T_imu_cam is not a rigid"),
        (lambda d: d["ugv"]["T_imu_cam"][3].__setitem__(0, 0.1), r"rig\.yaml: ugv\.T_imu_cam is not a rigid"),
        (lambda d: d["ugv"].__setitem__("T_imu_cam", [[1, 0, 0], [0, 1, 0]]), r"ugv\.T_imu_cam .*shape \(2, 3\)"),
        (
            lambda d: d["ugv"].__setitem__("T_imu_cam", {"translation": [0, 0, 0], "rotation_xyzw": [0, 0, 0, 2]}),
            r"ugv\.T_imu_cam is not a rigid .*norm 2\.0",
        ),
        (lambda d: d["uav"]["T_body_cam"][1].__setitem__(1, -1.0), r"rig\.yaml: uav\.T_body_cam is not a rigid"),
        (lambda d: d["ugv"]["camera"].__setitem__("model", "KANNALA"), r"ugv\.camera\.model 'KANNALA' is unknown"),
        (lambda d: d["uav"]["camera"].pop("params"), r"rig\.yaml: uav\.camera\.params missing"),
        (lambda d: d["ugv"]["camera"].__setitem__("params", [1, 2]), r"rig\.yaml: ugv\.camera: "),
        (lambda d: d.pop("uav"), r"rig\.yaml: uav missing"),
        (lambda d: d["ugv"].__setitem__("time_offset_s", "soon"), r"ugv\.time_offset_s must be a number"),
        (lambda d: d["topics"].__setitem__("lidar", "/points"), r"rig\.yaml: topics\.lidar is not a known role"),
        (lambda d: d["topics"].__setitem__("uav_image", ""), r"topics\.uav_image must be a non-empty"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, edit, pattern) -> None:
    data = _base(tmp_path)
    edit(data)
    with pytest.raises(InputError, match=pattern):
        load_rig(_write(tmp_path / "rig.yaml", data))


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_rig(tmp_path / "none.yaml")
    bad = tmp_path / "rig.yaml"
    bad.write_text("ugv: [unclosed\n")
    with pytest.raises(InputError, match=r"rig\.yaml: not valid YAML at line"):
        load_rig(bad)


def test_simulated_recording_rig_loads(tmp_path: Path) -> None:
    """The layout the airground simulator writes (4x4 lists, dataclass topics) is what load_rig reads."""
    rig = _rig()
    data = {
        "ugv": {"camera": {"model": "OPENCV", "width": 640, "height": 480,
                           "params": [float(v) for v in rig.ugv_camera.params]},
                "T_imu_cam": rig.T_imu_cam.matrix().tolist(), "time_offset_s": 0.025},
        "uav": {"camera": {"model": "PINHOLE", "width": 1280, "height": 720, "params": [900.0, 900.0, 639.5, 359.5]},
                "T_body_cam": np.eye(4).tolist()},
        "topics": dict(DEFAULT_TOPICS),
    }  # fmt: skip
    r = load_rig(_write(tmp_path / "rig.yaml", data))
    assert r.time_offset_ns == 25_000_000
    np.testing.assert_allclose(r.T_imu_cam.matrix(), rig.T_imu_cam.matrix(), atol=1e-12)
    np.testing.assert_allclose(r.T_body_cam_uav.matrix(), np.eye(4))
