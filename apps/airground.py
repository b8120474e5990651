"""Air-ground relative localization over a recording: the UGV estimates the UAV's pose relative to itself from the
sparse keypoints the UAV sends (under 0.3 Mbit/s).

Outputs in OUT: ugv_keyframes.tum (UGV camera after stage 1), uav_keyframes.tum (UAV camera in the UGV frame, when
stage 2 succeeded), relative_pose.json (T_ugvworld_uavworld, covariance, inliers), loops.json (every UAV query with
its candidates, matches and inliers, and the PnP pose of accepted ones), ugv_revisits.json (UGV keyframe pairs that
closed the UGV's own loop in stage 1), bandwidth.json (stream rate and stage timings), config.yaml and run.rrd.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from apps.config import PipelineConfig, save_resolved_config
from perception.fileio import atomic_write_json
from slam.airground.pipeline import AirgroundOptions, AirgroundOutput, run_airground
from slam.trajectory import Trajectory, write_tum

log = logging.getLogger(__name__)


@dataclass
class AirgroundConfig(PipelineConfig):
    bag: Path = Path("out/sim/airground/recording.mcap")
    """The recording (ROS 1 .bag, ROS 2 .db3 / .mcap)."""
    rig: Path = Path("out/sim/airground/rig.yaml")
    """Rig file: cameras, T_imu_cam, time offset, topic names."""
    out: Path = Path("out/airground")
    options: AirgroundOptions = field(default_factory=AirgroundOptions)
    """Stage options (features, keyframes, stage 1, bandwidth, loop closure, stage 2)."""


def write_outputs(out_dir: Path, result: AirgroundOutput) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_tum(out_dir / "ugv_keyframes.tum", Trajectory(result.ugv_keyframe_stamps, result.stage1.T_world_cam))
    s2 = result.stage2
    if s2 is not None:
        uav = s2.T_ugvworld_uavworld @ result.uav_T_uavworld_cam
        write_tum(out_dir / "uav_keyframes.tum", Trajectory(result.uav_keyframe_stamps, uav))
        rel = {
            "status": "ok",
            "T_ugvworld_uavworld": s2.T_ugvworld_uavworld.matrix().tolist(),
            "covariance_rot_trans": np.asarray(s2.covariance).tolist(),
            "inliers_per_keyframe": {str(k): v for k, v in s2.inliers_per_keyframe.items()},
            "num_correspondences": s2.num_correspondences,
            "inlier_rmse_px": s2.inlier_rmse_px,
        }
    else:
        rel = {"status": "no verified UAV keyframe: no relative pose"}
    atomic_write_json(out_dir / "relative_pose.json", rel)
    loops = []
    for r, (qs, ms) in zip(result.loops, result.loop_stamps, strict=True):
        d = {**r.to_json(), "query_stamp_ns": qs, "match_stamp_ns": ms}
        if r.accepted:
            d["T_ugvworld_cam"] = r.T_world_cam.matrix().tolist()  # the PnP pose of the UAV camera
        loops.append(d)
    atomic_write_json(out_dir / "loops.json", loops)
    kf = result.ugv_keyframe_stamps
    revisits = [
        {"keyframes": [r.i, r.j], "stamps_ns": [int(kf[r.i]), int(kf[r.j])], "similarity": round(r.similarity, 4),
         "inliers": r.inliers, "rotation_error_deg": round(r.rotation_error_deg, 3)}
        for r in result.revisits
    ]  # fmt: skip
    atomic_write_json(out_dir / "ugv_revisits.json", revisits)
    atomic_write_json(out_dir / "bandwidth.json", {**result.bandwidth, "timings_s": result.timings})


def run(cfg: AirgroundConfig) -> int:
    from rich.console import Console

    from apps.viz import blueprint_for, parse_rerun_spec, recording
    from apps.viz.log import log_camera, log_lines3d, log_points, log_trajectory, log_world, set_time
    from perception.datasets.rig import load_rig

    spec = parse_rerun_spec(cfg.rerun, cfg.out)
    rig = load_rig(cfg.rig)
    console = Console()
    with console.status("air-ground localization") as status:
        result = run_airground(cfg.bag, rig, cfg.options, progress=lambda s: status.update(s))
    out = Path(cfg.out)
    write_outputs(out, result)
    save_resolved_config(cfg, "airground")
    with recording("sparsepipe-airground", spec, blueprint_for("airground")) as rec:
        log_world(rec, "world", up="+z")
        ok = result.stage1.point_ok
        log_points(rec, "world/landmarks", result.stage1.points[ok], colors=(150, 150, 150), static=True)
        log_trajectory(rec, "world/ugv/trajectory", None, result.stage1.T_world_cam, color=(230, 120, 40), static=True)
        if result.stage2 is not None:
            uav = result.stage2.T_ugvworld_uavworld @ result.uav_T_uavworld_cam
            log_trajectory(rec, "world/uav/trajectory", None, uav, color=(80, 170, 230), static=True)
            # each verified UAV keyframe at its time: its camera and its inlier 2D-3D matches onto UGV landmarks
            T_uav = {int(s): T for s, T in zip(result.uav_keyframe_stamps, uav, strict=True)}
            ugv_T = {int(s): T for s, T in zip(result.ugv_keyframe_stamps, result.stage1.T_world_cam, strict=True)}
            for r, (qs, ms) in zip(result.loops, result.loop_stamps, strict=True):
                if not r.accepted or qs not in T_uav:
                    continue
                set_time(rec, stamp_ns=qs)
                T = T_uav[qs]
                log_camera(rec, "world/uav/camera", T, rig.uav_camera, image_plane_distance=1.0)
                ends = result.stage1.points[r.landmark_idx]
                log_lines3d(rec, "world/uav/matches", np.repeat(T.t[None], len(ends), 0), ends,
                            colors=(80, 170, 230), radius=0.01)  # fmt: skip
                if ms in ugv_T:
                    log_camera(rec, "world/ugv/matched_keyframe", ugv_T[ms], rig.ugv_camera, image_plane_distance=0.5)
    n_loops = sum(r.accepted for r in result.loops)
    bw = result.bandwidth
    print(f"UGV keyframes {len(result.ugv_keyframe_stamps)}, landmarks {int(ok.sum())}; UAV messages {bw['messages']} "
          f"(max {bw['max_window_bits_per_s'] / 1e6:.3f} Mbit/s per 1 s window); verified loops {n_loops}")  # fmt: skip
    if result.stage2 is not None:
        T = result.stage2.T_ugvworld_uavworld
        print(f"T_ugvworld_uavworld translation {np.round(T.t, 3).tolist()}, "
              f"{result.stage2.num_correspondences} correspondences")  # fmt: skip
    else:
        print("no relative pose: no UAV keyframe was verified against the UGV map")
    return 0
