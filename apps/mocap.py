"""``sparsepipe mocap`` (Kineo) and ``sparsepipe eval egohumans``.

``mocap`` reads one 2D-keypoint file per camera (``DIR/<camera>.npz``, the project's format; see data/README.md)
and writes to OUT: ``cameras.json`` (per camera: width, height, fx fy cx cy, Brown-Conrady k1 k2 p1 p2 k3,
``T_world_cam``, clock offset), a COLMAP text model ``colmap/`` (OPENCV cameras, one image per camera), ``joints.npz``
(``times_s`` (T,) in the reference camera's clock, ``joints`` (T, 17, 3) metres, ``consensus`` (T, 17)),
``joints.c3d`` (the joints as C3D markers, mm), ``metrics.json`` (timings, BA residuals, warnings),
``config.yaml`` and ``run.rrd`` (the animated skeleton and the cameras).

``eval egohumans`` compares a mocap run with an EgoHumans-layout sequence's ground truth (calibration in
``colmap/workplace``, joints in ``processed_data/fit_poses3d``) and, for simulated sequences, ``gt/mocap_gt.json``
(clock offsets and the ground-truth frame times; without it the cameras are taken as synchronised and GT frame N at
(N - 1) / 20 s of the reference clock). Metrics as in Kineo: TE (rigid camera-centre alignment, m), s-TE (Sim(3)),
AE (deg, after the Sim(3) alignment), W-MPJPE (world joints after the rigid camera alignment, mm), PA-MPJPE
(per-frame Procrustes, mm), focal error (relative), time-offset error (frames and s).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from apps.config import CommonConfig, PipelineConfig, save_resolved_config
from perception.datasets.colmap import ColmapImage, ColmapModel, write_colmap_model
from perception.datasets.keypoints2d import COCO17_KEYPOINTS, read_keypoints2d_dir
from perception.errors import InputError
from perception.fileio import atomic_dir, atomic_path, atomic_write_bytes, atomic_write_json
from recon.mocap import MocapConfig, MocapResult, run_mocap

log = logging.getLogger(__name__)


@dataclass
class MocapCmdConfig(PipelineConfig):
    keypoints: Path = Path("out/sim/egohumans/keypoints2d")
    """Folder with one <camera>.npz 2D-keypoint file per camera."""
    out: Path = Path("out/mocap")
    mocap: MocapConfig = field(default_factory=MocapConfig)
    """Stages and their settings (--seed sets mocap.seed)."""


@dataclass
class EvalEgohumansConfig(CommonConfig):
    root: Path = Path("out/sim/egohumans")
    """EgoHumans-layout sequence folder with the ground truth."""
    run: Path = Path("out/mocap")
    """Output folder of `sparsepipe mocap`."""
    out: Path = Path("out/eval/egohumans")
    json: Path | None = None
    """Metrics file (default OUT/metrics.json)."""
    anchor: str = "aria01"
    """Subject (Aria id) whose joints are compared."""


# ----------------------------------------------------------------------------------------------- outputs
def write_c3d(path: Path, times_s: np.ndarray, joints: np.ndarray) -> Path:
    """Joints (T, 17, 3) metres as C3D markers in millimetres (ezc3d), written atomically."""
    import ezc3d

    c = ezc3d.c3d()
    rate = 1.0 / float(np.median(np.diff(times_s))) if len(times_s) > 1 else 1.0
    c["parameters"]["POINT"]["RATE"]["value"] = [rate]
    c["parameters"]["POINT"]["LABELS"]["value"] = list(COCO17_KEYPOINTS)
    c["parameters"]["POINT"]["UNITS"]["value"] = ["mm"]
    pts = np.ones((4, joints.shape[1], joints.shape[0]))
    pts[:3] = np.transpose(joints * 1000.0, (2, 1, 0))
    c["data"]["points"] = pts
    with atomic_path(path) as tmp:
        c.write(str(tmp))
    return path


def write_outputs(out: Path, r: MocapResult) -> None:
    cams = {}
    model = ColmapModel(cameras={}, images={})
    for i, (name, K, T) in enumerate(zip(r.cameras, r.intrinsics, r.T_world_cam, strict=True), start=1):
        k1, k2, p1, p2, k3 = (float(v) for v in K.dist)
        cams[name] = {"width": K.width, "height": K.height, "fx": K.f, "fy": K.f, "cx": K.cx, "cy": K.cy,
                      "k1": k1, "k2": k2, "p1": p1, "p2": p2, "k3": k3, "T_world_cam": T.matrix().tolist(),
                      "offset_s": r.offsets_s[name]}  # fmt: skip
        model.cameras[i] = K.camera()
        model.images[i] = ColmapImage(i, f"{name}/00001.jpg", i, T)
    atomic_write_json(out / "cameras.json", {
        "convention": "T_world_cam camera-to-world; OpenCV pixels; t_camera = t_reference + offset_s",
        "reference": r.cameras[0], "cameras": cams})  # fmt: skip
    with atomic_dir(out / "colmap") as tmp:
        write_colmap_model(tmp, model, text=True)
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, times_s=r.times_s, joints=r.joints.astype(np.float64), consensus=r.consensus,
                        joint_names=np.asarray(COCO17_KEYPOINTS))  # fmt: skip
    atomic_write_bytes(out / "joints.npz", buf.getvalue())
    write_c3d(out / "joints.c3d", r.times_s, np.nan_to_num(r.joints, nan=0.0))
    if len(r.scene_points):
        import open3d as o3d

        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(r.scene_points))
        pcd.colors = o3d.utility.Vector3dVector(r.scene_colors.astype(np.float64) / 255.0)
        with atomic_path(out / "scene.ply") as tmp:
            if not o3d.io.write_point_cloud(str(tmp), pcd):
                raise OSError(f"could not write {out / 'scene.ply'}")
    atomic_write_json(out / "metrics.json", {"timings_s": r.timings_s, "ba_rms_px": r.ba_rms_px, "scale": r.scale,
                                             "warnings": r.warnings, "frames": len(r.times_s)})  # fmt: skip


def run(cfg: MocapCmdConfig) -> int:
    from dataclasses import replace

    from rich.console import Console

    kp = read_keypoints2d_dir(cfg.keypoints)
    out = Path(cfg.out)
    with Console(stderr=True).status("motion capture") as status:
        r = run_mocap(kp, replace(cfg.mocap, seed=cfg.seed),
                      progress=lambda s: status.update(f"motion capture: {s} done"))  # fmt: skip
    write_outputs(out, r)
    save_resolved_config(cfg, "mocap")
    _log_rrd(cfg, r, kp)
    ok = np.isfinite(r.joints).all(-1).mean()
    print(f"{len(r.cameras)} cameras, {len(r.times_s)} frames ({100 * ok:.1f}% joints triangulated); focal "
          f"{', '.join(f'{k.f:.0f}' for k in r.intrinsics[:4])} px; offsets "
          f"{', '.join(f'{n} {o:+.3f} s' for n, o in r.offsets_s.items())}; BA {r.ba_rms_px[-1]:.2f} px rms -> {out}")
    return 0


def _log_rrd(cfg: MocapCmdConfig, r: MocapResult, kp) -> None:
    from apps.viz import blueprint_for, parse_rerun_spec, recording
    from apps.viz.log import log_camera, log_points, log_skeleton, log_world, set_time

    spec = parse_rerun_spec(cfg.rerun, Path(cfg.out))
    with recording("sparsepipe-mocap", spec, blueprint_for("mocap", cameras=[f"/world/{r.cameras[0]}"])) as rec:
        log_world(rec, "world", up="+z")
        for name, K, T in zip(r.cameras, r.intrinsics, r.T_world_cam, strict=True):
            log_camera(rec, f"world/{name}", T, K.camera(), image_plane_distance=0.5, static=True)
        if len(r.scene_points):
            log_points(rec, "world/scene", r.scene_points, colors=r.scene_colors, radii=0.02, static=True)
        step = max(1, len(r.times_s) // 600)
        for k in range(0, len(r.times_s), step):
            set_time(rec, frame=k, stamp_ns=int(round(r.times_s[k] * 1e9)))
            log_skeleton(rec, "world/subject", r.joints[k])


# ----------------------------------------------------------------------------------------------- evaluation
def evaluate(root: Path, run: Path, anchor: str = "aria01") -> dict:
    from perception.datasets.egohumans import FPS, EgoHumans
    from perception.metrics import mocap as M

    cams_path = run / "cameras.json"
    if not cams_path.is_file():
        raise FileNotFoundError(f"{cams_path} is missing; run `sparsepipe mocap --out {run}` first")
    pred = json.loads(cams_path.read_text())
    jz = np.load(run / "joints.npz")
    ds = EgoHumans(root)
    names = [n for n in pred["cameras"] if n in ds.cameras]
    if len(names) < 2:
        raise InputError(f"{root}: the run's cameras {sorted(pred['cameras'])} are not in the sequence "
                         f"({', '.join(ds.cameras)}); wrong --root?")  # fmt: skip
    T_pred = np.stack([np.array(pred["cameras"][n]["T_world_cam"]) for n in names])
    T_gt = np.stack([ds.T_world_cam(n).matrix() for n in names])
    c_pred, c_gt = T_pred[:, :3, 3], T_gt[:, :3, 3]
    m: dict = {"cameras": len(names), "TE_m": M.te(c_pred, c_gt), "s_TE_m": M.s_te(c_pred, c_gt),
               "AE_deg": M.ae(T_pred, T_gt)}  # fmt: skip
    f_err = [abs(pred["cameras"][n]["fx"] - ds.intrinsics(n).K[0, 0]) / ds.intrinsics(n).K[0, 0] for n in names]
    m["focal_rel_err"] = float(np.mean(f_err))
    gt_meta = root / "gt" / "mocap_gt.json"
    ref = pred["reference"]
    if gt_meta.is_file():
        g = json.loads(gt_meta.read_text())
        o_gt = g["time_offsets_s"]
        fps = g["fps"][ref]
        errs = [pred["cameras"][n]["offset_s"] - (o_gt[n] - o_gt[ref]) for n in names]
        m["offset_err_s_max"] = float(np.max(np.abs(errs)))
        m["offset_err_frames_max"] = float(np.max(np.abs(errs)) * fps)
        gt_times_ref = np.asarray(g["gt_frame_times_s"]) + o_gt[ref]  # in the reference camera's clock
    else:
        gt_times_ref = None
    frames, subjects = ds.load_poses3d_sequence()
    if anchor not in subjects:
        raise InputError(f"{root}: no joints of subject {anchor!r} in processed_data/fit_poses3d "
                         f"(subjects: {', '.join(subjects) or 'none'}); pass --anchor")  # fmt: skip
    X_gt = subjects[anchor][..., :3]
    if gt_times_ref is None:
        gt_times_ref = (np.asarray(frames) - 1) / FPS
    t_pred, J = jz["times_s"], jz["joints"]
    idx = np.clip(np.searchsorted(t_pred, gt_times_ref), 1, len(t_pred) - 1)
    idx = np.where(np.abs(t_pred[idx - 1] - gt_times_ref) < np.abs(t_pred[idx] - gt_times_ref), idx - 1, idx)
    near = np.abs(t_pred[idx] - gt_times_ref) <= 0.5 * float(np.median(np.diff(t_pred)))
    lo = np.clip(np.searchsorted(t_pred, gt_times_ref) - 1, 0, len(t_pred) - 2)
    a = np.clip((gt_times_ref - t_pred[lo]) / np.maximum(t_pred[lo + 1] - t_pred[lo], 1e-12), 0, 1)
    Jp = (1 - a)[:, None, None] * J[lo] + a[:, None, None] * J[lo + 1]  # interpolated at the GT times
    Jp, Jg = Jp[near], X_gt[near]
    m["frames_compared"] = int(near.sum())
    valid = np.isfinite(Jp).all(-1) & np.isfinite(Jg).all(-1)  # untriangulated joints are reported apart
    Jp = np.where(valid[..., None], Jp, 0.0)
    m["W_MPJPE_mm"] = 1000 * M.w_mpjpe(Jp, Jg, c_pred, c_gt, mask=valid)
    m["PA_MPJPE_mm"] = 1000 * M.pa_mpjpe(Jp, Jg, mask=valid)
    m["joints_triangulated"] = float(valid.mean())
    return m


def run_eval(cfg: EvalEgohumansConfig) -> int:
    m = evaluate(Path(cfg.root), Path(cfg.run), cfg.anchor)
    path = Path(cfg.json) if cfg.json is not None else Path(cfg.out) / "metrics.json"
    atomic_write_json(path, m)
    save_resolved_config(cfg, "eval egohumans", out_dir=path.parent)
    for k, v in m.items():
        print(f"{k:24s} {v:.4f}" if isinstance(v, float) else f"{k:24s} {v}")
    return 0
