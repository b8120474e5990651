"""``sparsepipe reloc build|query`` and ``sparsepipe eval 7scenes``: FaVoR relocalization on the 7-Scenes layout.

``reloc build`` tracks and triangulates landmarks over a scene's training split (known poses) and fits each
landmark's descriptor voxel grid; the map is one ``.npz`` file (``--out``). ``reloc query`` localises every frame
of a split and writes hloc-style results ``name qw qx qy qz tx ty tz`` (world-to-camera, as hloc and the 7-Scenes
pseudo-ground-truth tools read them; only successful queries are listed) plus ``<out>.json`` with each query's
camera-to-world pose, prior, inliers per iteration, time and success. ``eval 7scenes`` builds (or reuses) the map of
each scene, queries its test split with FaVoR and/or the baselines (B1 ``baseline``: stored mean descriptors, same
loop; B0 ``depth``: depth-lifted matching to the retrieved frames) and writes per-scene metrics as JSON.

Intrinsics: ``--fx/--fy/--cx/--cy`` when given; otherwise the scene's ``sim_meta.json`` camera (scenes written by
``sparsepipe sim room``); otherwise 7-Scenes' customary colour camera (525, 525, 320, 240 at 640x480).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from apps.config import CommonConfig, PipelineConfig, save_resolved_config
from perception.camera import PinholeCamera
from perception.datasets.pairs import read_pairs
from perception.datasets.sevenscenes import DEFAULT_CAMERA, SevenScenes, parse_frame_name
from perception.errors import InputError
from perception.fileio import atomic_write_json
from perception.metrics.pose import median_ratio, pose_errors, reloc_summary
from slam.reloc import FavorMap, MapConfig, QueryConfig, Relocalizer, TrainFrame, build_map
from slam.reloc.diagnostics import diagnose
from slam.reloc.favor_map import split_fingerprint
from slam.reloc.results import write_results

log = logging.getLogger(__name__)


@dataclass
class CameraOptions:
    fx: float | None = None
    """Colour focal length x (px); default: sim_meta.json's camera, else 525."""
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None


@dataclass
class RelocBuildConfig(CommonConfig):
    dataset: Literal["7scenes"] = "7scenes"
    root: Path = Path("data/7scenes")
    """Folder holding the scene folders (ROOT/SCENE/seq-XX/...)."""
    scene: str = "chess"
    out: Path = Path("out/reloc/chess.favor.npz")
    """Map file to write (its folder gets config.yaml)."""
    stride: int = 1
    """Use every STRIDE-th training frame (the real scenes have 1000-7000; 10 is a good CPU setting there)."""
    pgt: Path | None = None
    """Folder of pseudo-ground-truth pose files <scene>_train.txt / <scene>_test.txt (e.g. the SfM pGT of
    visloc_pseudo_gt_limitations/pgt/sfm/7scenes, which FaVoR uses): their poses and focal replace the dataset's."""
    camera: CameraOptions = field(default_factory=CameraOptions)
    rendered_depth: Path | None = None
    """Folder of hloc's depth maps rendered at the colour camera (depth/7scenes_{scene}/train/depth, files
    seqXX_frame-NNNNNN.pose.depth.tiff; {scene} becomes the scene name): used instead of the depth.png files,
    which the real dataset does not register to the colour images (the map's landmark check and B0's lifting)."""
    map: MapConfig = field(default_factory=MapConfig)


@dataclass
class RelocQueryConfig(PipelineConfig):
    map: Path = Path("out/reloc/chess.favor.npz")
    root: Path = Path("data/7scenes")
    scene: str = "chess"
    split: Literal["train", "test"] = "test"
    out: Path = Path("out/reloc/chess_poses.txt")
    """Results file (hloc format); <out>.json gets the details, its folder config.yaml and run.rrd."""
    stride: int = 1
    """Query every STRIDE-th frame of the split."""
    weights: str | None = None
    """Local weights of the map's descriptor network (superpoint)."""
    netvlad_weights: str | None = None
    """The NetVLAD checkpoint the map was built with, if any."""
    pgt: Path | None = None
    """Folder of pseudo-ground-truth pose files <scene>_train.txt / <scene>_test.txt (e.g. the SfM pGT of
    visloc_pseudo_gt_limitations/pgt/sfm/7scenes, which FaVoR uses): their poses and focal replace the dataset's
    (the same folder as the map's)."""
    retrieval_pairs: Path | None = None
    """hloc retrieval pairs file (lines 'query db', 7-Scenes names such as seq-03/frame-000000.color.png, each
    query's training frames best first), e.g. the DenseVLAD top-10 lists hloc, PixLoc and FaVoR use
    (7scenes_densevlad_retrieval_top_10/{scene}_top10.txt; {scene} becomes the scene name). Replaces the
    global-descriptor ranking; default: rank the map's training frames by VLAD / NetVLAD."""
    rendered_depth: Path | None = None
    """As for reloc build; here only the depth baseline (B0) reads depth."""
    track: bool = False
    """Start each frame from the estimate of the previous queried frame of its sequence (a video: tracking; the
    favor_relocalizer node does the same by time stamp), relocalising from retrieval when that fails or ends with
    fewer than --query.track-min-inliers inliers; each sequence's first frame and the frame after a failure come
    from retrieval. Default: every frame from retrieval, independently, as relocalization benchmarks are run."""
    query: QueryConfig = field(default_factory=QueryConfig)


