"""The ``egohumans`` scenario: one subject seen by unsynchronised, uncalibrated cameras, as 2D COCO-17 keypoints.

Subject: a kinematic COCO-17 skeleton with constant bone lengths from Drillis-Contini ratios of its height
(:func:`bone_lengths`), alternating walking on a circle (gait cycle ~1.1 s, arm swing), squats and arm raises, with
slow turns, so every camera sees depth and direction changes.

Cameras: ``cameras`` on a ring (radius ~4.5-6 m, 1.2-2.4 m high) aimed near the subject's area, with Brown-Conrady
distortion (k1 k2 p1 p2 k3, monotonic inside the image), shared by all cameras by default (identical action cameras)
or drawn per camera. Each camera's clock starts at an unknown offset (``t_cam = t_world + offset``, offsets in
[0, 2) s with a fractional-frame part).

Detector model (``noise="realistic"``): AR(1) (rho 0.7) pixel noise with sigma = ``noise_frac`` of the subject's
box height (about 2-4 px), x1.5 on hips and shoulders; confidences falling with the noise; dropouts (NaN,
confidence 0); outliers (30-100 px jumps, confidence 0.5-0.8); left/right swaps of whole frames; joints outside
the image removed. ``noise="none"`` gives exact projections with confidence 1; ``"heavy"`` sigma x2.5 and 15%
dropouts.

Written (read back by the project's readers): ``keypoints2d/camXX.npz`` (the project's 2D-keypoint format), an
EgoHumans sequence layout with the true calibration (``colmap/workplace``) and the true joints every world frame at
20 fps (``processed_data/fit_poses3d``), ``exo/camXX/images/`` (empty: no images are rendered), and
``gt/mocap_gt.json`` (time offsets, frame rates, subject height).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from perception.camera import OpenCVCamera
from perception.datasets.egohumans import FPS as GT_FPS
from perception.datasets.egohumans import EgoHumansWriter
from perception.datasets.keypoints2d import Keypoints2D, write_keypoints2d
from perception.errors import InputError
from perception.fileio import atomic_write_json
from perception.sim.poses import look_at

log = logging.getLogger(__name__)

__all__ = ["BONES", "MocapSimConfig", "bone_lengths", "make_mocap", "subject_joints"]

# COCO-17: 0 nose, 1/2 eyes, 3/4 ears, 5/6 shoulders, 7/8 elbows, 9/10 wrists, 11/12 hips, 13/14 knees, 15/16 ankles
LEFT_RIGHT = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]
BONES = {"upper_arm": [(5, 7), (6, 8)], "forearm": [(7, 9), (8, 10)], "thigh": [(11, 13), (12, 14)],
         "shank": [(13, 15), (14, 16)], "shoulders": [(5, 6)], "hips": [(11, 12)]}  # fmt: skip
"""Rigid bones of COCO-17 used for the metric-scale prior (pairs of joints)."""


def bone_lengths(height: float) -> dict[str, float]:
    """Bone lengths (m) of a subject of ``height`` m (Drillis-Contini segment ratios, joint centres)."""
    return {"upper_arm": 0.186 * height, "forearm": 0.146 * height, "thigh": 0.245 * height,
            "shank": 0.246 * height, "shoulders": 0.206 * height, "hips": 0.143 * height}  # fmt: skip


@dataclass
class MocapSimConfig:
    cameras: int = 4
    seconds: float = 20.0
    fps: float = 30.0
    """Frame rate of every camera."""
    width: int = 1920
    height: int = 1080
    hfov_deg: tuple[float, float] = (60.0, 80.0)
    """Range of horizontal fields of view drawn for the lens."""
    shared_intrinsics: bool = True
    """One lens model for all cameras (identical action cameras); False draws one per camera."""
    distortion: bool = True
    ring_radius: tuple[float, float] = (4.5, 6.0)
    max_offset_s: float = 2.0
    """Clock offsets are drawn in [0, max_offset_s)."""
    subject_height: float = 1.75
    walk_radius: float = 1.5
    noise: str = "realistic"
    """none, realistic or heavy."""
    noise_frac: float = 0.006
    """Pixel noise sigma as a fraction of the subject's box height."""
    dropout: float = 0.05
    outliers: float = 0.015
    swaps: float = 0.005
    audio: bool = False
    """Also write each camera's audio track (``audio/camXX.wav``, 16 kHz, its own clock): the subject's claps and
    footsteps plus room noise, delayed by the sound's travel time to the camera (343 m/s)."""
    audio_rate: int = 16000
    images: bool = False
    """Also render each camera's view of the (empty) scene -- a textured floor and four walls 8 m from the centre --
    as ``exo/camXX/images/00001.jpg`` (for the scene points stage)."""
    image_scale: float = 0.5
    """Rendered images are this fraction of the camera resolution (the intrinsics scale with them)."""

    def validate(self) -> None:
        if self.cameras < 2:
            raise InputError(f"sim egohumans: need at least 2 cameras, got {self.cameras}")
        if self.cameras > 99 or self.seconds <= 1.0 or self.fps <= 0:
            raise InputError("sim egohumans: cameras <= 99, seconds > 1 and fps > 0 are required")
        if self.noise not in ("none", "realistic", "heavy"):
            raise InputError(f"sim egohumans: noise must be none, realistic or heavy, got {self.noise!r}")


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _activity(t: np.ndarray, period: float = 12.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights (walk, squat, raise) in [0, 1] with smooth transitions: 6 s walking, 3 s squats, 3 s arm raises."""
    ph = np.mod(t, period)

    def window(a: float, b: float) -> np.ndarray:
        ramp = 0.5
        up = np.clip((ph - a) / ramp, 0, 1)
        down = np.clip((b - ph) / ramp, 0, 1)
        return np.minimum(up, down)

    return window(0.0, 6.0), window(6.0, 9.0), window(9.0, 12.0)


def _walked(t: np.ndarray) -> np.ndarray:
    """Time spent walking since time 0 (s), a pure function of ``t``: whole activity periods plus the integral of
    the walking weight over the last partial one."""
    period = 12.0
    tau = np.linspace(0.0, period, 12001)
    w = _activity(tau, period)[0]
    cum = np.r_[0.0, np.cumsum(0.5 * (w[1:] + w[:-1]) * np.diff(tau))]
    k = np.floor(t / period)
    return k * cum[-1] + np.interp(t - k * period, tau, cum)


def subject_joints(t: np.ndarray, height: float = 1.75, walk_radius: float = 1.5, phase: float = 0.0) -> np.ndarray:
    """(T, 17, 3) COCO-17 joints (world, z up, metres) at world times ``t`` (s); bone lengths are exactly
    :func:`bone_lengths`."""
    t = np.asarray(t, np.float64)
    L = bone_lengths(height)
    walk, squat, raise_ = _activity(t + phase)
    # heading and position: walking advances along a circle; otherwise the subject stands and slowly turns
    speed = 1.0
    s = _walked(t + phase) * speed
    ang = phase + s / walk_radius + 0.3 * np.sin(0.21 * t)
    pelvis_xy = walk_radius * np.stack([np.cos(ang), np.sin(ang)], -1)
    heading = ang + np.pi / 2 + 0.4 * (1 - walk) * np.sin(0.5 * t)
    Rz = _rot_z(heading)  # body frame: x forward, y left, z up
    w = 2 * np.pi / 1.1  # gait
    g = np.sin(w * t)
    # legs: thigh angle from vertical (forward +) and knee flexion
    thigh_l = np.deg2rad(25) * g * walk + np.deg2rad(75) * squat
    thigh_r = -np.deg2rad(25) * g * walk + np.deg2rad(75) * squat
    knee_l = np.deg2rad(35) * np.clip(np.sin(w * t + 1.2), 0, None) * walk + np.deg2rad(130) * squat
    knee_r = np.deg2rad(35) * np.clip(np.sin(w * t + 1.2 + np.pi), 0, None) * walk + np.deg2rad(130) * squat
    ankle_h = 0.08
    leg_h = np.maximum(L["thigh"] * np.cos(thigh_l) + L["shank"] * np.cos(thigh_l - knee_l),
                       L["thigh"] * np.cos(thigh_r) + L["shank"] * np.cos(thigh_r - knee_r))  # fmt: skip
    pelvis = np.concatenate([pelvis_xy, (ankle_h + leg_h)[:, None]], -1)
    n = len(t)
    J = np.zeros((n, 17, 3))

    def body(v: np.ndarray) -> np.ndarray:  # body-frame vectors (n, 3) -> world offsets
        return np.einsum("nij,nj->ni", Rz, v)

    zeros = np.zeros(n)
    hip_half = L["hips"] / 2
    legs = {1: (11, 13, 15, thigh_l, knee_l), -1: (12, 14, 16, thigh_r, knee_r)}
    for side, (hip, knee, ankle, th, kn) in legs.items():
        hip_p = pelvis + body(np.stack([zeros, np.full(n, side * hip_half), zeros], -1))
        d_th = np.stack([np.sin(th), zeros, -np.cos(th)], -1)
        d_sh = np.stack([np.sin(th - kn), zeros, -np.cos(th - kn)], -1)
        J[:, hip] = hip_p
        J[:, knee] = hip_p + body(L["thigh"] * d_th)
        J[:, ankle] = J[:, knee] + body(L["shank"] * d_sh)
    lean = np.deg2rad(35) * squat  # the trunk leans forward in a squat
    trunk = 0.29 * height
    d_tr = np.stack([np.sin(lean), zeros, np.cos(lean)], -1)
    neck = pelvis + body(trunk * d_tr)
    sh_half = L["shoulders"] / 2
    for side, (sh, el, wr, sgn) in {1: (5, 7, 9, -1.0), -1: (6, 8, 10, 1.0)}.items():
        sh_p = neck + body(np.stack([zeros, np.full(n, side * sh_half), zeros], -1))
        swing = sgn * np.deg2rad(25) * g * walk
        flex = swing + np.deg2rad(165) * raise_ * (0.5 + 0.5 * np.sin(2 * np.pi * t / 1.5 + (side > 0)))
        flex = flex + np.deg2rad(40) * squat  # arms forward for balance
        abd = np.deg2rad(8)
        d_up = np.stack([np.sin(flex) * np.cos(abd), np.full(n, side * np.sin(abd)), -np.cos(flex) * np.cos(abd)], -1)
        elbow_f = np.deg2rad(20) + np.deg2rad(40) * squat
        d_fo = np.stack([np.sin(flex + elbow_f), zeros, -np.cos(flex + elbow_f)], -1)
        J[:, sh] = sh_p
        J[:, el] = sh_p + body(L["upper_arm"] * d_up)
        J[:, wr] = J[:, el] + body(L["forearm"] * d_fo)
    head = neck + body(0.13 * height * d_tr)
    J[:, 0] = head + body(np.stack([np.full(n, 0.09), zeros, zeros], -1))
    for side, (eye, ear) in {1: (1, 3), -1: (2, 4)}.items():
        J[:, eye] = head + body(np.stack([np.full(n, 0.075), np.full(n, side * 0.032), np.full(n, 0.035)], -1))
        J[:, ear] = head + body(np.stack([np.full(n, 0.0), np.full(n, side * 0.075), np.full(n, 0.02)], -1))
    return J


def _draw_lens(cfg: MocapSimConfig, rng: np.random.Generator) -> dict[str, float]:
    for _ in range(100):
        hfov = np.deg2rad(rng.uniform(*cfg.hfov_deg))
        f = cfg.width / 2 / np.tan(hfov / 2)
        d = dict(k1=rng.uniform(-0.25, 0.05), k2=rng.uniform(-0.03, 0.1), p1=rng.uniform(-1e-3, 1e-3),
                 p2=rng.uniform(-1e-3, 1e-3), k3=rng.uniform(-0.02, 0.02)) if cfg.distortion else dict(
                 k1=0.0, k2=0.0, p1=0.0, p2=0.0, k3=0.0)  # fmt: skip
        cam = OpenCVCamera(cfg.width, cfg.height, f, f, (cfg.width - 1) / 2, (cfg.height - 1) / 2, **d)
        corner = np.hypot(cfg.width / 2, cfg.height / 2) / f * 1.05
        if cam.max_radius > corner:  # monotonic over the whole image
            return {"f": f, **d}
    raise InputError("sim egohumans: could not draw a monotonic distortion; narrow the field of view")


SCENE_HALF = 8.0
"""The rendered scene: floor z = 0 and walls at x, y = +-SCENE_HALF (m)."""


def _render_scene(out: Path, cfg: MocapSimConfig, cams, poses, rng) -> None:
    from perception.datasets.common import write_rgb
    from perception.sim.primitives import box_mesh
    from perception.sim.render import render_camera
    from perception.sim.textures import mosaic_texture
    from perception.sim.world import World

    world = World()
    h = SCENE_HALF
    size = (2 * h, 2 * h, 6.0)
    for face in ("+x", "-x", "+y", "-y", "-z"):
        world.add(box_mesh((0.0, 0.0, 3.0), size, texture=mosaic_texture(rng, (2, 4), 256), tiles=(1, 1),
                           inward=True, faces=(face,), name=f"scene{face}"))  # fmt: skip
    s = cfg.image_scale
    for name, cam in cams.items():
        small = OpenCVCamera(int(cam.width * s), int(cam.height * s), cam.fx * s, cam.fy * s, (cam.cx + 0.5) * s - 0.5,
                             (cam.cy + 0.5) * s - 0.5, cam.k1, cam.k2, cam.p1, cam.p2, cam.k3)  # fmt: skip
        frame = render_camera(world, small, poses[name], supersample=1, noise_std=1.0, rng=rng.integers(2**31))
        write_rgb(out / "exo" / name / "images" / "00001.jpg", frame.rgb)


def _write_audio(out: Path, cfg: MocapSimConfig, names, poses, offsets, phase, duration, rng) -> None:
    """World sound (claps at random times, a click per step while walking, noise) heard by every camera."""
    import io

    from scipy.io import wavfile

    from perception.fileio import atomic_write_bytes

    sr = cfg.audio_rate
    t0 = -max(offsets.values()) - 1.0
    n = int((duration + max(offsets.values()) + 2.0) * sr)
    t = t0 + np.arange(n) / sr  # world time of the source signal
    src = np.zeros(n)
    events = np.sort(rng.uniform(t[0], t[-1], int(duration / 1.5)))  # claps
    steps = np.arange(np.ceil(t[0] / 0.55), t[-1] / 0.55) * 0.55
    walk = _activity(steps + phase)[0] > 0.5
    burst = np.exp(-np.arange(int(0.03 * sr)) / (0.004 * sr)) * rng.standard_normal(int(0.03 * sr))
    for e, amp in [*((e, 1.0) for e in events), *((s, 0.3) for s in steps[walk])]:
        i = int((e - t0) * sr)
        seg = src[i : i + len(burst)]
        seg += amp * burst[: len(seg)]
    centre = subject_joints(t[:: sr // 50], cfg.subject_height, cfg.walk_radius, phase)[:, 0]  # head, 50 Hz
    for name in names:
        cam_c = poses[name].t
        dist = np.interp(t, t[:: sr // 50], np.linalg.norm(centre - cam_c, axis=1))
        k = np.arange(int(duration * sr))
        t_world = k / sr - offsets[name]  # camera clock -> world time
        heard = np.interp(t_world - dist[np.clip(((t_world - t0) * sr).astype(int), 0, n - 1)] / 343.0, t, src)
        heard = heard / max(1.0, np.abs(src).max()) * 0.8 + rng.normal(0, 0.01, len(k))
        buf = io.BytesIO()
        wavfile.write(buf, sr, np.clip(heard * 32767, -32768, 32767).astype(np.int16))
        atomic_write_bytes(out / "audio" / f"{name}.wav", buf.getvalue())


def make_mocap(out: Path, cfg: MocapSimConfig | None = None, seed: int = 0) -> dict:
    """Simulate and write the sequence; returns the ground truth (cameras, poses, offsets, joints)."""
    cfg = cfg or MocapSimConfig()
    cfg.validate()
    rng = np.random.default_rng(seed)
    out = Path(out)
    names = [f"cam{i + 1:02d}" for i in range(cfg.cameras)]
    lens = _draw_lens(cfg, rng)
    cams, poses, offsets = {}, {}, {}
    base = rng.uniform(0, 2 * np.pi)
    for i, name in enumerate(names):
        lz = lens if cfg.shared_intrinsics else _draw_lens(cfg, rng)
        cams[name] = OpenCVCamera(cfg.width, cfg.height, lz["f"], lz["f"], (cfg.width - 1) / 2, (cfg.height - 1) / 2,
                                  lz["k1"], lz["k2"], lz["p1"], lz["p2"], lz["k3"])  # fmt: skip
        a = base + 2 * np.pi * i / cfg.cameras + rng.uniform(-0.25, 0.25)
        r = rng.uniform(*cfg.ring_radius)
        eye = np.array([r * np.cos(a), r * np.sin(a), rng.uniform(1.2, 2.4)])
        target = np.array([*rng.uniform(-0.4, 0.4, 2), rng.uniform(0.7, 1.1)])
        poses[name] = look_at(eye, target)
        offsets[name] = float(rng.uniform(0, cfg.max_offset_s)) if i else float(rng.uniform(0, 0.5))
    phase = float(rng.uniform(0, 12.0))
    sigma_scale = {"none": 0.0, "realistic": 1.0, "heavy": 2.5}[cfg.noise]
    dropout = 0.0 if cfg.noise == "none" else (0.15 if cfg.noise == "heavy" else cfg.dropout)
    outliers = 0.0 if cfg.noise == "none" else cfg.outliers
    swaps = 0.0 if cfg.noise == "none" else cfg.swaps
    joint_scale = np.ones(17)
    joint_scale[[5, 6, 11, 12]] = 1.5
    nF = int(round(cfg.seconds * cfg.fps))
    for name in names:
        cam, T = cams[name], poses[name]
        k = np.arange(nF)
        t_world = k / cfg.fps - offsets[name]
        X = subject_joints(t_world, cfg.subject_height, cfg.walk_radius, phase)
        pc = T.inverse().act(X.reshape(-1, 3))
        uv, ok = cam.project(pc)
        uv, ok = uv.reshape(nF, 17, 2), ok.reshape(nF, 17)
        box_h = np.nanmax(uv[..., 1], axis=1) - np.nanmin(uv[..., 1], axis=1)
        sigma = cfg.noise_frac * box_h[:, None] * joint_scale[None] * sigma_scale
        e = np.zeros((nF, 17, 2))
        innov = rng.standard_normal((nF, 17, 2))
        for f in range(nF):  # AR(1), stationary variance 1
            e[f] = innov[f] if f == 0 else 0.7 * e[f - 1] + np.sqrt(1 - 0.49) * innov[f]
        noise = e * sigma[..., None]
        conf = np.ones((nF, 17))
        if sigma_scale > 0:
            norm = np.linalg.norm(e, axis=-1) / np.sqrt(2)
            conf = np.clip(0.95 - 0.12 * norm + rng.normal(0, 0.04, (nF, 17)), 0.05, 1.0)
        kp = uv + noise
        jump = rng.random((nF, 17)) < outliers
        ang = rng.uniform(0, 2 * np.pi, (nF, 17))
        mag = rng.uniform(30, 100, (nF, 17))
        kp[jump] += np.stack([np.cos(ang), np.sin(ang)], -1)[jump] * mag[jump, None]
        conf[jump] = rng.uniform(0.5, 0.8, int(jump.sum()))
        swap = rng.random(nF) < swaps
        for a, b in LEFT_RIGHT:
            kp[swap, a], kp[swap, b] = kp[swap, b].copy(), kp[swap, a].copy()
            conf[swap, a], conf[swap, b] = conf[swap, b].copy(), conf[swap, a].copy()
        drop = rng.random((nF, 17)) < dropout
        inside = ok & (kp[..., 0] >= 0) & (kp[..., 0] <= cfg.width - 1) & (kp[..., 1] >= 0) & (
            kp[..., 1] <= cfg.height - 1)  # fmt: skip
        gone = drop | ~inside
        kp[gone] = np.nan
        conf[gone] = 0.0
        arr = np.concatenate([kp, conf[..., None]], -1).astype(np.float32)
        stamps = np.round(k / cfg.fps * 1e9).astype(np.int64)
        write_keypoints2d(out / "keypoints2d" / f"{name}.npz",
                          Keypoints2D(name, (cfg.width, cfg.height), k.astype(np.int64), stamps, arr))  # fmt: skip
        (out / "exo" / name / "images").mkdir(parents=True, exist_ok=True)
    # ground truth in the EgoHumans layout: calibration and the joints every world frame at 20 fps
    writer = EgoHumansWriter(out)
    writer.write_calibration(cams, poses)
    t_start = max(-o for o in offsets.values())  # world time span that every camera covers
    t_end = min(nF / cfg.fps - o for o in offsets.values())
    gt_t = t_start + np.arange(int(np.floor((t_end - t_start) * GT_FPS))) / GT_FPS
    Xg = subject_joints(gt_t, cfg.subject_height, cfg.walk_radius, phase)
    for i, X in enumerate(Xg):
        writer.write_poses3d(i + 1, {"aria01": X})
    truth = {
        "generator": "sparsepipe sim egohumans", "seed": seed, "config": asdict(cfg),
        "time_offsets_s": offsets, "fps": {n: cfg.fps for n in names},
        "gt_frame_times_s": [float(t) for t in gt_t], "gt_fps": GT_FPS, "subject_height_m": cfg.subject_height,
        "clock": "t_camera = t_world + offset; gt frame NNNNN (1-based) is at world time gt_frame_times_s[N-1]",
        "T_world_cam": {n: poses[n].matrix().tolist() for n in names},
    }  # fmt: skip
    if cfg.audio:
        _write_audio(out, cfg, names, poses, offsets, phase, nF / cfg.fps, rng)
    if cfg.images:
        _render_scene(out, cfg, cams, poses, rng)
    atomic_write_json(out / "gt" / "mocap_gt.json", truth)
    log.info("sim egohumans: %d cameras x %d frames, %d ground-truth frames -> %s", cfg.cameras, nF, len(gt_t), out)
    return {"cameras": cams, "T_world_cam": poses, "offsets": offsets, "gt_t": gt_t, "joints": Xg, "phase": phase}
