"""Calibration from the subject's joints alone: intrinsics prior, confidence-driven sampling, graph-based
extrinsics (pairwise essential matrices, triplet scales, spanning-tree chaining, robust Sampson refinement) and
bundle adjustment in stages (poses, then focal, then Brown-Conrady k1 k2 p1 p2 k3).

Conventions: world = the reference camera's frame until the pipeline re-orients it; ``T_world_cam``
camera-to-world; pixels in OpenCV's convention; the principal point stays at its initial value (as in Kineo).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import lil_matrix
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree
from scipy.spatial.transform import Rotation

from perception.camera import OpenCVCamera
from perception.errors import InputError
from perception.geometry import SE3, essential_from_pose, sampson_distance, triangulate

log = logging.getLogger(__name__)

__all__ = ["BAResult", "Intrinsics", "bundle_adjust", "init_extrinsics", "project", "sample_observations"]


DIST_PRIOR_WEIGHTS = np.array([0.1, 10.0, 10.0, 10.0, 10.0])
"""Relative weights of the L2 prior on k1 k2 p1 p2 k3."""


@dataclass
class Intrinsics:
    """Per-camera pinhole + Brown-Conrady parameters ``f, cx, cy, k1, k2, p1, p2, k3`` (fx = fy = f)."""

    width: int
    height: int
    f: float
    cx: float
    cy: float
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))

    def camera(self) -> OpenCVCamera:
        k1, k2, p1, p2, k3 = (float(v) for v in self.dist)
        return OpenCVCamera(self.width, self.height, self.f, self.f, self.cx, self.cy, k1, k2, p1, p2, k3)

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float) -> Intrinsics:
        return cls(width, height, width / 2 / np.tan(np.deg2rad(hfov_deg) / 2), (width - 1) / 2, (height - 1) / 2)


def distort(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Brown-Conrady on normalised points ``x`` (..., 2) with ``d`` (..., 5) = k1 k2 p1 p2 k3."""
    k1, k2, p1, p2, k3 = (d[..., i] for i in range(5))
    u, v = x[..., 0], x[..., 1]
    r2 = u * u + v * v
    rad = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
    xd = u * rad + 2 * p1 * u * v + p2 * (r2 + 2 * u * u)
    yd = v * rad + p1 * (r2 + 2 * v * v) + 2 * p2 * u * v
    return np.stack([xd, yd], -1)