@dataclass
class Eval7ScenesConfig(CommonConfig):
    root: Path = Path("data/7scenes")
    scenes: str | None = None
    """Comma-separated scene names (default: every folder of ROOT with a TrainSplit.txt)."""
    method: Literal["favor", "baseline", "both", "depth", "all"] = "both"
    """favor, baseline (B1: mean descriptors), both (favor + baseline), depth (B0) or all three."""
    out: Path = Path("out/eval/7scenes")
    """Folder for maps (OUT/maps/SCENE.favor.npz, reused when present), results and config.yaml."""
    json: Path | None = None
    """Metrics file (default OUT/metrics.json)."""
    rebuild: bool = False
    """Rebuild maps even when OUT/maps holds one for the scene."""
    stride: int = 1
    """Use every STRIDE-th training frame for the map."""
    query_stride: int = 1
    """Query every QUERY_STRIDE-th test frame."""
    diagnostics: bool = False
    """Also measure, with the test poses as truth, where the accuracy comes from (metrics.json "diagnostics"): how
    well the rendered / mean / direction-dependent descriptors agree with the query's at the true correspondences,
    how far the test views are from the training views (angle, scale), and PnP on the true correspondences alone
    (the oracle). Tells whether rendering can help on this data (costs a second feature extraction per test
    frame)."""
    diagnostics_radius_px: float = 1.5
    """A keypoint this close to a landmark's projection under the test pose is a true correspondence (raise it
    with pseudo ground truth: its pose error adds to the keypoints')."""
    pgt: Path | None = None
    """Folder of pseudo-ground-truth pose files <scene>_train.txt / <scene>_test.txt (e.g. the SfM pGT of
    visloc_pseudo_gt_limitations/pgt/sfm/7scenes, which FaVoR uses): their poses and focal replace the dataset's.
    Brachmann et al. (ICCV 2021) ask for results under both pseudo ground truths."""
    retrieval_pairs: Path | None = None
    """hloc retrieval pairs file (lines 'query db', 7-Scenes names such as seq-03/frame-000000.color.png, each
    query's training frames best first), e.g. the DenseVLAD top-10 lists hloc, PixLoc and FaVoR use
    (7scenes_densevlad_retrieval_top_10/{scene}_top10.txt; {scene} becomes the scene name). Replaces the
    global-descriptor ranking; default: rank the map's training frames by VLAD / NetVLAD."""
    camera: CameraOptions = field(default_factory=CameraOptions)
    rendered_depth: Path | None = None
    """Folder of hloc's depth maps rendered at the colour camera (depth/7scenes_{scene}/train/depth, files
    seqXX_frame-NNNNNN.pose.depth.tiff; {scene} becomes the scene name): used instead of the depth.png files,
    which the real dataset does not register to the colour images (the map's landmark check and B0's lifting)."""
    map: MapConfig = field(default_factory=MapConfig)
    query: QueryConfig = field(default_factory=QueryConfig)


# ------------------------------------------------------------------------------------------------ helpers
def scene_camera(root: Path, scene: str, opts: CameraOptions, pgt: Path | None = None) -> PinholeCamera:
    """The colour camera of a scene: explicit options, else the pseudo ground truth's focal (principal point at the
    image centre, as FaVoR does), else sim_meta.json's camera, else 7-Scenes' default."""
    base = DEFAULT_CAMERA
    meta = Path(root) / scene / "sim_meta.json"
    if meta.is_file():
        try:
            c = json.loads(meta.read_text())["camera"]
            base = PinholeCamera(int(c["width"]), int(c["height"]), float(c["fx"]), float(c["fy"]), float(c["cx"]),
                                 float(c["cy"]))  # fmt: skip
        except (KeyError, ValueError, TypeError, json.JSONDecodeError) as e:
            raise InputError(f"{meta}: unreadable camera ({e}); fix or delete the file, or pass --camera.fx etc."
                             ) from None
    f = SevenScenes(root, scene, pgt=pgt).pgt_focal() if pgt is not None else None
    if f is not None:
        base = PinholeCamera(base.width, base.height, f, f, base.width / 2, base.height / 2)
    return PinholeCamera(base.width, base.height, opts.fx or base.fx, opts.fy or opts.fx or base.fy,
                         base.cx if opts.cx is None else opts.cx, base.cy if opts.cy is None else opts.cy)  # fmt: skip


def pose_source(pgt: Path | None) -> str:
    """How a run's poses are named in maps and metrics: the dataset's pose.txt files, or a pGT folder."""
    return "pose.txt" if pgt is None else f"pgt {Path(pgt).resolve()}"


