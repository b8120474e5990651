"""EgoHumans reader/writer: committed fixture in the released layout, cross-checked against pycolmap and Kineo's pose
formula, exact joint round trip, safe pickles, one-line errors naming the file.

Regenerate the fixture with ``python tests/datasets/test_egohumans.py``. It is written the way the dataset's own
tools wrote it (COLMAP text files; ``np.save`` of dicts pickled by numpy 1.x, i.e. naming
``numpy.core.multiarray``), not with the module's writer.
"""

from __future__ import annotations

import io
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pycolmap
import pytest
from scipy.spatial.transform import Rotation

from perception.camera import FisheyeCamera
from perception.datasets.egohumans import EgoHumans, EgoHumansWriter, load_numpy_pickle, read_poses3d
from perception.errors import InputError
from perception.geometry import SE3, Sim3

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "egohumans" / "001_tagging"

# colmap_from_aria01: scale 1.8, rotation Rz(30 deg) Rx(10 deg), translation (0.5, -1.2, 2.0).
SIM_C = 1.8
SIM_R = Rotation.from_euler("ZX", [30, 10], degrees=True).as_matrix()
SIM_T = np.array([0.5, -1.2, 2.0])


def look_at(centre: list[float], target: tuple[float, ...] = (0.8, 1.5, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """T_world_cam (R, t) of an OpenCV camera at ``centre`` looking at ``target`` with world z up."""
    c = np.array(centre, dtype=np.float64)
    z = np.subtract(target, c) / np.linalg.norm(np.subtract(target, c))
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1), c


# Camera poses in the metric aria01 world frame (T_world_cam), aimed at the subjects.
CAM_POSES = {
    ("cam01", 1): look_at([4.0, 0.0, 1.5]),
    ("cam01", 11): look_at([4.01, 0.0, 1.5]),
    ("cam02", 1): look_at([0.0, 5.0, 2.0]),
    ("aria01", 1): (np.eye(3), np.zeros(3)),
}
CAM03_POSE = look_at([-4.0, 0.5, 1.2])
CAMERAS_TXT = """# Camera list with one line of data per camera:
#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]
# Number of cameras: 3
1 OPENCV_FISHEYE 3840 2160 1796.25 1795.75 1919.5 1079.5 0.021 -0.013 0.004 -0.001
2 OPENCV_FISHEYE 3840 2160 1801 1800.5 1925.25 1082.75 0.03 -0.02 0.005 -0.0015
3 OPENCV_FISHEYE 1408 1408 610.5 610.5 703.5 703.5 0.4 -0.5 1.0 -0.8
"""


def colmap_from_aria() -> np.ndarray:
    M = np.eye(4)
    M[:3, :3] = SIM_C * SIM_R
    M[:3, 3] = SIM_T
    return M


def colmap_pose(R_wc: np.ndarray, t_wc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COLMAP cam_from_world (in COLMAP's scaled frame) of a metric aria01 pose (Kineo's formula, inverted)."""
    R_cw, t_cw = R_wc.T, -R_wc.T @ t_wc
    R_cc = R_cw @ SIM_R.T
    return R_cc, SIM_C * t_cw - R_cc @ SIM_T


def joints(frame: int, offset: float) -> np.ndarray:
    j = np.arange(17.0)
    return np.stack([0.1 * j + offset, 0.05 * j + frame, 1.0 + 0.01 * j, 1.0 - 0.02 * j], axis=1)


FIT_POSES = {1: {"aria01": joints(1, 0.0), "aria02": joints(1, 3.0)}, 2: {"aria01": joints(2, 0.0)}}


def numpy1_npy(obj: object) -> bytes:
    """What numpy 1.x ``np.save(path, obj)`` writes for a dict: a 0-d object array pickled with protocol 3."""
    arr = np.empty((), dtype=object)
    arr[()] = obj
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": ()})
    return buf.getvalue() + numpy1_pickle(arr)


def numpy1_pickle(obj: object) -> bytes:
    data = pickle.dumps(obj, protocol=3)  # GLOBAL opcodes are "module\nname\n": safe to rename
    return data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def make_fixture(dst: Path) -> None:
    ws = dst / "colmap" / "workplace"
    ws.mkdir(parents=True, exist_ok=True)
    u, v = np.meshgrid(np.arange(16), np.arange(12))
    img = np.stack([u * 16, v * 20, np.full_like(u, 128)], axis=-1).astype(np.uint8)
    for cam, frames in (("cam01", (1, 2)), ("cam02", (1,)), ("cam03", (1,))):
        d = dst / "exo" / cam / "images"
        d.mkdir(parents=True, exist_ok=True)
        for f in frames:
            ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
            (d / f"{f:05d}.jpg").write_bytes(buf.tobytes())
    (ws / "cameras.txt").write_text(CAMERAS_TXT)
    lines = [
        "# Image list with two lines of data per image:",
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
        "#   POINTS2D[] as (X, Y, POINT3D_ID)",
        "# Number of images: 4, mean observations per image: 0.5",
    ]
    cam_ids = {"cam01": 1, "cam02": 2, "aria01": 3}
    for image_id, ((cam, frame), (R_wc, t_wc)) in enumerate(CAM_POSES.items(), start=1):
        R_cc, t_cc = colmap_pose(R_wc, t_wc)
        qx, qy, qz, qw = Rotation.from_matrix(R_cc).as_quat()
        vals = " ".join(repr(float(x)) for x in (qw, qx, qy, qz, *t_cc))
        lines.append(f"{image_id} {vals} {cam_ids[cam]} {cam}/{frame:05d}.jpg")
        lines.append("1024.5 512.25 -1 2000.0 1000.0 -1" if image_id == 1 else "")  # 2D points (none triangulated)
    (ws / "images.txt").write_text("\n".join(lines) + "\n")
    (ws / "points3D.txt").write_text("# 3D point list with one line of data per point:\n"
                                     "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"
                                     "# Number of points: 0, mean track length: 0\n")  # fmt: skip
    M2 = colmap_from_aria()
    M2[:3, 3] += [0.1, 0.2, 0.3]
    (ws / "colmap_from_aria_transforms.pkl").write_bytes(numpy1_pickle({"aria01": colmap_from_aria(), "aria02": M2}))
    R_cc, t_cc = colmap_pose(*CAM03_POSE)
    np.save(ws / "cam03.npy", np.concatenate([R_cc, t_cc[:, None]], axis=1))
    pd = dst / "processed_data" / "fit_poses3d"
    pd.mkdir(parents=True, exist_ok=True)
    for frame, poses in FIT_POSES.items():
        (pd / f"{frame:05d}.npy").write_bytes(numpy1_npy(poses))


def _ds(**kw) -> EgoHumans:
    return EgoHumans(SAMPLES, intrinsics_from={"cam03": "cam01"}, **kw)


def test_fixture_values() -> None:
    ds = _ds()
    assert ds.cameras == ["cam01", "cam02", "cam03"]
    assert ds.frames("cam01") == [1, 2] and ds.image_path("cam02", 1) == SAMPLES / "exo/cam02/images/00001.jpg"
    img = ds.load_image("cam01", 2)
    assert img.shape == (12, 16, 3) and abs(int(img[6, 8, 0]) - 128) <= 3  # JPEG: u * 16 at u = 8
    cam = ds.intrinsics("cam02")
    assert isinstance(cam, FisheyeCamera) and (cam.width, cam.height) == (3840, 2160)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (1801.0, 1800.5, 1924.75, 1082.25)  # COLMAP corner -> OpenCV centre
    assert (cam.k1, cam.k2, cam.k3, cam.k4) == (0.03, -0.02, 0.005, -0.0015)
    assert ds.intrinsics("cam03") == ds.intrinsics("cam01")
    for (name, frame), (R, t) in CAM_POSES.items():
        if name.startswith("cam"):
            T = ds.camera_poses(name)[frame]
            assert np.allclose(T.R, R, atol=1e-12) and np.allclose(T.t, t, atol=1e-12)
    assert list(ds.camera_poses("cam01")) == [1, 11]
    assert np.allclose(ds.T_world_cam("cam01").t, [4.0, 0.0, 1.5], atol=1e-12)
    assert np.allclose(ds.T_world_cam("cam01", frame=9).t, [4.01, 0.0, 1.5], atol=1e-12)  # nearest calibration
    T3 = ds.T_world_cam("cam03")  # from the hand-calibrated cam03.npy
    assert np.allclose(T3.R, CAM03_POSE[0], atol=1e-12) and np.allclose(T3.t, CAM03_POSE[1], atol=1e-12)
    assert ds.pose_frames() == [1, 2]
    p1 = ds.load_poses3d(1)
    assert sorted(p1) == ["aria01", "aria02"] and np.array_equal(p1["aria02"], joints(1, 3.0))
    frames, seq = ds.load_poses3d_sequence()
    assert frames.tolist() == [1, 2] and np.array_equal(seq["aria01"][1], joints(2, 0.0))
    assert np.isnan(seq["aria02"][1, :, :3]).all() and (seq["aria02"][1, :, 3] == 0).all()
    assert EgoHumans.timestamp_ns(np.array([1, 2, 21])).tolist() == [0, 50_000_000, 1_000_000_000]


def test_fixture_matches_generator(tmp_path: Path) -> None:
    make_fixture(tmp_path)
    files = sorted(p.relative_to(SAMPLES) for p in SAMPLES.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    for rel in files:
        assert (tmp_path / rel).read_bytes() == (SAMPLES / rel).read_bytes(), rel
    assert b"numpy.core.multiarray" in (SAMPLES / "processed_data/fit_poses3d/00001.npy").read_bytes()


def test_against_pycolmap_and_kineo_formula() -> None:
    """pycolmap reads the same COLMAP model; Kineo's camera formula and pycolmap's projection agree with ours."""
    ds = _ds()
    rec = pycolmap.Reconstruction(str(SAMPLES / "colmap" / "workplace"))
    Ms = np.asarray(pickle.loads((SAMPLES / "colmap/workplace/colmap_from_aria_transforms.pkl").read_bytes()
                                 .replace(b"numpy.core.multiarray", b"numpy._core.multiarray"))["aria01"])  # fmt: skip
    c = np.sqrt((Ms[:3, :3] @ Ms[:3, :3].T)[0, 0])  # Kineo's _apply_coordinate_transform
    X_aria = joints(1, 0.0)[:, :3]
    for image in rec.images.values():
        name = image.name.split("/")[0]
        if not name.startswith("cam"):
            continue
        frame = int(image.name.split("/")[1][:5])
        E = image.cam_from_world().matrix()  # 3x4, COLMAP frame
        R_k, t_k = E[:, :3] @ (Ms[:3, :3] / c), (E[:, :3] @ Ms[:3, 3] + E[:, 3]) / c
        T_cw = ds.camera_poses(name)[frame].inverse()
        assert np.allclose(T_cw.R, R_k, atol=1e-12) and np.allclose(T_cw.t, t_k, atol=1e-12)
        # Project the joints with pycolmap in COLMAP's frame, and with our model in the metric aria frame.
        X_colmap = X_aria @ Ms[:3, :3].T + Ms[:3, 3]
        p_colmap = X_colmap @ E[:, :3].T + E[:, 3]
        cam = rec.cameras[image.camera_id]
        uv_colmap = np.array([cam.img_from_cam(p) for p in p_colmap]) - 0.5
        uv, valid = ds.intrinsics(name).project(T_cw.act(X_aria))
        assert valid.all() and np.allclose(uv, uv_colmap, atol=1e-6)


def test_writer_reader_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    cams = {
        "cam01": FisheyeCamera(1920, 1080, 900.5, 901.25, 959.5, 539.5, 0.01, -0.02, 0.003, -0.0004),
        "cam04": FisheyeCamera(3840, 2160, 1800.0, 1800.0, 1930.0, 1070.0, 0.05, 0.0, 0.0, 0.0),
    }
    poses = {k: SE3.random(rng, trans_scale=5.0) for k in cams}
    sim = Sim3(2.5, Rotation.from_rotvec([0.1, -0.2, 0.3]).as_matrix(), np.array([1.0, 2.0, -3.0]))
    w = EgoHumansWriter(tmp_path / "seq", anchor="aria02")
    w.write_calibration(cams, poses, sim, frame=3)
    img = np.full((12, 16, 3), 90, np.uint8)
    for k in cams:
        w.write_image(k, 3, img)
    poses3d = {"aria02": rng.normal(size=(17, 4)), "aria05": rng.normal(size=(17, 3))}
    w.write_poses3d(7, poses3d)
    ds = EgoHumans(tmp_path / "seq", anchor="aria02")
    assert ds.cameras == ["cam01", "cam04"] and ds.frames("cam04") == [3]
    for k, cam in cams.items():
        assert np.allclose(ds.intrinsics(k).params, cam.params, rtol=0, atol=1e-12)
        T = ds.T_world_cam(k)
        assert np.allclose(T.R, poses[k].R, atol=1e-12) and np.allclose(T.t, poses[k].t, atol=1e-12)
        assert np.array_equal(ds.load_image(k, 3), img)
    back = ds.load_poses3d(7)
    assert np.array_equal(back["aria02"], poses3d["aria02"])  # exact
    assert np.array_equal(back["aria05"][:, :3], poses3d["aria05"]) and (back["aria05"][:, 3] == 1.0).all()
    # world="colmap": cameras and joints both move into COLMAP's frame, so projections are unchanged.
    dc = EgoHumans(tmp_path / "seq", anchor="aria02", world="colmap")
    Xw, Xc = back["aria02"][:, :3], dc.load_poses3d(7)["aria02"][:, :3]
    assert np.allclose(Xc, sim.act(Xw), atol=1e-12)
    uv_w, _ = ds.intrinsics("cam01").project(ds.T_world_cam("cam01").inverse().act(Xw))
    uv_c, _ = dc.intrinsics("cam01").project(dc.T_world_cam("cam01").inverse().act(Xc) / sim.s)
    assert np.allclose(uv_w, uv_c, atol=1e-6)
    # pycolmap reads what the writer wrote.
    rec = pycolmap.Reconstruction(str(tmp_path / "seq" / "colmap" / "workplace"))
    assert sorted(im.name for im in rec.images.values()) == ["cam01/00003.jpg", "cam04/00003.jpg"]
    assert not list(tmp_path.rglob(".*partial*"))


def test_errors_name_the_file(tmp_path: Path) -> None:
    root = tmp_path / "seq"
    shutil.copytree(SAMPLES, root)
    ws = root / "colmap" / "workplace"
    with pytest.raises(
        InputError, match=r"camera cam03 has no image in .*images\.txt, so its COLMAP camera is unknown"
    ):
        EgoHumans(root).intrinsics("cam03")
    with pytest.raises(InputError, match=r"unknown camera 'cam09'; .*exo has cam01, cam02, cam03"):
        EgoHumans(root).frames("cam09")
    with pytest.raises(InputError, match=r"colmap_from_aria_transforms\.pkl has no entry for anchor 'aria07'"):
        EgoHumans(root, anchor="aria07").T_world_cam("cam01")
    (ws / "cam03.npy").unlink()
    with pytest.raises(InputError, match=r"camera cam03 has no pose in .*images\.txt and there is no .*cam03\.npy"):
        EgoHumans(root).T_world_cam("cam03")
    evil = pickle.dumps({"aria01": np.eye(4), "x": shutil.rmtree}, protocol=3)
    (ws / "colmap_from_aria_transforms.pkl").write_bytes(evil)
    with pytest.raises(InputError, match=r"transforms\.pkl is not a readable pickle \(refusing to load shutil\.rmtree"):
        EgoHumans(root).T_world_cam("cam01")
    pd = root / "processed_data" / "fit_poses3d"
    (pd / "00002.npy").write_bytes(numpy1_npy({"aria01": np.zeros((16, 4))}))
    with pytest.raises(InputError, match=r"00002\.npy entry 'aria01' has shape \(16, 4\); expected \(17, 4\)"):
        read_poses3d(pd / "00002.npy")
    np.save(pd / "00002.npy", np.zeros((17, 4)))
    with pytest.raises(
        InputError, match=r"00002\.npy holds a plain float64 array of shape \(17, 4\); expected a pickled"
    ):
        EgoHumans(root).load_poses3d(2)
    (pd / "00002.npy").write_bytes(numpy1_npy(FIT_POSES[2])[:-20])
    with pytest.raises(InputError, match=r"00002\.npy is not a readable pickle"):
        EgoHumans(root).load_poses3d(2)
    with pytest.raises(FileNotFoundError, match=r"EgoHumans: missing file .*fit_poses3d/00009\.npy"):
        EgoHumans(root).load_poses3d(9)
    (ws / "cameras.txt").write_text(CAMERAS_TXT.replace("2 OPENCV_FISHEYE", "2 FISHEYE_XYZ"))
    with pytest.raises(InputError, match=r"cameras\.txt line 5: COLMAP rejects camera model FISHEYE_XYZ"):
        EgoHumans(root).intrinsics("cam01")
    (ws / "images.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing file .*workplace/images\.txt \(COLMAP images"):
        EgoHumans(root).T_world_cam("cam01")
    (tmp_path / "x.pkl").write_bytes(b"\x80\x03garbage")
    with pytest.raises(InputError, match=r"x\.pkl is not a readable pickle \(.*\); expected a dict"):
        load_numpy_pickle(tmp_path / "x.pkl", "a dict")


if __name__ == "__main__":
    make_fixture(SAMPLES)
    print(f"wrote {SAMPLES}")