def project(X: np.ndarray, rvec: np.ndarray, t: np.ndarray, f: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Pixels of world points ``X`` (N, 3) in cameras with ``T_cam_world`` = (rvec, t) (N, 3 each), focal f (N,),
    principal point c (N, 2) and distortion d (N, 5)."""
    pc = Rotation.from_rotvec(np.array(rvec, np.float64)).apply(X) + t
    x = pc[:, :2] / np.maximum(pc[:, 2:3], 1e-3)  # points behind a camera get large, finite residuals
    return distort(x, d) * f[:, None] + c


def project_camera(X: np.ndarray, T_world_cam: SE3, K: Intrinsics) -> np.ndarray:
    """Pixels (N, 2) of world points ``X`` (N, 3) in one camera."""
    n = len(X)
    T_cw = T_world_cam.inverse()
    rv = Rotation.from_matrix(T_cw.R).as_rotvec()
    return project(X, np.repeat(rv[None], n, 0), np.repeat(T_cw.t[None], n, 0), np.full(n, K.f),
                   np.repeat([[K.cx, K.cy]], n, 0), np.repeat(np.asarray(K.dist)[None], n, 0))  # fmt: skip


def undistort(uv: np.ndarray, K: Intrinsics, iters: int = 20) -> np.ndarray:
    """Normalised undistorted coordinates of pixels ``uv`` (N, 2)."""
    xd = (uv - [K.cx, K.cy]) / K.f
    if not np.any(K.dist):
        return xd
    return K.camera().undistort(xd)


# --------------------------------------------------------------------------------------------- sampling
def sample_observations(conf: np.ndarray, n_samples: int, min_conf: float = 0.5, min_views: int = 2,
                        bins: int = 50, rng: np.random.Generator | None = None) -> np.ndarray:  # fmt: skip
    """``(frame, joint)`` indices (S, 2) seen by ``min_views`` cameras with ``conf >= min_conf``, spread evenly over
    ``bins`` time bins (the most confident within each bin first, ties broken at random), at most ``n_samples``:
    the calibration cost stays fixed however long the sequence is. ``conf`` is (V, T, 17)."""
    rng = rng or np.random.default_rng(0)
    good = conf >= min_conf
    nviews = good.sum(0)  # (T, 17)
    f_idx, j_idx = np.nonzero(nviews >= min_views)
    if len(f_idx) == 0:
        return np.zeros((0, 2), np.int64)
    T = conf.shape[1]
    score = np.where(good, conf, 0).sum(0)[f_idx, j_idx] + rng.uniform(0, 1e-3, len(f_idx))
    b = np.minimum((f_idx * bins) // max(T, 1), bins - 1)
    per_bin = max(1, n_samples // bins)
    chosen = []
    for k in range(bins):
        m = np.flatnonzero(b == k)
        if len(m):
            chosen.append(m[np.argsort(-score[m])[:per_bin]])
    sel = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
    if len(sel) < n_samples:  # top up from what is left, most confident first
        rest = np.setdiff1d(np.arange(len(f_idx)), sel)
        sel = np.concatenate([sel, rest[np.argsort(-score[rest])[: n_samples - len(sel)]]])
    sel = np.sort(sel[:n_samples])
    return np.stack([f_idx[sel], j_idx[sel]], 1)


# --------------------------------------------------------------------------------------------- extrinsics
def init_extrinsics(xy: np.ndarray, conf: np.ndarray, K: list[Intrinsics], pair_samples: int = 3000,
                    min_conf: float = 0.5, threshold_px: float = 3.0, seed: int = 0,
                    names: list[str] | None = None, refine: bool = True,
                    refine_samples: int = 600) -> list[SE3]:  # fmt: skip
    """``T_world_cam`` of every camera (world = camera 0, unit-free scale) from the joints ``xy`` (V, T, 17, 2).

    Pairwise essential matrices (poselib, RANSAC) on confident shared joints, relative scales of the edges from the
    triplets' loop closure (linear, smallest singular vector), poses chained along the minimum spanning tree of
    the edge costs, then a robust (Huber) refinement of the Sampson distances of all edges."""
    import poselib

    V = xy.shape[0]
    names = names or [f"camera {i}" for i in range(V)]
    rng = np.random.default_rng(seed)
    norm = normalise_views(xy, np.all(np.isfinite(xy), axis=-1), K, fill=np.nan)
    edges: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, float, np.ndarray]] = {}
    unit = {"model": "PINHOLE", "width": 2, "height": 2, "params": [1.0, 1.0, 0.0, 0.0]}
    for i in range(V):
        for j in range(i + 1, V):
            m = (conf[i] >= min_conf) & (conf[j] >= min_conf)
            fi, ji = np.nonzero(m)
            if len(fi) < 30:
                continue
            w = np.sqrt(conf[i][fi, ji] * conf[j][fi, ji])
            if len(fi) > pair_samples:
                keep = rng.choice(len(fi), pair_samples, replace=False, p=w / w.sum())
                fi, ji = fi[keep], ji[keep]
            x0, x1 = norm[i][fi, ji], norm[j][fi, ji]
            f = 0.5 * (K[i].f + K[j].f)
            opts = {"max_epipolar_error": threshold_px / f, "seed": seed}
            # 1 px Cauchy refinement in the bearings' units (poselib's binding would use half the threshold)
            pose, info = poselib.estimate_relative_pose(x0, x1, unit, unit, opts, {"loss_scale": 1.0 / f})
            inl = np.asarray(info["inliers"], bool)
            if inl.sum() < 15:
                continue
            R, t = np.asarray(pose.R), np.asarray(pose.t)
            t = t / np.linalg.norm(t)
            cost = float(np.mean(np.abs(sampson_distance(essential_from_pose(R, t), x0[inl], x1[inl])))) * f / max(
                inl.mean(), 1e-3)  # fmt: skip
            edges[(i, j)] = (R, t, cost, np.stack([fi[inl], ji[inl]], 1))
    if not edges:
        raise InputError("mocap: no camera pair shares enough confident joints to estimate a relative pose")
    # relative scales from triplets: lam_ij R_kj t_ji + lam_jk t_kj - lam_ik t_ki = 0 (x_b = R_ba x_a + t_ba)
    eidx = {e: k for k, e in enumerate(edges)}
    rows = []
    for i in range(V):
        for j in range(i + 1, V):
            for k in range(j + 1, V):
                if (i, j) in edges and (j, k) in edges and (i, k) in edges:
                    Rji, tji = edges[(i, j)][:2]
                    Rkj, tkj = edges[(j, k)][:2]
                    _, tki = edges[(i, k)][:2]
                    w = 1.0 / (1.0 + max(edges[(i, j)][2], edges[(j, k)][2], edges[(i, k)][2]))
                    A = np.zeros((3, len(edges)))
                    A[:, eidx[(i, j)]] = Rkj @ tji
                    A[:, eidx[(j, k)]] = tkj
                    A[:, eidx[(i, k)]] = -tki
                    rows.append(w * A)
    lam = np.ones(len(edges))
    if rows:
        A = np.concatenate(rows)
        covered = np.flatnonzero(np.abs(A).sum(0) > 0)
        _, _, Vt = np.linalg.svd(A[:, covered])
        sol = Vt[-1]
        sol = sol * np.sign(np.sum(sol))
        if np.all(sol > 0):
            lam[covered] = sol / np.mean(sol)
        else:
            log.warning("mocap: triplet scales are not all positive; using unit scales before refinement")
    # chain along the minimum spanning tree from camera 0
    C = np.zeros((V, V))
    for (i, j), (_, _, cost, _) in edges.items():
        C[i, j] = C[j, i] = cost + 1e-9
    tree = minimum_spanning_tree(C).toarray()
    tree = np.maximum(tree, tree.T)
    order, pred = breadth_first_order(tree, 0, directed=False)
    if len(order) < V:
        lost = sorted(set(range(V)) - set(order.tolist()))
        raise InputError("mocap: camera(s) " + ", ".join(names[i] for i in lost) + " share too few confident "
                         "joints with the others to be calibrated; drop them or check their detections")  # fmt: skip
    T = [None] * V
    T[0] = SE3.identity()
    for b in order[1:]:
        a = int(pred[b])
        if (a, b) in edges:
            R, t = edges[(a, b)][:2]
            T_b_a = SE3(R, lam[eidx[(a, b)]] * t)
        else:
            R, t = edges[(b, a)][:2]
            T_b_a = SE3(R, lam[eidx[(b, a)]] * t).inverse()
        T[b] = T[a] @ T_b_a.inverse()
    if not refine:
        return T
    sub = {e: (*v[:3], v[3][rng.permutation(len(v[3]))[:refine_samples]]) for e, v in edges.items()}
    return _refine_sampson(T, sub, norm, K, conf)


def _refine_sampson(T: list[SE3], edges, norm, K, conf) -> list[SE3]:
    V = len(T)
    T_cw = [t.inverse() for t in T]
    x0 = np.concatenate([np.r_[Rotation.from_matrix(T_cw[v].R).as_rotvec(), T_cw[v].t] for v in range(1, V)])
    scale0 = np.sum([np.linalg.norm(T[v].t) ** 2 for v in range(1, V)])
    data = []
    for (i, j), (_, _, _, obs) in edges.items():
        fi, ji = obs[:, 0], obs[:, 1]
        w = np.sqrt(np.sqrt(conf[i][fi, ji] * conf[j][fi, ji]))
        data.append((i, j, norm[i][fi, ji], norm[j][fi, ji], w, 0.5 * (K[i].f + K[j].f)))

    def poses(p):
        out = [(np.eye(3), np.zeros(3))]
        for v in range(1, V):
            q = p[6 * (v - 1) : 6 * v]
            out.append((Rotation.from_rotvec(q[:3]).as_matrix(), q[3:]))
        return out

    def residuals(p):
        P = poses(p)
        res = []
        for i, j, a, b, w, f in data:
            Ri, ti = P[i]
            Rj, tj = P[j]
            Rji = Rj @ Ri.T
            tji = tj - Rji @ ti
            res.append(sampson_distance(essential_from_pose(Rji, tji), a, b) * f * w)
        centres = [-R.T @ t for R, t in P[1:]]
        res.append([10.0 * (np.sum([c @ c for c in centres]) / scale0 - 1.0)])  # fixes the free scale
        return np.concatenate(res)

    sol = least_squares(residuals, x0, loss="huber", f_scale=1.0, max_nfev=60)
    P = poses(sol.x)
    return [SE3(R, t).inverse() for R, t in P]


# --------------------------------------------------------------------------------------------- bundle adjustment
@dataclass
class BAResult:
    T_world_cam: list[SE3]
    intrinsics: list[Intrinsics]
    points: np.ndarray
    rms_px: float
    stage_rms_px: list[float]
    median_px: float = float("nan")
    dt_s: np.ndarray | None = None
    """Clock offset corrections per camera (s), when the BA refined them."""


def bundle_adjust(T_world_cam: list[SE3], K: list[Intrinsics], xy: np.ndarray, conf: np.ndarray,
                  samples: np.ndarray, shared: bool = True, stages: tuple[str, ...] = ("poses", "focal", "distortion"),
                  huber_px: float = 1.0, dist_reg: float = 1.0, min_conf: float = 0.3,
                  max_nfev: int = 400, velocity: np.ndarray | None = None) -> BAResult:  # fmt: skip
    """Confidence-weighted robust reprojection BA over the sampled ``(frame, joint)`` points; stage ``poses``
    refines poses (camera 0 fixed) and points, ``focal`` adds the focal length(s), ``distortion`` adds
    k1 k2 p1 p2 k3 (with a small L2 prior, as Kineo). ``shared`` uses one focal and one distortion for all cameras.
    With ``velocity`` (V, T, 17, 2) pixel/s of the resampled tracks, every stage also refines a clock offset per
    camera (camera 0 fixed): the observation becomes ``x(t + d_v) ~ x(t) + d_v * velocity`` (``BAResult.dt_s``).
    """
    V = len(T_world_cam)
    fr, jt = samples[:, 0], samples[:, 1]
    obs_xy = xy[:, fr, jt]  # (V, S, 2)
    obs_c = conf[:, fr, jt]
    vis = (obs_c >= min_conf) & np.all(np.isfinite(obs_xy), axis=-1)
    keep = vis.sum(0) >= 2
    obs_xy, obs_c, vis = obs_xy[:, keep], obs_c[:, keep], vis[:, keep]
    S = vis.shape[1]
    if S < 10:
        raise InputError(f"mocap: only {S} joint samples are seen by two cameras; not enough to calibrate")
    cam_i, pt_i = np.nonzero(vis)
    uv = obs_xy[cam_i, pt_i]
    vel = np.zeros_like(uv)
    if velocity is not None:
        vel = velocity[:, fr, jt][:, keep][cam_i, pt_i]
        vel = np.where(np.isfinite(vel), vel, 0.0)
    nD = V - 1 if velocity is not None else 0
    dts = np.zeros(V)
    w = np.sqrt(obs_c[cam_i, pt_i])
    T_cw = [t.inverse() for t in T_world_cam]
    X = _triangulate(T_cw, K, obs_xy, np.where(vis, obs_c, 0.0))
    good = np.all(np.isfinite(X), axis=1)
    X[~good] = 0.0
    nK = 1 if shared else V
    f = np.array([K[0].f] if shared else [k.f for k in K])
    d = np.array([K[0].dist] if shared else [k.dist for k in K]).reshape(nK, 5)
    c = np.array([[k.cx, k.cy] for k in K])
    pose = np.concatenate([np.r_[Rotation.from_matrix(T_cw[v].R).as_rotvec(), T_cw[v].t] for v in range(V)])
    rms_hist = []
    for stage in stages:
        free_f = stage in ("focal", "distortion")
        free_d = stage == "distortion"
        nP = 6 * (V - 1)

        def unpack(p, free_f=free_f, free_d=free_d, pose=pose, nP=nP, f=f, d=d):
            o = 0
            pz = np.r_[pose[:6], p[o : o + nP]]
            o += nP
            ff = p[o : o + nK] if free_f else f
            o += nK if free_f else 0
            dd = p[o : o + 5 * nK].reshape(nK, 5) if free_d else d
            o += 5 * nK if free_d else 0
            dt = np.r_[0.0, p[o : o + nD]] if nD else np.zeros(V)
            o += nD
            XX = p[o:].reshape(-1, 3)
            return pz.reshape(V, 6), ff, dd, XX, dt

        def residuals(p, unpack=unpack, free_d=free_d):
            pz, ff, dd, XX, dt = unpack(p)
            ki = np.zeros(len(cam_i), int) if shared else cam_i
            pred = project(XX[pt_i], pz[cam_i, :3], pz[cam_i, 3:], ff[ki], c[cam_i], dd[ki])
            r = ((pred - uv - dt[cam_i, None] * vel) * w[:, None]).ravel()
            if free_d:
                # Kineo's prior: + dist_reg * mean(d^2) on a mean per-observation loss, i.e. this in a sum of squares
                # (k2, k3 and the tangential terms 10x more: k1 dominates real lenses and the subject rarely covers
                # the radii that separate k1 from k2 and k3)
                r = np.r_[r, np.sqrt(2.0 * dist_reg * len(uv) / 5.0) * (dd * DIST_PRIOR_WEIGHTS).ravel()]
            return r

        p0 = np.r_[pose[6:], f if free_f else [], d.ravel() if free_d else [], dts[1:] if nD else [], X.ravel()]
        n_res = 2 * len(uv) + (5 * nK if free_d else 0)
        J = lil_matrix((n_res, len(p0)), dtype=np.int8)
        rows = np.arange(len(uv))
        for k in range(6):
            m = cam_i > 0
            J[2 * rows[m], 6 * (cam_i[m] - 1) + k] = 1
            J[2 * rows[m] + 1, 6 * (cam_i[m] - 1) + k] = 1
        o = nP
        if free_f:
            ki = np.zeros(len(cam_i), int) if shared else cam_i
            J[2 * rows, o + ki] = 1
            J[2 * rows + 1, o + ki] = 1
            o += nK
        if free_d:
            ki = np.zeros(len(cam_i), int) if shared else cam_i
            for k in range(5):
                J[2 * rows, o + 5 * ki + k] = 1
                J[2 * rows + 1, o + 5 * ki + k] = 1
            for k in range(5 * nK):
                J[2 * len(uv) + k, o + k] = 1
            o += 5 * nK
        if nD:
            m = cam_i > 0
            J[2 * rows[m], o + cam_i[m] - 1] = 1
            J[2 * rows[m] + 1, o + cam_i[m] - 1] = 1
            o += nD
        for k in range(3):
            J[2 * rows, o + 3 * pt_i + k] = 1
            J[2 * rows + 1, o + 3 * pt_i + k] = 1
        if nD:
            # clock offsets: scipy's robust-loss trust region stalls on these tiny columns (it ends at the start),
            # so Huber is applied as iteratively reweighted least squares with a linear loss
            base_w = w.copy()
            for _ in range(3):
                sol = least_squares(residuals, p0, jac_sparsity=J.tocsr(), x_scale="jac", max_nfev=max_nfev,
                                    method="trf")  # fmt: skip
                r_px = np.linalg.norm(sol.fun[: 2 * len(uv)].reshape(-1, 2) / w[:, None], axis=1)
                w[:] = base_w * np.sqrt(np.minimum(1.0, huber_px / np.maximum(r_px, 1e-9)))
                p0 = sol.x
            w[:] = base_w
            sol.fun = residuals(sol.x)
        else:
            sol = least_squares(residuals, p0, jac_sparsity=J.tocsr(), loss="huber", f_scale=huber_px, x_scale="jac",
                                max_nfev=max_nfev, method="trf")  # fmt: skip
        pz, f, d, X, dts = unpack(sol.x)
        pz, f, d = pz.copy(), np.array(f, float), np.array(d, float)
        pose = pz.ravel()
        r = sol.fun[: 2 * len(uv)].reshape(-1, 2) / w[:, None]
        rms = float(np.sqrt(np.mean(np.sum(r**2, axis=1))))
        median = float(np.median(np.linalg.norm(r, axis=1)))
        rms_hist.append(rms)
        log.debug("BA stage %s: rms %.3f px, f %s, nfev %d, status %d", stage, rms, np.round(f, 2), sol.nfev,
                  sol.status)  # fmt: skip
    Ts = [SE3(Rotation.from_rotvec(pose[6 * v : 6 * v + 3]).as_matrix(), pose[6 * v + 3 : 6 * v + 6]).inverse()
          for v in range(V)]  # fmt: skip
    Ks = [Intrinsics(K[v].width, K[v].height, float(f[0 if shared else v]), K[v].cx, K[v].cy,
                     np.array(d[0 if shared else v], float)) for v in range(V)]  # fmt: skip
    return BAResult(Ts, Ks, X, rms_hist[-1], rms_hist, median, np.array(dts) if nD else None)


def normalise_views(xy: np.ndarray, valid: np.ndarray, K: list[Intrinsics], fill: float = 0.0) -> np.ndarray:
    """Undistorted normalised coordinates of pixels ``xy`` (V, ..., 2) where ``valid`` (V, ...), ``fill`` elsewhere."""
    x = np.full(xy.shape, fill, dtype=np.float64)
    for v in range(len(K)):
        x[v][valid[v]] = undistort(xy[v][valid[v]], K[v])
    return x


def projection_matrices(T_cw: list[SE3]) -> np.ndarray:
    """(V, 3, 4) ``[R | t]`` of world-to-camera poses (normalised-coordinate projections)."""
    return np.stack([np.c_[T.R, T.t] for T in T_cw])


def _triangulate(T_cw: list[SE3], K: list[Intrinsics], xy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Confidence-weighted DLT + LM of points observed as pixels ``xy`` (V, N, 2) with weights ``w`` (V, N)."""
    X, ok = triangulate(projection_matrices(T_cw), normalise_views(xy, w > 0, K), w)
    X[~ok] = np.nan
    return X