def for_scene(path: Path | None, scene: str) -> Path | None:
    """A per-scene path option (``--rendered-depth``, ``--retrieval-pairs``) with ``{scene}`` replaced; None stays
    None."""
    return None if path is None else Path(str(path).replace("{scene}", scene))


def depth_source(rendered_depth: Path | None) -> str:
    """How a map names the depth it was built with: the dataset's depth.png files, or a rendered-depth folder."""
    return "depth.png" if rendered_depth is None else f"rendered {Path(rendered_depth).resolve()}"


def _depth_kind(source: str) -> str:
    """What must agree between a map's depth and a run's: the kind and the folder's last three parts
    (``7scenes_chess/train/depth``), so a moved dataset keeps its maps but another rendering does not."""
    kind, _, folder = source.partition(" ")
    return kind if not folder else f"{kind} {'/'.join(Path(folder).parts[-3:])}"


def check_rendered_depth(ds: SevenScenes, frames, what: str) -> None:
    """Before hours of work: every frame of ``frames`` has its rendered depth map (one stat each)."""
    if ds.rendered_depth is None:
        return
    missing = [p for f in frames if not (p := ds.depth_file(f)).is_file()]
    if missing:
        raise FileNotFoundError(f"7-Scenes: missing file {missing[0]} ({len(missing)} of the {len(frames)} "
                                f"{what} have no rendered depth there)")  # fmt: skip


def _frames(ds: SevenScenes, split: str, stride: int):
    if stride < 1:
        raise InputError(f"stride must be >= 1, got {stride}")
    if split == "test" and not (ds.scene_dir / "TestSplit.txt").is_file():
        raise InputError(f"7-Scenes: scene {ds.scene_dir} has no test split (TestSplit.txt listing 'sequenceN' "
                         "lines); add one or query --split train")  # fmt: skip
    frames = ds.frames(split)[::stride]
    if not frames:
        raise InputError(f"7-Scenes: the {split} split of {ds.scene_dir} has no frames")
    return frames


def _progress():
    from apps.progress import progress_bar

    progress = progress_bar()
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    return progress, update


def _depth(ds: SevenScenes, f, shape: tuple[int, ...]) -> np.ndarray:
    """A frame's depth (metres), which must have its colour image's size."""
    depth = ds.load_depth_m(f)
    if depth.shape != tuple(shape[:2]):
        raise InputError(f"7-Scenes: {ds.depth_file(f)} is {depth.shape[1]}x{depth.shape[0]}, its colour image "
                         f"{shape[1]}x{shape[0]}; depth must be registered to colour at the same size")  # fmt: skip
    return depth


def build_scene_map(root: Path, scene: str, camera_opts: CameraOptions, map_cfg: MapConfig, stride: int = 1,
                    progress=None, pgt: Path | None = None,
                    rendered_depth: Path | None = None) -> FavorMap:  # fmt: skip
    """Stage: read a scene's training split (colour, depth: the dataset's or ``rendered_depth``'s, poses: the
    dataset's or ``pgt``'s) and build its FaVoR map."""
    depth_dir = for_scene(rendered_depth, scene)
    ds = SevenScenes(root, scene, pgt=pgt, rendered_depth=depth_dir)
    camera = scene_camera(root, scene, camera_opts, pgt)
    frames = _frames(ds, "train", stride)
    check_rendered_depth(ds, frames, "training frames")

    def get(i: int) -> TrainFrame:
        f = frames[i]
        image = ds.load_color(f)
        return TrainFrame(f.name, image, f.T_world_cam, f.seq, _depth(ds, f, image.shape))

    fmap = build_map(get, len(frames), camera, map_cfg, scene=scene, progress=progress)
    fmap.meta["poses"] = pose_source(pgt)
    fmap.meta["depth"] = depth_source(depth_dir)
    return fmap


