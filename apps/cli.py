"""``sparsepipe`` — the one command-line entry point.

Each subcommand is a ``(config dataclass, run function)`` pair living in its own module, imported only when that
subcommand runs, so ``sparsepipe --help`` stays fast. A subcommand may have two words (``sparsepipe eval 7scenes``).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from dataclasses import dataclass

from perception.errors import InputError

log = logging.getLogger("sparsepipe")


@dataclass(frozen=True)
class Command:
    name: str
    target: str
    """``module:ConfigClass:run_function``."""
    summary: str


COMMANDS: tuple[Command, ...] = (
    Command("doctor", "apps.doctor:DoctorConfig:run", "Check every dependency, the spconv CPU path and CUDA."),
    Command(
        "demo",
        "apps.demo_airground:DemoAirgroundConfig:run",
        "The main job (`make demo`): simulate an air-ground recording, localize the UAV from the UGV, evaluate.",
    ),
    Command(
        "demo ba",
        "apps.demo:DemoConfig:run",
        "Bundle-adjust a synthetic COLMAP scene with the GTSAM back end, compare to pycolmap, write outputs.",
    ),
    Command(
        "sim room",
        "apps.sim:SimRoomConfig:run_room",
        "Simulate an indoor RGB-D relocalization dataset (7-Scenes layout).",
    ),
    Command("sim tum", "apps.sim:SimTumConfig:run_tum", "Simulate a hand-held RGB-D sequence (TUM RGB-D layout)."),
    Command(
        "airground",
        "apps.airground:AirgroundConfig:run",
        "Air-ground relative localization over a recording (UGV LIO + camera, UAV camera + odometry).",
    ),
    Command(
        "eval airground",
        "apps.eval_airground:EvalAirgroundConfig:run",
        "Evaluate an air-ground run against ground truth (relative pose, ATE, loops, bandwidth) as JSON.",
    ),
    Command(
        "reloc build",
        "apps.reloc:RelocBuildConfig:run_build",
        "Build a FaVoR relocalization map (landmark descriptor voxel grids) from a 7-Scenes scene's training split.",
    ),
    Command(
        "reloc query",
        "apps.reloc:RelocQueryConfig:run_query",
        "Localise a 7-Scenes split against a FaVoR map (render -> match -> PnP); hloc-style results.",
    ),
    Command(
        "eval 7scenes",
        "apps.reloc:Eval7ScenesConfig:run_eval",
        "Relocalization metrics per 7-Scenes scene: FaVoR vs baselines (median cm/deg, recalls, time, map size).",
    ),
    Command(
        "sim scannet",
        "apps.sim:SimScanNetConfig:run_scannet",
        "Simulate labelled indoor point clouds (procedural rooms, NYU40 ids) in the ScanNet v2 layout.",
    ),
    Command(
        "sim kitti-lidar",
        "apps.sim:SimKittiLidarConfig:run_kitti_lidar",
        "Simulate LiDAR sweeps of streets (cars, pedestrians, cyclists) in the KITTI object-detection layout.",
    ),
    Command(
        "pointseg train",
        "apps.pointseg:PointsegTrainConfig:run_train",
        "Train weakly-supervised point-cloud segmentation (CPCM or the sparse-label baseline) on ScanNet-layout data.",
    ),
    Command(
        "pointseg eval",
        "apps.pointseg:PointsegEvalConfig:run_eval",
        "Evaluate a pointseg checkpoint on full point clouds (per-class IoU, mIoU, overall accuracy).",
    ),
    Command(
        "pointseg compare",
        "apps.pointseg:PointsegCompareConfig:run_compare",
        "CPCM vs the sparse-label baseline over seeds, with the full-label upper bound (mIoU table as JSON).",
    ),
    Command(
        "eval scannet",
        "apps.pointseg:EvalScanNetConfig:run_eval_scannet",
        "ScanNet segmentation metrics of a checkpoint (20 classes, per-class IoU, mIoU) as JSON.",
    ),
    Command(
        "detect3d train",
        "apps.detect3d:Detect3dTrainConfig:run_train",
        "Train DSVT-P (sparse voxel transformer + CenterPoint head) for LiDAR 3D detection on KITTI-layout data.",
    ),
    Command(
        "detect3d eval",
        "apps.detect3d:Detect3dEvalConfig:run_eval",
        "Evaluate a detect3d checkpoint: KITTI-style BEV/3D AP per class, KITTI result files.",
    ),
    Command(
        "sim egohumans",
        "apps.sim:SimEgohumansConfig:run_egohumans",
        "Simulate a subject seen by unsynchronised, uncalibrated cameras: 2D keypoints + EgoHumans-layout truth.",
    ),
    Command(
        "mocap",
        "apps.mocap:MocapCmdConfig:run",
        "Kineo: calibration-free metric motion capture from 2D keypoints of unsynchronised cameras.",
    ),
    Command(
        "eval egohumans",
        "apps.mocap:EvalEgohumansConfig:run_eval",
        "Motion-capture metrics against EgoHumans-layout ground truth (TE, s-TE, AE, W-MPJPE, PA-MPJPE, focal, sync).",
    ),
    Command(
        "launch",
        "apps.launch_cmd:LaunchConfig:run",
        "Run a ROS 2 YAML launch file's nodes (zenoh transport, one process each); --print lists them.",
    ),
    Command(
        "sim airground",
        "apps.sim:SimAirgroundConfig:run_airground",
        "Simulate a UGV + UAV recording around an urban block (ROS 2 MCAP, rig, ground truth).",
    ),
)


def _usage() -> str:
    from importlib import metadata

    try:
        version = metadata.version("sparsepipe")
    except metadata.PackageNotFoundError:  # pragma: no cover
        version = "unknown"
    width = max(len(c.name) for c in COMMANDS) + 2
    lines = [
        f"sparsepipe {version} — staged 3D-vision and robotics perception pipelines",
        "",
        "usage: sparsepipe COMMAND [options]      (sparsepipe COMMAND --help shows every option and its default)",
        "",
        "commands:",
    ]
    lines += [f"  {c.name.ljust(width)}{c.summary}" for c in COMMANDS]
    lines += [
        "",
        "Every command takes --out, --seed and --config FILE and saves its resolved options as OUT/config.yaml;",
        "pipeline commands also take --rerun {save[:PATH],spawn,serve,connect[:URL],off}.",
        "Set SPARSEPIPE_DEBUG=1 to see full tracebacks.",
    ]
    return "\n".join(lines)


def _find(argv: list[str]) -> tuple[Command | None, list[str]]:
    for n in (2, 1):
        name = " ".join(argv[:n])
        for c in COMMANDS:
            if c.name == name:
                return c, argv[n:]
    return None, argv


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        print(_usage().splitlines()[0])
        return 0
    cmd, rest = _find(argv)
    if cmd is None:
        group = [c for c in COMMANDS if c.name.split()[0] == argv[0]]
        if group:
            print(f"sparsepipe {argv[0]}: choose one of: " + ", ".join(c.name for c in group), file=sys.stderr)
        else:
            print(
                f"sparsepipe: unknown command {argv[0]!r}; run 'sparsepipe --help' for the list",
                file=sys.stderr,
            )
        return 2

    module_name, cfg_name, fn_name = cmd.target.split(":")
    module = importlib.import_module(module_name)
    cfg_cls, run = getattr(module, cfg_name), getattr(module, fn_name)

    from apps.config import parse_config, setup_logging

    debug = os.environ.get("SPARSEPIPE_DEBUG", "") not in ("", "0")
    try:
        cfg = parse_config(cfg_cls, rest, prog=f"sparsepipe {cmd.name}", description=module.__doc__ or cmd.summary)
        setup_logging(cfg.log_level)
        rc = run(cfg)
        return int(rc or 0)
    except (InputError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as e:
        if debug:
            raise
        print(f"sparsepipe {cmd.name}: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        # Validation in the library raises ValueError with a message naming the input; anything else
        # is a bug whose traceback SPARSEPIPE_DEBUG=1 shows.
        if debug:
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"sparsepipe {cmd.name}: error: {msg} (SPARSEPIPE_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sparsepipe {cmd.name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
