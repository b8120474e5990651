"""Kineo motion capture: processing time over footage duration, the fixed calibration cost, and a naive peer.

- ``short``: 4 cameras, ``--short-s`` seconds of footage at 30 fps: total and per-stage time, time / footage
  (the issue's target: below 0.5 for 4 views on this CPU), accuracy (TE, AE, focal error, W-MPJPE).
- ``long``: the same rig with ``--long-min`` minutes of footage: the calibration stages (extrinsics + BA + offset
  refinement) should cost about the same as for ``short`` (fixed sample counts); time alignment and triangulation
  grow with the footage.
- ``dense_sampling_20x``: the short footage calibrated with 20x the samples (10 000 in the BA, 60 000 per camera
  pair; a minute holds ~30 000 confident (frame, joint) pairs) -- the naive "use the data" baseline that the fixed
  sample counts replace (time and accuracy side by side).
- ``pycolmap``: COLMAP's incremental mapping (pycolmap) on the same keypoint tracks of the short footage: every
  camera is one image whose features are its (frame, joint) detections on the time grid of our alignment, matched by
  identity across cameras (one SIMPLE_RADIAL camera shared, as our shared intrinsics); scale-free, so s-TE, AE and
  focal error are compared (with our run's on the same data).
Usage: python bench/bench_mocap.py [--short-s 60] [--long-min 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("GLOG_minloglevel", "2")  # pycolmap's progress log

import numpy as np  # noqa: E402

from perception.datasets.keypoints2d import read_keypoints2d_dir  # noqa: E402
from perception.fileio import json_text  # noqa: E402
from perception.metrics import mocap as M  # noqa: E402
from perception.sim.scenarios.mocap import MocapSimConfig, make_mocap  # noqa: E402
from recon.mocap import MocapConfig, run_mocap  # noqa: E402

CALIBRATION = ("extrinsics", "bundle adjustment", "time offset refinement")


def pycolmap_peer(root: Path, truth: dict, min_conf: float = 0.5) -> dict:
    """Incremental mapping (pycolmap) of the cameras from the synchronised joint tracks."""
    import pycolmap

    from recon.mocap.sync import estimate_offsets, resample

    kp = read_keypoints2d_dir(root / "keypoints2d")
    names = sorted(kp)
    t0 = time.perf_counter()
    _, res = resample(kp, estimate_offsets(kp).offsets_s)
    t_sync = time.perf_counter() - t0
    work = root / "pycolmap"
    work.mkdir(parents=True, exist_ok=True)
    (work / "images").mkdir(exist_ok=True)
    t0 = time.perf_counter()
    db = pycolmap.Database.open(str(work / "database.db"))
    W, H = kp[names[0]].image_size
    cam = pycolmap.Camera(model="SIMPLE_RADIAL", width=W, height=H, params=[W / 2 / np.tan(np.deg2rad(30)), W / 2,
                                                                                  H / 2, 0.0])  # fmt: skip
    cid = db.write_camera(cam)
    sensor = pycolmap.sensor_t(type=pycolmap.SensorType.CAMERA, id=cid)
    rig = pycolmap.Rig()
    rig.add_ref_sensor(sensor)
    rid = db.write_rig(rig)
    ids, valid = [], []
    for n in names:
        iid = db.write_image(pycolmap.Image(name=f"{n}.jpg", camera_id=cid))
        ids.append(iid)
        fr = pycolmap.Frame()
        fr.rig_id = rid
        fr.add_data_id(pycolmap.data_t(sensor_id=sensor, id=iid))
        db.write_frame(fr)
        xy = res[n][..., :2].reshape(-1, 2).copy()
        ok = res[n][..., 2].reshape(-1) >= min_conf
        xy[~ok] = -1e4
        db.write_keypoints(iid, (xy + 0.5).astype(np.float32))  # COLMAP's pixel centres are at +0.5
        valid.append(ok)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            m = np.flatnonzero(valid[a] & valid[b])
            pairs = np.stack([m, m], 1).astype(np.uint32)
            db.write_matches(ids[a], ids[b], pairs)
            g = pycolmap.TwoViewGeometry()
            g.config = pycolmap.TwoViewGeometryConfiguration.UNCALIBRATED
            g.inlier_matches = pairs
            db.write_two_view_geometry(ids[a], ids[b], g)
    db.close()
    recs = pycolmap.incremental_mapping(str(work / "database.db"), str(work / "images"), str(work / "sparse"))
    t_map = time.perf_counter() - t0
    if not recs:
        return {"registered": 0, "seconds": t_map}
    rec = max(recs.values(), key=lambda r: r.num_reg_images())
    by_name = {im.name[:-4]: im for im in rec.images.values()}
    got = [n for n in names if n in by_name]
    Tp = np.stack([np.vstack([by_name[n].cam_from_world().inverse().matrix(), [0, 0, 0, 1]]) for n in got])
    Tg = np.stack([truth["T_world_cam"][n].matrix() for n in got])
    f = truth["cameras"]["cam01"].fx
    return {"registered": len(got), "cameras": len(names), "sync_s": t_sync, "mapping_s": t_map,
            "s_TE_m": M.s_te(Tp[:, :3, 3], Tg[:, :3, 3]), "AE_deg": M.ae(Tp, Tg),
            "focal_rel_err": abs(float(next(iter(rec.cameras.values())).params[0]) - f) / f}  # fmt: skip


def one(root: Path, seconds: float, seed: int, cfg: MocapConfig, peer: bool = False) -> dict:
    truth = make_mocap(root, MocapSimConfig(cameras=4, seconds=seconds), seed=seed)
    kp = read_keypoints2d_dir(root / "keypoints2d")
    t0 = time.perf_counter()
    r = run_mocap(kp, cfg)
    total = time.perf_counter() - t0
    cp = np.stack([T.t for T in r.T_world_cam])
    cg = np.stack([truth["T_world_cam"][n].t for n in r.cameras])
    Tp = np.stack([T.matrix() for T in r.T_world_cam])
    Tg = np.stack([truth["T_world_cam"][n].matrix() for n in r.cameras])
    f = truth["cameras"]["cam01"].fx
    if peer:
        return {"sparsepipe": {"s_TE_m": M.s_te(cp, cg), "AE_deg": M.ae(Tp, Tg), "total_s": total,
                               "focal_rel_err": abs(r.intrinsics[0].f - f) / f},
                "pycolmap": pycolmap_peer(root, truth)}  # fmt: skip
    return {
        "footage_s": seconds, "views": 4, "total_s": total, "time_over_footage": total / seconds,
        "stages_s": r.timings_s, "calibration_s": sum(r.timings_s.get(k, 0.0) for k in CALIBRATION),
        "TE_m": M.te(cp, cg), "AE_deg": M.ae(Tp, Tg), "focal_rel_err": abs(r.intrinsics[0].f - f) / f,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--short-s", type=float, default=60.0, help="short footage (s) (default: %(default)s)")
    ap.add_argument("--long-min", type=float, default=20.0, help="long footage (min) (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        out["short"] = one(Path(tmp) / "short", args.short_s, args.seed, MocapConfig(seed=args.seed))
        out["long"] = one(Path(tmp) / "long", 60.0 * args.long_min, args.seed, MocapConfig(seed=args.seed))
        dense = MocapConfig(seed=args.seed, ba_samples=20 * 500, pair_samples=20 * 3000)
        out["dense_sampling_20x"] = one(Path(tmp) / "dense", args.short_s, args.seed, dense)
        out["vs_pycolmap"] = one(Path(tmp) / "peer", 20.0, args.seed, MocapConfig(seed=args.seed), peer=True)
    out["calibration_long_over_short"] = out["long"]["calibration_s"] / out["short"]["calibration_s"]
    print(json_text(out, indent=2))


if __name__ == "__main__":
    main()