def check_map_matches(fmap: FavorMap, map_path: Path, root: Path, scene: str, camera: PinholeCamera,
                      map_cfg: MapConfig | None = None, pgt: Path | None = None,
                      rendered_depth: Path | None = None) -> None:  # fmt: skip
    """Refuse a map built for another scene (name or training frames), other poses (pose.txt vs a pGT), another
    camera or, when ``map_cfg`` is given, other map settings or depth (``rendered_depth``, the scene's folder)."""
    built = fmap.meta.get("scene", "")
    if built != scene:
        raise InputError(f"{map_path} was built for scene {built!r}, not {scene!r}; build one with "
                         f"'sparsepipe reloc build --scene {scene}'")  # fmt: skip
    have, want = fmap.meta.get("poses", "pose.txt"), pose_source(pgt)
    if have.split()[0] != want.split()[0]:  # which pGT folder does not matter if its poses agree (checked below)
        raise InputError(f"{map_path} was built on the poses of {have}, this run uses {want}; pass the same --pgt "
                         "(or none) or rebuild")  # fmt: skip
    ds = SevenScenes(root, scene, pgt=pgt)
    by_name = {f.name: f for f in ds.frames("train")}
    missing = [n for n in fmap.frame_names if n not in by_name]
    if missing:
        raise InputError(f"{map_path}: training frame {missing[0]} is not in {ds.scene_dir}; the map comes from "
                         f"another copy of scene {scene!r} -- rebuild it")  # fmt: skip
    from perception.geometry import SE3

    fp = split_fingerprint(fmap.frame_names, SE3.stack([by_name[n].T_world_cam for n in fmap.frame_names]))
    if fp != fmap.meta.get("fingerprint"):
        raise InputError(f"{map_path}: the training poses of {ds.scene_dir} ({want}) differ from the map's; the map "
                         "comes from another version of the scene or pseudo ground truth -- rebuild it")  # fmt: skip
    c = fmap.camera
    if (c.width, c.height) != (camera.width, camera.height) or not np.allclose(
        [c.fx, c.fy, c.cx, c.cy], [camera.fx, camera.fy, camera.cx, camera.cy], atol=1e-6
    ):
        raise InputError(f"{map_path}: built for camera {c.width}x{c.height} f=({c.fx:g}, {c.fy:g}), not "
                         f"{camera.width}x{camera.height} f=({camera.fx:g}, {camera.fy:g}); pass the same "
                         "--camera.* options or rebuild")  # fmt: skip
    if map_cfg is not None:
        have_d, want_d = fmap.meta.get("depth", "depth.png"), depth_source(rendered_depth)
        if _depth_kind(have_d) != _depth_kind(want_d):
            raise InputError(f"{map_path} was built with the depth of {have_d}, this run uses {want_d}; pass the "
                             "same --rendered-depth (or none) or rebuild")  # fmt: skip
        want = json.loads(json.dumps(asdict(map_cfg)))  # as stored in the map's meta (JSON)
        have = fmap.meta.get("config", {})
        changed = sorted(k for k in want if have.get(k) != want[k])
        if changed:
            raise InputError(f"{map_path} was built with other map settings ("
                             + ", ".join(f"{k}={have.get(k)!r}" for k in changed) + "); pass the same --map.* "
                             "options or rebuild")  # fmt: skip


def retrieval_lists(path: Path, scene: str, fmap: FavorMap, queries: list[str]) -> dict[str, list[int]]:
    """Stage: the training frames an hloc pairs file retrieves for each query (names ``seq-XX/frame-NNNNNN``), as
    indices of the map's frames, best first. ``{scene}`` in ``path`` becomes ``scene``. Names may carry the scene
    folder (``chess/seq-03/...``, one file for every scene): only this scene's lines are used, and a frame of
    another scene is an error. A listed frame the map skipped (built with ``--stride``) becomes the nearest mapped
    frame of its sequence; repeats are dropped."""
    path = for_scene(path, scene)
    pairs = read_pairs(path)
    listed = {p[1:]: names for q, names in pairs.items()
              if (p := parse_frame_name(q)) is not None and p[0] in (None, scene)}  # fmt: skip
    mapped: dict[int, list[tuple[int, int]]] = {}
    for k, name in enumerate(fmap.frame_names):
        p = parse_frame_name(name)
        if p is not None:
            mapped.setdefault(p[1], []).append((p[2], k))
    seqs = {s: (np.array([i for i, _ in v]), np.array([k for _, k in v])) for s, v in mapped.items()}
    out: dict[str, list[int]] = {}
    for q in queries:
        p = parse_frame_name(q)
        names = None if p is None else listed.get(p[1:])
        if names is None:
            raise InputError(f"{path}: no pairs for query {q} of scene {scene!r} (the file names queries like "
                             f"{next(iter(pairs))!r}); pass the retrieval list of this scene and split")  # fmt: skip
        idx: list[int] = []
        for name in names:
            p = parse_frame_name(name)
            if p is None or p[0] not in (None, scene) or p[1] not in seqs:
                raise InputError(f"{path}: {name}, retrieved for {q}, is not a training frame of the map of "
                                 f"{scene!r} (training sequences {sorted(seqs)}); pass that scene's retrieval "
                                 "list")  # fmt: skip
            index, k = seqs[p[1]]
            j = int(k[np.argmin(np.abs(index - p[2]))])
            if j not in idx:
                idx.append(j)
        out[q] = idx
    return out


def check_retrieval_pairs(path: Path, scenes: list[str]) -> None:
    """Before any work: each scene's pairs file exists, and one file without ``{scene}`` serves several scenes
    only if its names carry the scene folder (``chess/seq-03/...``)."""
    # each distinct file read once: a path without {scene} is one file for every scene
    lists = [read_pairs(f) for f in dict.fromkeys(for_scene(path, scene) for scene in scenes)]
    if len(scenes) > 1 and len(lists) == 1:
        bare = [q for q in lists[0] if (p := parse_frame_name(q)) is None or p[0] is None]
        if bare:
            raise InputError(f"{path}: one retrieval list for {len(scenes)} scenes, but it names queries without "
                             f"their scene folder ({bare[0]!r}); put {{scene}} in --retrieval-pairs "
                             "(e.g. DIR/{scene}_top10.txt) or pass --scenes one at a time")  # fmt: skip


