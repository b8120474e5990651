"""Query stage: retrieval prior, then render -> match -> PnP iterations (FaVoR), and the two baselines.

Methods, all in one code path with the same prior and the same PnP (poselib LO-RANSAC + refinement):

- ``favor``: descriptors of the landmarks visible from the current pose are *rendered* from their voxel grids along
  the ray from the camera centre through each landmark, matched (mutual NN, cosine threshold) to the query's
  keypoints, and PnP gives the next pose; ``iterations`` times (the authors use 3).
- ``baseline`` (B1): the same loop with each landmark's stored mean descriptor instead of rendering: what
  rendering adds over a plain landmark map.
- ``depth`` (B0, hloc-style): the query is matched to the retrieved training frames' keypoints, lifted to 3D by
  their depth images and poses; one PnP.

The prior (shared): the training frames ranked by global descriptor (VLAD over the local descriptors, or NetVLAD),
then PnP from the query's matches to the landmarks observed in the top-k frames (their observed descriptors). The
ranking can instead come from outside (``localize(retrieved=...)``, e.g. the DenseVLAD lists FaVoR uses). The
authors only copy the top-1 frame's pose; that remains the fallback when the prior PnP has too few inliers.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from perception.errors import InputError
from perception.features.dense import DenseImage, make_dense_extractor
from perception.features.matching import match_mutual_nn
from perception.features.vlad import VladVocabulary
from perception.geometry import SE3
from slam.pnp import pnp_ransac
from slam.reloc.build import depth_at, global_descriptor
from slam.reloc.favor_map import FavorMap
from slam.reloc.voxels import render

log = logging.getLogger(__name__)

__all__ = ["METHODS", "QueryConfig", "QueryResult", "Relocalizer"]

METHODS = ("favor", "baseline", "depth")


@dataclass
class QueryConfig:
    method: str = "favor"
    """favor (rendered descriptors), baseline (B1: stored mean descriptors) or depth (B0: depth-lifted frames)."""
    iterations: int = 3
    """Render -> match -> PnP iterations (FaVoR's 3)."""
    match_min_cosine: float = 0.7
    """Mutual-NN matches below this cosine are dropped (FaVoR's match_threshold)."""
    pnp_threshold_px: float = 4.0
    min_inliers: int = 12
    """A PnP with fewer inliers is a failure (the previous pose is kept)."""
    track_min_inliers: int = 50
    """Tracking (``localize(prior=...)``): the pose is accepted only if every iteration's PnP holds and the last has
    at least this many inliers (and ``min_inliers``), else the image is relocalised from retrieval. Stricter than
    ``min_inliers``: from a wrong prior a dozen chance inliers are common."""
    retrieval_top_k: int = 5
    """Training frames the prior is computed from: the best of the global-descriptor ranking or of the list given
    (``--retrieval-pairs``)."""
    visibility_margin_px: float = 5.0
    view_angle_margin_deg: float = 30.0
    """A landmark is visible when its viewing direction is within its training cone plus this margin."""
    max_keypoints: int = 2048
    pnp_iterations: int = 10_000
    seed: int = 0

    def validate(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"reloc: unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.iterations < 1 or self.retrieval_top_k < 1 or self.min_inliers < 4:
            raise InputError("reloc: iterations >= 1, retrieval_top_k >= 1 and min_inliers >= 4 are required")


@dataclass
class QueryResult:
    T_world_cam: SE3 | None
    """Estimated camera-to-world pose (None only if even retrieval failed)."""
    prior: SE3 | None
    prior_from_pnp: bool
    inliers: list[int] = field(default_factory=list)
    """PnP inliers per iteration (the prior's first)."""
    matches: list[int] = field(default_factory=list)
    retrieved: list[int] = field(default_factory=list)
    seconds: float = 0.0
    success: bool = False
    """The final pose comes from a PnP with at least ``min_inliers`` inliers."""
    tracked: bool = False
    """The pose was refined from the given prior (``localize(prior=...)``: a previous pose), without retrieval."""
    lost: bool = False
    """A prior was given but tracking from it failed, so the image was relocalised from retrieval."""
    track_inliers: list[int] = field(default_factory=list)
    """When ``lost``: PnP inliers per iteration of the failed tracking attempt."""


class Relocalizer:
    """Localise query images against a :class:`FavorMap`.

    ``train_frame(i) -> (image, depth_m)`` loads training frame ``i`` (only the ``depth`` baseline needs it)."""

    def __init__(self, fmap: FavorMap, cfg: QueryConfig | None = None,
                 train_frame: Callable[[int], tuple[np.ndarray, np.ndarray | None]] | None = None,
                 netvlad_weights: str | None = None, weights: str | None = None) -> None:  # fmt: skip
        self.map = fmap
        self.cfg = cfg or QueryConfig()
        self.cfg.validate()
        self.extractor = make_dense_extractor(fmap.descriptor, self.cfg.max_keypoints, weights)
        self.vocabulary = None if fmap.vocabulary is None else VladVocabulary(fmap.vocabulary)
        self.netvlad = None
        if fmap.vocabulary is None:
            if netvlad_weights is None:
                raise InputError("reloc: this map retrieves with NetVLAD; pass the same --netvlad-weights to query")
            from perception.features.netvlad import NetVLADDescriptor

            self.netvlad = NetVLADDescriptor(netvlad_weights)
        if self.cfg.method == "depth" and train_frame is None:
            raise InputError("reloc: the depth baseline needs the training images and depth (--root/--scene)")
        self.train_frame = train_frame
        self._train_cache: OrderedDict[int, tuple[DenseImage, np.ndarray]] = OrderedDict()
        self.frame_T = fmap.frame_T_world_cam()
        self.X = fmap.landmarks()
        self.obs_desc = fmap.obs_desc.astype(np.float32)

    # ------------------------------------------------------------------------------------------------ helpers
    def pnp(self, uv: np.ndarray, X: np.ndarray) -> tuple[SE3, int] | None:
        """``(T_world_cam, inliers)`` from 2D-3D correspondences with the configured RANSAC, or None."""
        out = pnp_ransac(self.map.camera, uv, X, self.cfg.pnp_threshold_px, self.cfg.seed, self.cfg.pnp_iterations)
        if out is None:
            return None
        T, inl = out
        return T, int(inl.sum())

    def retrieve(self, image: np.ndarray, dense: DenseImage) -> np.ndarray:
        """Training frames ranked by global-descriptor similarity (best first), ``retrieval_top_k`` of them."""
        sim = self.map.frame_global @ global_descriptor(image, dense, self.vocabulary, self.netvlad)
        return np.argsort(-sim, kind="stable")[: self.cfg.retrieval_top_k]

    def prior(self, dense: DenseImage, retrieved: np.ndarray) -> tuple[SE3, bool, int, int]:
        """``(T_world_cam, from_pnp, inliers, matches)``: PnP on the landmarks seen by the retrieved frames."""
        sel = np.flatnonzero(np.isin(self.map.obs_frame, retrieved))
        fallback = self.frame_T[int(retrieved[0])]
        if len(sel) < 4:
            return fallback, False, 0, 0
        m = match_mutual_nn(dense.features.descriptors, self.obs_desc[sel], ratio=1.0,
                            min_score=self.cfg.match_min_cosine)  # fmt: skip
        X = self.X[self.map.obs_landmark[sel[m.idx1]]]
        res = self.pnp(dense.features.keypoints[m.idx0], X) if len(m) >= 4 else None
        if res is None or res[1] < self.cfg.min_inliers:
            return fallback, False, 0 if res is None else res[1], len(m)
        return res[0], True, res[1], len(m)

    def visible(self, T_world_cam: SE3) -> np.ndarray:
        """Landmarks in front of the camera, inside the image, and seen from a direction close to training."""
        cam, cfg = self.map.camera, self.cfg
        pc = T_world_cam.inverse().act(self.X)
        z = pc[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = cam.fx * pc[:, 0] / z + cam.cx
            v = cam.fy * pc[:, 1] / z + cam.cy
        m = cfg.visibility_margin_px
        ok = (z > 0.05) & (u >= m) & (v >= m) & (u <= cam.width - 1 - m) & (v <= cam.height - 1 - m)
        to_cam = T_world_cam.t - self.X
        dist = np.linalg.norm(to_cam, axis=1)
        cosang = np.sum(to_cam * self.map.view_dir, axis=1) / np.maximum(dist, 1e-12)
        ang = np.degrees(np.arccos(np.clip(cosang, -1.0, 1.0)))
        ok &= ang <= self.map.view_cone_deg + cfg.view_angle_margin_deg
        return np.flatnonzero(ok)

    def landmark_descriptors(self, T_world_cam: SE3, ids: np.ndarray, method: str) -> np.ndarray:
        """Descriptors of landmarks ``ids`` as seen from ``T_world_cam``: rendered (favor) or stored (baseline)."""
        if method == "baseline":
            return self.map.mean_desc[ids]
        o = np.broadcast_to(T_world_cam.t, (len(ids), 3))
        d = self.X[ids] - o
        d = d / np.linalg.norm(d, axis=1, keepdims=True)
        idx = torch.from_numpy(ids.astype(np.int64))
        return render(self.map.grids, idx, torch.from_numpy(np.ascontiguousarray(o, np.float32)),
                      torch.from_numpy(d.astype(np.float32))).numpy()  # fmt: skip

    def _train_dense(self, i: int) -> tuple[DenseImage, np.ndarray]:
        if i in self._train_cache:
            self._train_cache.move_to_end(i)
            return self._train_cache[i]
        image, depth = self.train_frame(i)
        if depth is None:
            raise InputError(f"reloc: training frame {self.map.frame_names[i]} has no depth; the depth baseline "
                             "needs depth images")  # fmt: skip
        entry = (self.extractor(image), depth)
        self._train_cache[i] = entry
        while len(self._train_cache) > 64:
            self._train_cache.popitem(last=False)
        return entry

    def _depth_baseline(self, dense: DenseImage, retrieved: np.ndarray) -> tuple[SE3, int, int] | None:
        cam = self.map.camera
        uv_all, X_all = [], []
        for i in retrieved:
            td, depth = self._train_dense(int(i))
            m = match_mutual_nn(dense.features.descriptors, td.features.descriptors, ratio=1.0,
                                min_score=self.cfg.match_min_cosine)  # fmt: skip
            kp = td.features.keypoints[m.idx1].astype(np.float64)
            z = depth_at(depth, kp)
            ok = np.isfinite(z) & (z > 0)
            p_cam = cam.unproject(kp[ok]) * z[ok, None]
            X_all.append(self.frame_T[int(i)].act(p_cam) if ok.sum() else np.zeros((0, 3)))
            uv_all.append(dense.features.keypoints[m.idx0[ok]])
        uv, X = np.concatenate(uv_all), np.concatenate(X_all)
        res = self.pnp(uv, X) if len(uv) >= 4 else None
        return None if res is None else (res[0], res[1], len(uv))

    # ------------------------------------------------------------------------------------------------ query
    def _iterate(self, dense: DenseImage, T: SE3, method: str, res: QueryResult) -> tuple[SE3, int]:
        """Render (or look up) -> match -> PnP from ``T``, ``iterations`` times; appends to ``res``'s counts.
        Returns the last pose and how many PnPs succeeded (the iterations stop at the first failure)."""
        ok = 0
        for _ in range(self.cfg.iterations):
            ids = self.visible(T)
            if len(ids) < 4:
                res.inliers.append(0)
                res.matches.append(0)
                break
            desc = self.landmark_descriptors(T, ids, method)
            m = match_mutual_nn(dense.features.descriptors, desc, ratio=1.0, min_score=self.cfg.match_min_cosine)
            out = self.pnp(dense.features.keypoints[m.idx0], self.X[ids[m.idx1]]) if len(m) >= 4 else None
            res.matches.append(len(m))
            res.inliers.append(0 if out is None else out[1])
            if out is None or out[1] < self.cfg.min_inliers:
                break
            T, ok = out[0], ok + 1
        return T, ok

    def localize(self, image: np.ndarray, name: str = "query", method: str | None = None,
                 retrieved: Sequence[int] | None = None, prior: SE3 | None = None) -> QueryResult:  # fmt: skip
        """Localise one image. ``retrieved``: training frames (map indices, best first) from an external retrieval
        such as a DenseVLAD pairs file; its first ``retrieval_top_k`` replace the global-descriptor ranking.
        ``prior``: a pose to start the iterations from instead of retrieval (a video's previous pose: tracking);
        when they fail the image is relocalised from retrieval (``lost``)."""
        method = method or self.cfg.method
        if method not in METHODS:
            raise InputError(f"reloc: unknown method {method!r}; choose one of {', '.join(METHODS)}")
        cam = self.map.camera
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[:2] != (cam.height, cam.width):
            raise InputError(f"reloc: query image {name} is {img.shape[1] if img.ndim > 1 else '?'}x{img.shape[0]}, "
                             f"the map's camera is {cam.width}x{cam.height}; query images must come from the "
                             "mapped camera (resize them or rebuild the map)")  # fmt: skip
        if prior is not None and method == "depth":
            raise InputError("reloc: the depth baseline localises from retrieved frames only; pass no prior")
        if retrieved is not None:
            retrieved = np.asarray(retrieved, dtype=np.int64)[: self.cfg.retrieval_top_k]
            n = len(self.map.frame_names)
            if len(retrieved) == 0 or retrieved.min() < 0 or retrieved.max() >= n:
                raise InputError(f"reloc: the frames retrieved for {name} must be 1 or more of the map's {n} "
                                 f"training frames (indices 0-{n - 1}), got {retrieved.tolist()}")  # fmt: skip
        t0 = time.perf_counter()
        dense = self.extractor(img)
        track_inliers: list[int] = []
        if prior is not None:
            res = QueryResult(prior, prior, False, [0], [0], tracked=True)
            T, ok = self._iterate(dense, prior, method, res)
            # every iteration must hold and end well above min_inliers: from a wrong prior a dozen chance inliers
            # are common (simulated room: wrong tracks <= 26 inliers, right ones >= 120)
            need = max(self.cfg.track_min_inliers, self.cfg.min_inliers)
            if ok == self.cfg.iterations and res.inliers[-1] >= need:
                res.T_world_cam, res.success = T, True
                res.seconds = time.perf_counter() - t0
                return res
            track_inliers = res.inliers[1:]
            log.debug("%s: lost from the given prior (inliers %s); relocalising from retrieval", name, track_inliers)
        lost = prior is not None
        if retrieved is None:
            retrieved = self.retrieve(img, dense)
        T0, from_pnp, n_inl, n_m = self.prior(dense, retrieved)
        res = QueryResult(T0, T0, from_pnp, [n_inl], [n_m], [int(i) for i in retrieved], success=from_pnp,
                          lost=lost, track_inliers=track_inliers)  # fmt: skip
        if method == "depth":
            out = self._depth_baseline(dense, retrieved)
            ok = out is not None and out[1] >= self.cfg.min_inliers
            if ok:
                res.T_world_cam = out[0]
            res.inliers.append(0 if out is None else out[1])
            res.matches.append(0 if out is None else out[2])
            res.success = ok
        else:
            T, ok = self._iterate(dense, T0, method, res)
            res.T_world_cam, res.success = T, res.success or ok > 0
        res.seconds = time.perf_counter() - t0
        return res
