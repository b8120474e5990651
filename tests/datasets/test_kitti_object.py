"""KITTI object reader/writer and camera <-> LiDAR box conversion: committed fixture, hand-computed boxes, exact round
trips, one-line errors naming the file.

Regenerate the fixture with ``python tests/datasets/test_kitti_object.py`` (plain text / numpy bytes in KITTI's own
formatting, not the module's writer).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from perception.datasets.kitti_object import (
    KittiCalib,
    KittiObject,
    KittiObjectWriter,
    box_corners_camera,
    box_corners_lidar,
    camera_boxes_to_lidar,
    labels_to_lidar_boxes,
    lidar_boxes_to_camera,
    lidar_boxes_to_labels,
    observation_angle,
    read_calib,
    read_labels,
    read_velodyne,
)
from perception.errors import InputError

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "kitti_object"

# The KITTI 2011_09_26 calibration (as in the object benchmark's calib files).
P2 = [721.5377, 0.0, 609.5593, 44.85728, 0.0, 721.5377, 172.854, 0.2163791, 0.0, 0.0, 1.0, 0.002745884]
P0 = [721.5377, 0.0, 609.5593, 0.0, 0.0, 721.5377, 172.854, 0.0, 0.0, 0.0, 1.0, 0.0]
P1 = [721.5377, 0.0, 609.5593, -387.5744, 0.0, 721.5377, 172.854, 0.0, 0.0, 0.0, 1.0, 0.0]
P3 = [721.5377, 0.0, 609.5593, -339.5242, 0.0, 721.5377, 172.854, 2.199936, 0.0, 0.0, 1.0, 0.002729905]
R0 = [0.9999239, 0.00983776, -0.007445048, -0.009869795, 0.9999421, -0.004278459, 0.007402527, 0.004351614, 0.9999631]
TR_VELO = [0.007533745, -0.9999714, -0.000616602, -0.004069766, 0.01480249, 0.0007280733, -0.9998902, -0.07631618,
           0.9998621, 0.00752379, 0.01480755, -0.2717806]  # fmt: skip
TR_IMU = [0.9999976, 0.0007553071, -0.002035826, -0.8086759, -0.0007854027, 0.9998898, -0.01482298, 0.3195559,
          0.002024406, 0.01482454, 0.9998881, -0.7997231]  # fmt: skip
LABELS = (
    "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n"
    "Pedestrian 0.00 0 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01\n"
    "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10\n"
)
POINTS = np.array(
    [[10.0, 0.0, 0.0, 0.5], [0.0, 5.0, -1.0, 0.25], [20.5, -3.25, 1.5, 0.0], [-4.0, 2.0, 0.5, 1.0], [1, 1, 1, 0.75]],
    dtype=np.float32,
)


def make_fixture(dst: Path) -> None:
    tr = dst / "training"
    for sub in ("velodyne", "label_2", "calib", "image_2"):
        (tr / sub).mkdir(parents=True, exist_ok=True)
    (dst / "ImageSets").mkdir(parents=True, exist_ok=True)
    POINTS.astype("<f4").tofile(tr / "velodyne" / "000000.bin")
    (tr / "label_2" / "000000.txt").write_text(LABELS)
    rows = [("P0", P0), ("P1", P1), ("P2", P2), ("P3", P3), ("R0_rect", R0), ("Tr_velo_to_cam", TR_VELO),
            ("Tr_imu_to_velo", TR_IMU)]  # fmt: skip
    (tr / "calib" / "000000.txt").write_text(
        "".join(f"{k}: {' '.join(f'{v:.12e}' for v in vals)}\n" for k, vals in rows)
    )
    u, v = np.meshgrid(np.arange(8), np.arange(6))
    img = np.stack([u * 30, v * 40, np.full_like(u, 7)], axis=-1).astype(np.uint8)
    cv2.imwrite(str(tr / "image_2" / "000000.png"), img[:, :, ::-1])
    (dst / "ImageSets" / "train.txt").write_text("000000\n")


def ideal_calib(t=(0.0, -0.08, -0.27)) -> KittiCalib:
    """LiDAR x forward = camera z, y left = camera -x, z up = camera -y; no rectification."""
    Tr = np.array([[0.0, -1.0, 0.0, t[0]], [0.0, 0.0, -1.0, t[1]], [1.0, 0.0, 0.0, t[2]]])
    P = np.array([[100.0, 0.0, 50.0, 0.0], [0.0, 100.0, 40.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    return KittiCalib(P=np.stack([P] * 4), R0_rect=np.eye(3), Tr_velo_to_cam=Tr)


def fixture_calib() -> KittiCalib:
    return read_calib(SAMPLES / "training" / "calib" / "000000.txt")


def test_fixture_values() -> None:
    ds = KittiObject(SAMPLES)
    assert ds.frames() == ["000000"] and ds.frames("train") == ["000000"]
    pts = ds.load_points("000000")
    assert pts.dtype == np.float32 and np.array_equal(pts, POINTS)
    labels = ds.load_labels(0)
    assert [lab.type for lab in labels] == ["Car", "Pedestrian", "DontCare"]
    car = labels[0]
    assert (car.truncated, car.occluded, car.alpha, car.rotation_y, car.score) == (0.0, 0, -1.58, -1.59, None)
    assert car.bbox.tolist() == [587.01, 173.33, 614.12, 200.12]
    assert car.dimensions.tolist() == [1.65, 1.67, 3.64] and car.location.tolist() == [-0.65, 1.71, 46.70]
    assert labels[2].occluded == -1 and labels[2].location.tolist() == [-1000.0] * 3
    calib = ds.load_calib("000000")
    assert np.array_equal(calib.P[2], np.reshape(P2, (3, 4))) and np.array_equal(calib.P[3], np.reshape(P3, (3, 4)))
    assert np.array_equal(calib.R0_rect, np.reshape(R0, (3, 3)))
    assert np.array_equal(calib.Tr_velo_to_cam, np.reshape(TR_VELO, (3, 4)))
    assert np.array_equal(calib.Tr_imu_to_velo, np.reshape(TR_IMU, (3, 4)))
    img = ds.load_image("000000")
    assert img.shape == (6, 8, 3) and img[5, 7].tolist() == [210, 200, 7] and ds.has_image(0)
    all_boxes, all_types = labels_to_lidar_boxes(labels, calib, skip_dontcare=False)
    assert all_types == ["Car", "Pedestrian", "DontCare"] and all_boxes.shape == (3, 7)
    boxes, types = ds.load_lidar_boxes("000000")
    assert np.array_equal(boxes, all_boxes[:2])
    assert types == ["Car", "Pedestrian"] and boxes.shape == (2, 7)
    # The pedestrian stands 8.41 m in front of camera 0, 1.84 m to its right: LiDAR x ~ 8.41 + 0.27, y ~ -1.84.
    assert np.allclose(boxes[1, :2], [8.41 + 0.27, -1.84], atol=0.15)


def test_fixture_matches_generator(tmp_path: Path) -> None:
    make_fixture(tmp_path)
    for rel in ("training/velodyne/000000.bin", "training/label_2/000000.txt", "training/calib/000000.txt",
                "ImageSets/train.txt"):  # fmt: skip
        assert (tmp_path / rel).read_bytes() == (SAMPLES / rel).read_bytes(), rel
    assert np.array_equal(cv2.imread(str(tmp_path / "training/image_2/000000.png")),
                          cv2.imread(str(SAMPLES / "training/image_2/000000.png")))  # fmt: skip


def test_camera_to_lidar_hand_computed() -> None:
    calib = ideal_calib()
    # Bottom centre (2, 1.5, 10) in the camera: the box centre is h/2 = 0.75 higher (camera y points down), at
    # camera (2, 0.75, 10); LiDAR = R^T (cam - t) = (10 + 0.27, -2, -(0.75 + 0.08)).
    box = camera_boxes_to_lidar([[2.0, 1.5, 10.0]], [[1.5, 1.6, 4.0]], [0.3], calib)
    assert np.allclose(box, [[10.27, -2.0, -0.83, 4.0, 1.6, 1.5, -(0.3 + math.pi / 2)]], atol=1e-12)
    # ry = 0: the box length runs along camera +x = LiDAR -y, a heading of -90 degrees; ry = -pi/2: along camera z.
    yaw = camera_boxes_to_lidar(np.zeros((3, 3)), np.ones((3, 3)), [0.0, -math.pi / 2, math.pi], calib)[:, 6]
    assert np.allclose(yaw, [-math.pi / 2, 0.0, math.pi / 2], atol=1e-12)
    loc, dims, ry = lidar_boxes_to_camera(box, calib)
    assert np.allclose(loc, [[2.0, 1.5, 10.0]], atol=1e-12) and np.allclose(dims, [[1.5, 1.6, 4.0]], atol=1e-15)
    assert np.allclose(ry, [0.3], atol=1e-12)
    # Corners: the devkit's camera-frame corners mapped into the LiDAR frame equal the LiDAR box's corners.
    cam_corners = box_corners_camera([[2.0, 1.5, 10.0]], [[1.5, 1.6, 4.0]], [0.3])[0]
    assert np.allclose(calib.rect_to_velo(cam_corners), box_corners_lidar(box)[0], atol=1e-12)
    assert np.allclose(cam_corners[:4, 1], 1.5) and np.allclose(cam_corners[4:, 1], 0.0)  # bottom face, top face


def test_round_trip_exact_on_real_calibration(rng: np.random.Generator) -> None:
    calib = fixture_calib()
    K = 200
    loc = np.column_stack([rng.uniform(-20, 20, K), rng.uniform(-1, 3, K), rng.uniform(2, 70, K)])
    dims = rng.uniform(0.3, 5.0, (K, 3))
    ry = rng.uniform(-math.pi, math.pi, K)
    boxes = camera_boxes_to_lidar(loc, dims, ry, calib)
    loc2, dims2, ry2 = lidar_boxes_to_camera(boxes, calib)
    assert np.allclose(loc2, loc, atol=1e-10) and np.array_equal(dims2, dims)
    assert np.allclose(np.angle(np.exp(1j * (ry2 - ry))), 0.0, atol=1e-12)
    # Against OpenPCDet's formulas (exact for an ideal calibration): the real calibration is < 1 degree off.
    opc_centre = calib.rect_to_velo(loc) + np.column_stack([np.zeros(K), np.zeros(K), dims[:, 0] / 2])
    assert np.abs(boxes[:, :3] - opc_centre).max() < 0.03
    assert np.abs(np.angle(np.exp(1j * (boxes[:, 6] + ry + math.pi / 2)))).max() < math.radians(1.5)
    corners_cam = calib.rect_to_velo(box_corners_camera(loc, dims, ry).reshape(-1, 3)).reshape(K, 8, 3)
    assert np.abs(corners_cam - box_corners_lidar(boxes)).max() < 0.08  # the dropped tilt, at most ~1 degree


def test_lidar_boxes_to_labels_bbox_and_alpha() -> None:
    calib = ideal_calib(t=(0.0, 0.0, 0.0))
    # A 4 x 2 x 1.5 m box straight ahead, its bottom centre 10 m in front of the camera and 1.5 m below it, ry = 0.
    box = camera_boxes_to_lidar([[0.0, 1.5, 10.0]], [[1.5, 2.0, 4.0]], [0.0], calib)
    (lab,) = lidar_boxes_to_labels(box, calib, ["Car"])
    # Near face at z = 9: u = 50 +- 100 * 2 / 9; top edge at y = 0 -> v = 40; bottom edge v = 40 + 100 * 1.5 / 9.
    assert np.allclose(lab.bbox, [50 - 200 / 9, 40.0, 50 + 200 / 9, 40 + 150 / 9], atol=1e-9)
    assert lab.truncated == 0.0 and lab.alpha == pytest.approx(0.0, abs=1e-12) and lab.type == "Car"
    (cut,) = lidar_boxes_to_labels(box, calib, ["Car"], image_size=(60, 50))
    full = (400 / 9) * (150 / 9)
    assert np.allclose(cut.bbox, [50 - 200 / 9, 40.0, 59.0, 49.0], atol=1e-9)
    assert cut.truncated == pytest.approx(1 - (59 - 50 + 200 / 9) * 9.0 / full, abs=1e-12)
    # alpha = ry - atan2(x, z): an object 45 degrees to the right with ry = 0 is seen at alpha = -45 degrees.
    assert observation_angle([[5.0, 1.0, 5.0]], [0.0]) == pytest.approx(-math.pi / 4)
    behind = camera_boxes_to_lidar([[0.0, 1.5, -10.0]], [[1.5, 2.0, 4.0]], [0.0], calib)
    assert lidar_boxes_to_labels(behind, calib, ["Car"])[0].truncated == 1.0


def test_writer_reader_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    calib = fixture_calib()
    boxes = np.column_stack([rng.uniform(5, 40, 4), rng.uniform(-8, 8, 4), rng.uniform(-1.5, 0, 4),
                             rng.uniform(3, 5, 4), rng.uniform(1.5, 2, 4), rng.uniform(1.4, 1.8, 4),
                             rng.uniform(-3, 3, 4)])  # fmt: skip
    labels = lidar_boxes_to_labels(boxes, calib, ["Car", "Van", "Cyclist", "Car"], image_size=(1242, 375))
    labels[1].score = 0.875
    labels[2].occluded = 2
    points = rng.normal(0, 10, (100, 4)).astype(np.float32)
    image = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    w = KittiObjectWriter(tmp_path)
    assert w.write_frame(7, points, calib, labels, image) == "000007"
    w.write_frame("000009", points[:3], calib)
    w.write_image_set("val", [9])
    ds = KittiObject(tmp_path)
    assert ds.frames() == ["000007", "000009"] and ds.frames("val") == ["000009"]
    assert np.array_equal(ds.load_points(7), points) and np.array_equal(ds.load_image(7), image)
    back = ds.load_labels(7)
    for a, b in zip(back, labels, strict=True):
        assert (a.type, a.truncated, a.occluded, a.alpha, a.rotation_y, a.score) == (
            b.type, b.truncated, b.occluded, b.alpha, b.rotation_y, b.score)  # fmt: skip
        for f in ("bbox", "dimensions", "location"):
            assert np.array_equal(getattr(a, f), getattr(b, f))
    c2 = ds.load_calib(9)
    for f in ("P", "R0_rect", "Tr_velo_to_cam", "Tr_imu_to_velo"):
        assert np.array_equal(getattr(c2, f), getattr(calib, f))
    boxes2, _ = ds.load_lidar_boxes(7)
    assert np.allclose(boxes2[:, :6], boxes[:, :6], atol=1e-10)
    assert np.allclose(np.angle(np.exp(1j * (boxes2[:, 6] - boxes[:, 6]))), 0.0, atol=1e-12)
    assert not ds.has_image(9) and not list(tmp_path.rglob(".*partial*"))
    # KITTI's own two-decimal formatting.
    from perception.datasets.kitti_object import write_labels

    write_labels(tmp_path / "two.txt", labels[:1], precision=2)
    assert len((tmp_path / "two.txt").read_text().split()) == 15
    assert read_labels(tmp_path / "two.txt")[0].location == pytest.approx(labels[0].location, abs=0.005)


def test_errors_name_the_file(tmp_path: Path) -> None:
    root = tmp_path / "k"
    shutil.copytree(SAMPLES, root)
    tr = root / "training"
    ds = KittiObject(root)
    with pytest.raises(FileNotFoundError, match=r"KITTI object: missing file .*velodyne/000003\.bin \(LiDAR scan"):
        ds.load_points(3)
    (tr / "velodyne" / "000001.bin").write_bytes(POINTS.tobytes()[:-4])
    with pytest.raises(InputError, match=r"000001\.bin has 76 bytes, not a multiple of 16 \(float32 x y z intensity"):
        read_velodyne(tr / "velodyne" / "000001.bin")
    bad = tr / "label_2" / "000001.txt"
    bad.write_text(LABELS + "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70\n")
    with pytest.raises(InputError, match=r"label_2/000001\.txt line 4 has 14 fields; expected 15 \(type truncated"):
        ds.load_labels(1)
    bad.write_text("Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 x -0.65 1.71 46.70 -1.59\n")
    with pytest.raises(InputError, match=r"000001\.txt line 1: fields 2-15 must be numbers"):
        ds.load_labels(1)
    bad.write_text("Car 0.00 0.5 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n")
    with pytest.raises(InputError, match=r"000001\.txt line 1: occluded must be an integer"):
        ds.load_labels(1)
    cal = tr / "calib" / "000001.txt"
    text = (tr / "calib" / "000000.txt").read_text()
    cal.write_text("".join(line + "\n" for line in text.splitlines() if not line.startswith("Tr_velo_to_cam")))
    with pytest.raises(InputError, match=r"calib/000001\.txt lacks Tr_velo_to_cam"):
        ds.load_calib(1)
    cal.write_text(text.replace("R0_rect: ", "R0_rect: 1.0 "))
    with pytest.raises(InputError, match=r"000001\.txt line 5: R0_rect has 10 values; expected 9"):
        ds.load_calib(1)
    with pytest.raises(FileNotFoundError, match=r"missing folder .*testing \(the testing split"):
        KittiObject(root, "testing")
    with pytest.raises(FileNotFoundError, match=r"ImageSets/val\.txt \(one frame id per line\)"):
        ds.frames("val")


if __name__ == "__main__":
    make_fixture(SAMPLES)
    print(f"wrote {SAMPLES}")