def query_scene(fmap: FavorMap, root: Path, scene: str, split: str, cfg: QueryConfig, methods: list[str],
                stride: int = 1, weights: str | None = None, netvlad_weights: str | None = None,
                progress=None, pgt: Path | None = None,
                retrieval_pairs: Path | None = None, track: bool = False,
                rendered_depth: Path | None = None) -> dict[str, list[dict]]:  # fmt: skip
    """Stage: localise every frame of a split with each method -> per-method list of per-query records (errors
    against the dataset's poses, or ``pgt``'s). ``retrieval_pairs``: an hloc pairs file replacing the map's
    global-descriptor retrieval (:func:`retrieval_lists`). ``track``: each frame starts from the method's estimate
    of the previous queried frame of the same sequence (``Relocalizer.localize(prior=...)``). ``rendered_depth``:
    the training frames' depth for the depth baseline (else their depth.png)."""
    if track and "depth" in methods:
        raise InputError("reloc: --track applies to favor and baseline; the depth baseline localises from "
                         "retrieved frames only")  # fmt: skip
    ds = SevenScenes(root, scene, pgt=pgt, rendered_depth=for_scene(rendered_depth, scene))
    frames = _frames(ds, split, stride)
    train_by_name = {f.name: f for f in ds.frames("train")}
    listed = None
    if retrieval_pairs is not None:
        listed = retrieval_lists(retrieval_pairs, scene, fmap, [f.name for f in frames])

    if "depth" in methods:
        check_rendered_depth(ds, [train_by_name[n] for n in fmap.frame_names], "map's training frames")
        if ds.rendered_depth is None and fmap.meta.get("depth", "depth.png") != "depth.png":
            log.warning("the map was built on %s; the depth baseline reads depth.png (pass --rendered-depth to "
                        "use the same)", fmap.meta["depth"])  # fmt: skip

    def train_frame(i: int):
        f = train_by_name[fmap.frame_names[i]]
        image = ds.load_color(f)
        return image, _depth(ds, f, image.shape)

    reloc = Relocalizer(fmap, cfg, train_frame=train_frame, netvlad_weights=netvlad_weights, weights=weights)
    out: dict[str, list[dict]] = {m: [] for m in methods}
    total = len(frames) * len(methods)
    done = 0
    last: dict[str, tuple[int, object]] = {}  # method -> (sequence, pose) of its previous success
    for f in frames:
        image = ds.load_color(f)
        gt = f.T_world_cam
        for m in methods:
            prior = last[m][1] if track and m in last and last[m][0] == f.seq else None
            r = reloc.localize(image, str(f.color_path), m, None if listed is None else listed[f.name], prior)
            if r.success:
                last[m] = (f.seq, r.T_world_cam)
            else:
                last.pop(m, None)
            rec = {"name": f.name, "image": f.image_name, "success": r.success, "seconds": r.seconds,
                   "tracked": r.tracked, "lost": r.lost, "track_inliers": r.track_inliers,
                   "prior_kind": "previous frame" if r.tracked else "retrieval",
                   "inliers": r.inliers, "matches": r.matches, "retrieved": [fmap.frame_names[i] for i in r.retrieved],
                   "prior_from_pnp": r.prior_from_pnp,
                   "T_world_cam": None if r.T_world_cam is None else r.T_world_cam.matrix().tolist(),
                   "prior_T_world_cam": None if r.prior is None else r.prior.matrix().tolist()}  # fmt: skip
            te, re_ = pose_errors(r.T_world_cam, gt) if r.success else (np.inf, np.inf)
            pt, pr = pose_errors(r.prior, gt) if r.prior is not None else (np.inf, np.inf)
            rec.update(t_err_m=float(te), r_err_deg=float(re_), prior_t_err_m=float(pt), prior_r_err_deg=float(pr))
            out[m].append(rec)
            done += 1
            if progress is not None:
                progress(f"localising {scene} ({split})", done, total)
    return out


