"""Scene points: background features of one image per camera, matched across views and triangulated with the
calibrated cameras (Kineo's stage 8; the authors densify with MoGe-2, whose weights cannot be fetched here).

Per camera pair: RootSIFT mutual-NN matches with the ratio test, kept when they satisfy the *estimated* epipolar
geometry (Sampson distance), triangulated (DLT + LM) and kept when both reprojection errors are small and the point
lies in front of both cameras. Images may be smaller or larger than the keypoints' resolution: the intrinsics are
scaled to them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from perception.datasets.common import read_rgb
from perception.errors import InputError
from perception.features.matching import match_mutual_nn
from perception.features.sift import RootSiftExtractor
from perception.geometry import SE3, essential_from_pose, sampson_distance, triangulate
from recon.mocap.calibrate import Intrinsics, project_camera

log = logging.getLogger(__name__)

__all__ = ["find_images", "scene_points"]


def find_images(folder: str | Path, cameras: list[str]) -> dict[str, Path]:
    """One image per camera: ``folder/<camera>.{jpg,png}``, else the first of ``folder/<camera>/images/*`` (the
    EgoHumans ``exo/`` layout)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"mocap: image folder {folder} does not exist")
    out = {}
    for n in cameras:
        cands = [folder / f"{n}{ext}" for ext in (".jpg", ".png", ".jpeg")]
        cands += sorted((folder / n / "images").glob("*")) if (folder / n / "images").is_dir() else []
        found = [p for p in cands if p.is_file()]
        if found:
            out[n] = found[0]
    if len(out) < 2:
        raise InputError(f"mocap: {folder} holds images of {len(out)} camera(s) ({', '.join(out) or 'none'}); scene "
                         "points need <camera>.jpg or <camera>/images/*.jpg for at least two cameras")  # fmt: skip
    return out


def _scaled(K: Intrinsics, width: int, height: int) -> Intrinsics:
    s = width / K.width
    if abs(height / K.height - s) > 0.01:
        raise InputError(f"mocap: image {width}x{height} does not have the aspect ratio of the keypoints' "
                         f"{K.width}x{K.height}")  # fmt: skip
    return Intrinsics(width, height, K.f * s, (K.cx + 0.5) * s - 0.5, (K.cy + 0.5) * s - 0.5, K.dist.copy())


def scene_points(images: dict[str, Path], names: list[str], K: list[Intrinsics], T_world_cam: list[SE3],
                 max_keypoints: int = 4000, ratio: float = 0.8, epipolar_px: float = 2.0,
                 reproj_px: float = 2.0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``(points (N, 3), colours (N, 3) uint8)`` in the world frame of ``T_world_cam``."""
    sift = RootSiftExtractor(max_keypoints)
    feats, Ks, rgbs = {}, {}, {}
    for v, n in enumerate(names):
        if n not in images:
            continue
        rgb = read_rgb(images[n], "mocap image")
        rgbs[n] = rgb
        Ks[n] = _scaled(K[v], rgb.shape[1], rgb.shape[0])
        feats[n] = sift(rgb)
    idx = {n: v for v, n in enumerate(names)}
    pts, cols = [], []
    have = [n for n in names if n in feats]
    for i, a in enumerate(have):
        for b in have[i + 1 :]:
            fa, fb = feats[a], feats[b]
            m = match_mutual_nn(fa.descriptors, fb.descriptors, ratio=ratio)
            if len(m) < 8:
                continue
            xa = Ks[a].camera().unproject(fa.keypoints[m.idx0].astype(np.float64))[:, :2]
            xb = Ks[b].camera().unproject(fb.keypoints[m.idx1].astype(np.float64))[:, :2]
            Ta, Tb = T_world_cam[idx[a]], T_world_cam[idx[b]]
            T_ba = Tb.inverse() @ Ta
            f = 0.5 * (Ks[a].f + Ks[b].f)
            ok = np.abs(sampson_distance(essential_from_pose(T_ba.R, T_ba.t), xa, xb)) * f < epipolar_px
            if ok.sum() < 4:
                continue
            Pa = np.c_[Ta.inverse().R, Ta.inverse().t]
            Pb = np.c_[Tb.inverse().R, Tb.inverse().t]
            X, good = triangulate(np.stack([Pa, Pb]), np.stack([xa[ok], xb[ok]]))
            X = X[good]
            ua, ub = fa.keypoints[m.idx0][ok][good], fb.keypoints[m.idx1][ok][good]
            ea = np.linalg.norm(project_camera(X, Ta, Ks[a]) - ua, axis=1)
            eb = np.linalg.norm(project_camera(X, Tb, Ks[b]) - ub, axis=1)
            keep = (ea < reproj_px) & (eb < reproj_px)
            pts.append(X[keep])
            px = np.round(ua[keep]).astype(int)
            cols.append(rgbs[a][px[:, 1].clip(0, rgbs[a].shape[0] - 1), px[:, 0].clip(0, rgbs[a].shape[1] - 1)])
    if not pts:
        log.warning("mocap: no background feature could be matched and triangulated across the images")
        return np.zeros((0, 3)), np.zeros((0, 3), np.uint8)
    return np.concatenate(pts), np.concatenate(cols).astype(np.uint8)