def summarise(records: list[dict]) -> dict:
    t = np.array([r["t_err_m"] for r in records])
    r = np.array([r["r_err_deg"] for r in records])
    s = reloc_summary(t, r, thresholds=((0.02, 2.0), (0.05, 5.0), (0.10, 10.0)))
    retrieved = [x for x in records if not x.get("tracked")]  # a tracked query's prior is the previous frame's pose
    prior = reloc_summary(np.array([x["prior_t_err_m"] for x in retrieved]),
                          np.array([x["prior_r_err_deg"] for x in retrieved])) if retrieved else None  # fmt: skip
    inl = [x["inliers"][-1] for x in records]
    return {
        "median_t_cm": s.median_t_cm, "median_r_deg": s.median_r_deg,
        "recall_2cm_2deg": s.recalls[(0.02, 2.0)], "recall_5cm_5deg": s.recalls[(0.05, 5.0)],
        "recall_10cm_10deg": s.recalls[(0.10, 10.0)], "queries": s.n, "failed": s.n_failed,
        "seconds_per_query": float(np.mean([x["seconds"] for x in records])),
        "median_final_inliers": float(np.median(inl)), "tracked": sum(bool(x.get("tracked")) for x in records),
        "prior_median_t_cm": None if prior is None else prior.median_t_cm,
        "prior_median_r_deg": None if prior is None else prior.median_r_deg,
    }  # fmt: skip


def compare_methods(records_a: list[dict], records_b: list[dict], groups: list[str] | None = None) -> dict:
    """Method a's median translation and rotation errors over method b's on the same queries (FaVoR over B1 in
    ``eval 7scenes --method both``), each with a 95 % paired-bootstrap interval: a ratio of two medians over a few
    dozen queries moves by 10-20 % with the queries drawn, so it is reported with its uncertainty. ``groups`` (the
    scene of each query, when pooling scenes) keeps each scene's share in the resampling."""
    if [r["image"] for r in records_a] != [r["image"] for r in records_b]:
        raise ValueError("compare_methods: the two methods were not run on the same queries")
    return {k: median_ratio([r[e] for r in records_a], [r[e] for r in records_b], groups=groups).as_dict()
            for k, e in (("translation", "t_err_m"), ("rotation", "r_err_deg"))}  # fmt: skip


def map_stats(fmap: FavorMap, path: Path | None) -> dict:
    per = fmap.bytes_per_landmark()
    return {
        "landmarks": fmap.num_landmarks, "descriptor": fmap.descriptor, "descriptor_dim": fmap.grids.dim,
        "favor_bytes_per_landmark": per["favor_grid_bytes"],
        "baseline_bytes_per_landmark": per["baseline_descriptor_bytes"],
        "map_file_bytes": None if path is None or not Path(path).is_file() else Path(path).stat().st_size,
        "train_frames": len(fmap.frame_names),
        "fit_cosine": fmap.meta.get("fit_cosine"), "mean_descriptor_cosine": fmap.meta.get("mean_descriptor_cosine"),
    }  # fmt: skip


# ------------------------------------------------------------------------------------------------ commands
def run_build(cfg: RelocBuildConfig) -> int:
    progress, update = _progress()
    t0 = time.perf_counter()
    with progress:
        fmap = build_scene_map(cfg.root, cfg.scene, cfg.camera, cfg.map, cfg.stride, update, cfg.pgt,
                               cfg.rendered_depth)  # fmt: skip
    fmap.meta["seconds"] = time.perf_counter() - t0
    fmap.save(cfg.out)
    save_resolved_config(cfg, "reloc build", out_dir=Path(cfg.out).parent)
    st = map_stats(fmap, cfg.out)
    print(f"map {cfg.out}: {st['landmarks']} landmarks from {st['train_frames']} frames, "
          f"{st['favor_bytes_per_landmark'] / 1024:.1f} KiB per landmark ({fmap.descriptor}, "
          f"C={st['descriptor_dim']}), "
          f"file {st['map_file_bytes'] / 1e6:.1f} MB, built in {fmap.meta['seconds']:.0f} s")  # fmt: skip
    return 0


def run_query(cfg: RelocQueryConfig) -> int:
    fmap = FavorMap.load(cfg.map)
    camera = fmap.camera
    check_map_matches(fmap, Path(cfg.map), cfg.root, cfg.scene, camera, pgt=cfg.pgt)
    progress, update = _progress()
    with progress:
        recs = query_scene(fmap, cfg.root, cfg.scene, cfg.split, cfg.query, [cfg.query.method], cfg.stride,
                           cfg.weights, cfg.netvlad_weights, update, cfg.pgt,
                           cfg.retrieval_pairs, cfg.track, cfg.rendered_depth)[cfg.query.method]  # fmt: skip
    from perception.geometry import SE3

    poses = {r["image"]: SE3.from_matrix(np.array(r["T_world_cam"])) for r in recs if r["success"]}
    out = Path(cfg.out)
    write_results(out, poses)  # no comment lines: hloc's and the pGT tools' readers split every line
    atomic_write_json(out.with_name(out.name + ".json"), {"method": cfg.query.method, "queries": recs})
    save_resolved_config(cfg, "reloc query", out_dir=out.parent)
    _log_query_run(cfg, fmap, recs)
    s = summarise(recs)
    truth = "the dataset poses" if cfg.pgt is None else "the pseudo ground truth"
    print(f"{len(recs)} queries, {len(recs) - s['failed']} localised -> {out}; against {truth}: median "
          f"{s['median_t_cm']:.2f} cm, {s['median_r_deg']:.2f} deg, "
          f"recall 5 cm/5 deg {100 * s['recall_5cm_5deg']:.1f}%"
          + (f"; {s['tracked']} tracked from the previous frame" if cfg.track else ""))  # fmt: skip
    return 0


def _log_query_run(cfg: RelocQueryConfig, fmap: FavorMap, recs: list[dict]) -> None:
    """``.rrd``: the landmarks, the training cameras, and each query's image at its estimated and dataset poses."""
    from apps.viz import blueprint_for, parse_rerun_spec, recording
    from apps.viz.log import log_camera, log_image, log_points, log_trajectory, log_world, set_time
    from perception.geometry import SE3

    spec = parse_rerun_spec(cfg.rerun, Path(cfg.out).parent)
    ds = SevenScenes(cfg.root, cfg.scene, pgt=cfg.pgt)
    frames = {f.name: f for f in ds.frames(cfg.split)}
    with recording("sparsepipe-reloc", spec, blueprint_for("reloc")) as rec:
        log_world(rec, "world", up="+z")
        log_points(rec, "world/landmarks", fmap.landmarks(), colors=(160, 160, 160), radii=0.01, static=True)
        log_trajectory(rec, "world/train", None, fmap.frame_T_world_cam(), color=(230, 120, 40), static=True)
        for k, r in enumerate(recs):
            f = frames[r["name"]]
            set_time(rec, frame=k)
            log_camera(rec, "world/query/gt", f.T_world_cam, fmap.camera, image_plane_distance=0.3)
            if r["success"]:
                T = SE3.from_matrix(np.array(r["T_world_cam"]))
                log_camera(rec, "world/query/camera", T, fmap.camera, image_plane_distance=0.3)
                log_image(rec, "world/query/camera/image", ds.load_color(f), jpeg_quality=80)


def _scenes(root: Path, scenes: str | None) -> list[str]:
    if scenes:
        return [s.strip() for s in scenes.split(",") if s.strip()]
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"7-Scenes: missing folder {root} (the folder holding chess/, fire/, ...)")
    found = sorted(p.name for p in root.iterdir() if (p / "TrainSplit.txt").is_file())
    if not found:
        raise InputError(f"7-Scenes: no scene folder with a TrainSplit.txt under {root}; pass --root or --scenes")
    return found


def scene_diagnostics(fmap: FavorMap, cfg: Eval7ScenesConfig, scene: str, progress=None) -> dict:
    """Stage: :func:`slam.reloc.diagnostics.diagnose` over a scene's (strided) test frames, streamed."""
    ds = SevenScenes(cfg.root, scene, pgt=cfg.pgt)
    frames = _frames(ds, "test", cfg.query_stride)
    rel = Relocalizer(fmap, cfg.query, netvlad_weights=cfg.map.netvlad_weights, weights=cfg.map.weights)

    def queries():
        for i, f in enumerate(frames):
            yield rel.extractor(ds.load_color(f)), f.T_world_cam
            if progress is not None:
                progress(f"diagnostics {scene}", i + 1, len(frames))

    return diagnose(rel, queries(), cfg.diagnostics_radius_px)


def run_eval(cfg: Eval7ScenesConfig) -> int:
    if not (np.isfinite(cfg.diagnostics_radius_px) and cfg.diagnostics_radius_px > 0):
        raise InputError(f"eval 7scenes: --diagnostics-radius-px must be > 0, got {cfg.diagnostics_radius_px}")
    methods = {"favor": ["favor"], "baseline": ["baseline"], "both": ["favor", "baseline"], "depth": ["depth"],
               "all": ["favor", "baseline", "depth"]}[cfg.method]  # fmt: skip
    out = Path(cfg.out)
    retrieval = "map global descriptors" if cfg.retrieval_pairs is None else f"pairs {cfg.retrieval_pairs}"
    result: dict = {"methods": methods, "poses": pose_source(cfg.pgt), "depth": depth_source(cfg.rendered_depth),
                    "retrieval": retrieval, "scenes": {}}  # fmt: skip
    compare = "favor" in methods and "baseline" in methods
    pooled: dict[str, list[dict]] = {"favor": [], "baseline": []}
    pooled_scene: list[str] = []
    progress, update = _progress()
    scenes = _scenes(cfg.root, cfg.scenes)
    if cfg.retrieval_pairs is not None:
        check_retrieval_pairs(cfg.retrieval_pairs, scenes)
    for scene in scenes:  # every scene's rendered depth folder, before the first scene's work
        if cfg.rendered_depth is not None:
            SevenScenes(cfg.root, scene, rendered_depth=for_scene(cfg.rendered_depth, scene))
    for scene in scenes:
        map_path = out / "maps" / f"{scene}.favor.npz"
        camera = scene_camera(cfg.root, scene, cfg.camera, cfg.pgt)
        with progress:
            fmap = None
            if map_path.is_file() and not cfg.rebuild:
                fmap = FavorMap.load(map_path)
                try:
                    check_map_matches(fmap, map_path, cfg.root, scene, camera, cfg.map, cfg.pgt,
                                      for_scene(cfg.rendered_depth, scene))  # fmt: skip
                except InputError as e:
                    log.warning("rebuilding: %s", e)
                    fmap = None
            if fmap is None:
                t0 = time.perf_counter()
                fmap = build_scene_map(cfg.root, scene, cfg.camera, cfg.map, cfg.stride, update, cfg.pgt,
                                       cfg.rendered_depth)  # fmt: skip
                fmap.meta["seconds"] = time.perf_counter() - t0
                fmap.save(map_path)
            recs = query_scene(fmap, cfg.root, scene, "test", cfg.query, methods, cfg.query_stride, cfg.map.weights,
                               cfg.map.netvlad_weights, update, cfg.pgt, cfg.retrieval_pairs,
                               rendered_depth=cfg.rendered_depth)  # fmt: skip
            diag = scene_diagnostics(fmap, cfg, scene, update) if cfg.diagnostics else None
        entry = {"map": map_stats(fmap, map_path), "map_build_seconds": fmap.meta.get("seconds")}
        if diag is not None:
            entry["diagnostics"] = diag
        for m in methods:
            entry[m] = summarise(recs[m])
            atomic_write_json(out / "results" / f"{scene}_{m}.json", {"method": m, "queries": recs[m]})
        if compare:
            entry["favor_vs_baseline"] = compare_methods(recs["favor"], recs["baseline"])
            pooled["favor"] += recs["favor"]
            pooled["baseline"] += recs["baseline"]
            pooled_scene += [scene] * len(recs["favor"])
        result["scenes"][scene] = entry
    if len(result["scenes"]) > 1:
        result["average"] = {m: {k: float(np.mean([e[m][k] for e in result["scenes"].values()]))
                                 for k in ("median_t_cm", "median_r_deg", "recall_5cm_5deg", "recall_2cm_2deg",
                                           "seconds_per_query")} for m in methods}  # fmt: skip
        if compare:  # every query of every scene, paired, resampled within each scene
            result["average"]["favor_vs_baseline"] = compare_methods(pooled["favor"], pooled["baseline"], pooled_scene)
    path = Path(cfg.json) if cfg.json is not None else out / "metrics.json"
    atomic_write_json(path, result)
    save_resolved_config(cfg, "eval 7scenes", out_dir=out)
    print(f"{'scene':10s} {'method':9s} {'med cm':>7s} {'med deg':>7s} {'5cm/5°':>7s} {'2cm/2°':>7s} {'s/query':>7s} "
          f"{'KiB/lm':>7s}")  # fmt: skip
    for scene, e in result["scenes"].items():
        for m in methods:
            s = e[m]
            kib = (e["map"]["favor_bytes_per_landmark"] if m == "favor" else e["map"]["baseline_bytes_per_landmark"]
                   if m == "baseline" else float("nan")) / 1024  # fmt: skip
            print(f"{scene:10s} {m:9s} {s['median_t_cm']:7.2f} {s['median_r_deg']:7.2f} {s['recall_5cm_5deg']:7.2f} "
                  f"{s['recall_2cm_2deg']:7.2f} {s['seconds_per_query']:7.3f} {kib:7.2f}")  # fmt: skip
    comparisons = [(scene, e["favor_vs_baseline"]) for scene, e in result["scenes"].items() if "favor_vs_baseline" in e]
    if len(result["scenes"]) > 1 and compare:
        comparisons.append(("all", result["average"]["favor_vs_baseline"]))
    for scene, c in comparisons:
        t = c["translation"]
        lo, hi = t["interval"]
        print(f"{scene:10s} favor / baseline median translation {t['median_ratio']:.2f} "
              f"({100 * t['level']:g} % interval {lo:.2f}-{hi:.2f}, paired bootstrap over {t['queries']} queries)")
    for scene, e in result["scenes"].items():
        if "diagnostics" in e:
            d = e["diagnostics"]
            c, v = d["descriptor_agreement"]["median_cosine"], d["view_change"]
            if d["descriptor_agreement"]["pairs"] == 0:
                print(f"{scene:10s} diagnostics: no query keypoint within {d['radius_px']} px of a landmark's "
                      "projection under the test poses (raise --diagnostics-radius-px for pseudo ground truth)")
                continue
            o = d["oracle"]["median_t_cm"]
            print(f"{scene:10s} diagnostics: median cosine at {d['descriptor_agreement']['pairs']} true "
                  f"correspondences: rendered {c['favor']:.3f}, mean {c['baseline']:.3f}, direction-linear "
                  f"{c['direction_linear']:.3f}; views {v['median_angle_deg']:.1f} deg from the nearest training "
                  f"view at {v['median_scale_change']:.2f}x its distance; oracle PnP "
                  + (f"{o:.2f} cm" if np.isfinite(o) else "failed on most queries"))  # fmt: skip
    print(f"metrics -> {path}")
    return 0
