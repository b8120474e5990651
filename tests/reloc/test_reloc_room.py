"""FaVoR end to end on a simulated room written in the 7-Scenes layout: `sparsepipe reloc build|query` and
`sparsepipe eval 7scenes`, read back with the real readers and scored against the exact ground truth, plus the
bad inputs the issue names (query images of another size, a map of another scene, a scene without test split)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from apps.cli import main
from apps.reloc import (
    CameraOptions,
    check_map_matches,
    check_retrieval_pairs,
    retrieval_lists,
    scene_camera,
    summarise,
)
from perception.datasets.common import read_rgb, write_png16, write_rgb
from perception.datasets.pairs import write_pairs
from perception.datasets.sevenscenes import SevenScenes, depth_m_to_mm, write_pgt, write_rendered_depth
from perception.errors import InputError
from perception.features.matching import match_mutual_nn
from perception.geometry import SE3
from perception.metrics.pose import pose_errors
from slam.reloc import FavorMap, MapConfig, QueryConfig, Relocalizer
from slam.reloc.diagnostics import diagnose, true_correspondences
from slam.reloc.results import read_results

# The simulated room (``room``) and its map (``built``) are session fixtures in conftest.py.


def test_map_file_round_trips_and_reports_memory(room: Path, built: Path) -> None:
    fmap = FavorMap.load(built)
    assert fmap.meta["scene"] == "room" and fmap.descriptor == "xfeat" and fmap.num_landmarks > 1000
    assert (built.parent / "config.yaml").is_file()
    per = fmap.bytes_per_landmark()
    assert per["favor_grid_bytes"] == 4 * (27 * 65 + 4)  # 3x3x3 x (64 descriptor + 1 density) float32, box
    assert fmap.meta["fit_cosine"] > fmap.meta["mean_descriptor_cosine"]  # the grids explain the training patches
    # landmarks lie on the surfaces: their depth in the first observing frame agrees with the exact depth image
    ds = SevenScenes(room, "room")
    by_name = {f.name: f for f in ds.frames("train")}
    X = fmap.landmarks()
    err = []
    first = np.unique(fmap.obs_landmark, return_index=True)[1]
    for k in first[::10]:
        f = by_name[fmap.frame_names[fmap.obs_frame[k]]]
        u, v = np.round(fmap.obs_uv[k]).astype(int)
        z_true = ds.load_depth_m(f)[v, u]
        z = f.T_world_cam.inverse().act(X[fmap.obs_landmark[k]])[2]
        err.append(abs(z - z_true) / z_true)
    assert np.median(err) < 0.01 and np.percentile(err, 90) < 0.03  # 1 px at 2.5 m, f = 262 px, ~0.3 m baselines


def test_query_writes_hloc_results_that_meet_the_accuracy_bar(room: Path, built: Path, tmp_path: Path) -> None:
    out = tmp_path / "poses.txt"
    assert main(["reloc", "query", "--map", str(built), "--root", str(room), "--scene", "room", "--out", str(out)]) == 0
    poses = read_results(out)
    ds = SevenScenes(room, "room")
    test = ds.frames("test")
    assert len(poses) >= 0.9 * len(test)
    t, r = [], []
    for f in test:
        if f.image_name in poses:  # hloc's names: seq-XX/frame-NNNNNN.color.png
            te, re_ = pose_errors(poses[f.image_name], f.T_world_cam)
        else:
            te, re_ = np.inf, 180.0
        t.append(te)
        r.append(re_)
    t, r = np.array(t), np.array(r)
    assert np.median(t) <= 0.03 and np.median(r) <= 1.0
    assert np.mean((t < 0.05) & (r < 5.0)) >= 0.8
    details = json.loads((tmp_path / "poses.txt.json").read_text())
    assert details["method"] == "favor" and len(details["queries"]) == len(test)
    q = details["queries"][0]
    assert len(q["inliers"]) == 1 + 3  # the prior, then three render -> match -> PnP iterations
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "run.rrd").stat().st_size > 10_000


def test_eval_7scenes_reports_favor_and_both_baselines(room: Path, built: Path, tmp_path: Path, capsys) -> None:
    maps = tmp_path / "eval" / "maps"
    maps.mkdir(parents=True)
    shutil.copy(built, maps / "room.favor.npz")  # reused: same scene, same camera
    out_json = tmp_path / "m.json"
    assert main(["eval", "7scenes", "--root", str(room), "--method", "all", "--out", str(tmp_path / "eval"),
                 "--json", str(out_json), "--diagnostics"]) == 0  # fmt: skip
    m = json.loads(out_json.read_text())["scenes"]["room"]
    fav, base, depth = m["favor"], m["baseline"], m["depth"]
    for s in (fav, base, depth):
        assert {"median_t_cm", "median_r_deg", "recall_5cm_5deg", "recall_2cm_2deg", "seconds_per_query"} <= set(s)
    assert fav["median_t_cm"] <= 3.0 and fav["median_r_deg"] <= 1.0 and fav["recall_5cm_5deg"] >= 0.8
    # same prior, same PnP: the rendered descriptors are at least as good as the stored means here (within 30%)
    assert fav["median_t_cm"] <= 1.3 * base["median_t_cm"]
    assert depth["recall_5cm_5deg"] >= 0.8  # B0 with exact registered depth
    assert m["map"]["favor_bytes_per_landmark"] > m["map"]["baseline_bytes_per_landmark"]
    assert (tmp_path / "eval" / "results" / "room_favor.json").is_file()
    # --diagnostics: agreement at the true correspondences and the oracle, from the test poses
    diag = m["diagnostics"]
    cos = diag["descriptor_agreement"]["median_cosine"]
    assert diag["descriptor_agreement"]["pairs"] > 1000 and cos["favor"] > cos["baseline"]
    assert diag["oracle"]["queries"] == 12 and diag["oracle"]["median_t_cm"] <= 1.1 * fav["median_t_cm"]
    assert diag["view_change"]["median_scale_change"] > 1.15  # the test loop stands further from the walls
    printed = capsys.readouterr().out
    assert "from the nearest training view at 1." in printed
    # the FaVoR / B1 ratio with its paired-bootstrap interval (12 queries: a wide one)
    c = m["favor_vs_baseline"]["translation"]
    assert c["median_ratio"] == pytest.approx(fav["median_t_cm"] / base["median_t_cm"]) and c["queries"] == 12
    assert c["interval"][0] <= c["median_ratio"] <= c["interval"][1] and c["interval"][1] - c["interval"][0] > 0.05
    assert "favor / baseline median translation" in printed and "paired bootstrap over 12 queries" in printed
    assert main(["eval", "7scenes", "--root", str(room), "--out", str(tmp_path / "e2"), "--diagnostics",
                 "--diagnostics-radius-px", "0"]) == 2  # fmt: skip
    # a cached map built with other settings is rebuilt, not silently reused; diagnostics that find no true
    # correspondence (a radius no integer keypoint meets) say so, with nulls in the JSON, not NaN
    assert main(["eval", "7scenes", "--root", str(room), "--method", "baseline", "--out", str(tmp_path / "eval"),
                 "--map.ridge", "0.01", "--query-stride", "4", "--diagnostics", "--diagnostics-radius-px",
                 "1e-9"]) == 0  # fmt: skip
    assert FavorMap.load(maps / "room.favor.npz").meta["config"]["ridge"] == 0.01
    assert "favor_vs_baseline" not in _strict_json(tmp_path / "eval" / "metrics.json")["scenes"]["room"]
    assert "no query keypoint within 1e-09 px" in capsys.readouterr().out
    diag = _strict_json(tmp_path / "eval" / "metrics.json")["scenes"]["room"]["diagnostics"]
    assert diag["view_change"]["by_angle"][0]["median_cosine"]["favor"] is None
    assert diag["oracle"]["median_t_cm"] is None


def test_eval_7scenes_pools_the_favor_baseline_comparison_over_scenes(room: Path, built: Path, tmp_path: Path,
                                                                      capsys) -> None:  # fmt: skip
    """Two scenes: each gets its own FaVoR / B1 ratio, and ``average`` pools every query of both, paired."""
    root, out = tmp_path / "two", tmp_path / "eval"
    (out / "maps").mkdir(parents=True)
    for scene in ("room", "copy"):
        shutil.copytree(room / "room", root / scene)
        fmap = FavorMap.load(built)
        fmap.meta["scene"] = scene  # the same frames under another scene name: reused, not rebuilt
        fmap.save(out / "maps" / f"{scene}.favor.npz")
    assert main(["eval", "7scenes", "--root", str(root), "--scenes", "room,copy", "--method", "both",
                 "--query-stride", "3", "--out", str(out)]) == 0  # fmt: skip
    res = _strict_json(out / "metrics.json")
    t = {m: [q["t_err_m"] for s in ("room", "copy") for q in _strict_json(out / "results" / f"{s}_{m}.json")["queries"]]
         for m in ("favor", "baseline")}  # fmt: skip
    pooled = res["average"]["favor_vs_baseline"]["translation"]
    assert pooled["queries"] == len(t["favor"]) == 8
    assert pooled["median_ratio"] == pytest.approx(np.median(t["favor"]) / np.median(t["baseline"]))
    assert res["scenes"]["copy"]["favor_vs_baseline"]["translation"]["queries"] == 4
    assert "all        favor / baseline median translation" in capsys.readouterr().out


def _strict_json(path: Path) -> dict:
    """JSON as other tools read it: NaN / Infinity are not JSON."""

    def refuse(name: str):
        raise AssertionError(f"{path} holds {name}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_pseudo_ground_truth_poses_replace_the_dataset_poses(room: Path, built: Path, tmp_path: Path,
                                                              capsys) -> None:  # fmt: skip
    """--pgt: the SfM pGT files (another world frame, as COLMAP's differs from KinectFusion's) replace pose.txt,
    which here is noisy; maps and results live in the pGT's frame, and a map is refused with the other poses."""
    other = tmp_path / "r"
    shutil.copytree(room / "room", other / "room")
    G = SE3.from_matrix(np.r_[np.c_[Rotation.from_euler("z", 30, degrees=True).as_matrix(), [1.0, -2.0, 0.5]],
                              [[0, 0, 0, 1]]])  # fmt: skip
    ds = SevenScenes(other, "room")
    rng = np.random.default_rng(0)
    truth = {}
    for split in ("train", "test"):
        poses = {}
        for f in ds.frames(split):
            poses[f.image_name] = truth[f.image_name] = G @ f.T_world_cam
            noisy = SE3.exp(np.r_[rng.normal(0, np.radians(1.0), 3), rng.normal(0, 0.03, 3)]) @ f.T_world_cam
            np.savetxt(f.pose_path, noisy.matrix())
        write_pgt(tmp_path / "pgt" / f"room_{split}.txt", poses, 262.5)
    pgt = ["--pgt", str(tmp_path / "pgt")]
    m = tmp_path / "m.npz"
    assert main(["reloc", "build", "--root", str(other), "--scene", "room", "--out", str(m), *pgt]) == 0
    assert FavorMap.load(m).meta["poses"].startswith("pgt ") and FavorMap.load(m).camera.fx == 262.5
    out = tmp_path / "poses.txt"
    assert main(["reloc", "query", "--map", str(m), "--root", str(other), "--scene", "room", "--out", str(out),
                 "--rerun", "off", *pgt]) == 0  # fmt: skip
    assert "against the pseudo ground truth" in capsys.readouterr().out
    res = read_results(out)
    assert len(res) >= 10 and all(n.endswith(".color.png") for n in res)
    for line in out.read_text().splitlines():  # as hloc's / visloc_pseudo_gt_limitations' readers split lines
        name, *v = line.split()
        assert name in truth and len(v) == 7 and all(np.isfinite(float(x)) for x in v)
    t = [pose_errors(T, truth[n])[0] for n, T in res.items()]
    assert np.median(t) <= 0.03  # in the pGT's world frame; the noisy pose.txt would give ~5 cm
    assert main(["reloc", "query", "--map", str(m), "--root", str(other), "--scene", "room", "--rerun", "off",
                 "--out", str(tmp_path / "p2.txt")]) == 2  # fmt: skip
    assert "was built on the poses of pgt" in capsys.readouterr().err
    assert main(["reloc", "query", "--map", str(built), "--root", str(other), "--scene", "room", "--rerun", "off",
                 "--out", str(tmp_path / "p3.txt"), *pgt]) == 2  # fmt: skip
    assert "was built on the poses of pose.txt, this run uses pgt" in capsys.readouterr().err
    # the camera: explicit options, else the pGT's focal (principal point at the centre), else sim_meta.json
    write_pgt(tmp_path / "pgt270" / "room_train.txt", {n: truth[n] for n in list(truth)[:3]}, 270.0)
    cam = scene_camera(other, "room", CameraOptions(), tmp_path / "pgt270")
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.width) == (270.0, 270.0, 160.0, 120.0, 320)
    assert scene_camera(other, "room", CameraOptions(fx=262.5), tmp_path / "pgt270").fx == 262.5
    assert scene_camera(other, "room", CameraOptions()).fx == 262.5
    # eval 7scenes --pgt: errors against the pGT, which the metrics name
    assert main(["eval", "7scenes", "--root", str(other), "--method", "baseline", "--query-stride", "3",
                 "--out", str(tmp_path / "eval"), *pgt]) == 0  # fmt: skip
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["poses"].startswith("pgt ") and metrics["scenes"]["room"]["baseline"]["median_t_cm"] <= 3.0


def _ranked_by_pose(train, query) -> list:
    """Training frames by distance of camera centre plus 1 cm per degree of viewing-direction change (the ranking
    a perfect retrieval would give)."""
    C = np.stack([f.T_world_cam.t for f in train])
    z = np.stack([f.T_world_cam.R[:, 2] for f in train])
    ang = np.degrees(np.arccos(np.clip(z @ query.T_world_cam.R[:, 2], -1, 1)))
    return [train[i] for i in np.argsort(np.linalg.norm(C - query.T_world_cam.t, axis=1) + 0.01 * ang)]


def test_retrieval_pairs_file_replaces_the_global_descriptor_ranking(room: Path, built: Path, tmp_path: Path,
                                                                     capsys) -> None:  # fmt: skip
    """--retrieval-pairs: an hloc / DenseVLAD-style list (lines 'query db', best first) gives each query's
    training frames; the prior is computed from its first retrieval_top_k, in its order."""
    ds = SevenScenes(room, "room")
    train, test = ds.frames("train"), ds.frames("test")[::2]
    near = {q.image_name: [f.image_name for f in _ranked_by_pose(train, q)[:5][::-1]] for q in test}  # 5th first
    far = {q.image_name: [f.image_name for f in _ranked_by_pose(train, q)[-5:]] for q in test}
    write_pairs(tmp_path / "room_top10.txt", near)
    write_pairs(tmp_path / "far_pairs.txt", far)
    base = ["reloc", "query", "--map", str(built), "--root", str(room), "--scene", "room", "--stride", "2",
            "--rerun", "off", "--query.retrieval-top-k", "3"]  # fmt: skip
    for out, pairs in (("near.txt", "room_top10.txt"), ("far.txt", "far_pairs.txt")):
        assert main([*base, "--out", str(tmp_path / out), "--retrieval-pairs", str(tmp_path / pairs)]) == 0
    recs = {k: json.loads((tmp_path / f"{k}.txt.json").read_text())["queries"] for k in ("near", "far")}
    for k, lists in (("near", near), ("far", far)):
        for r in recs[k]:
            assert [n + ".color.png" for n in r["retrieved"]] == lists[r["image"]][:3]  # the file's, in order
    # the list drives the prior: the nearest frames give a good one, frames across the room a useless one
    prior = {k: np.median([r["prior_t_err_m"] for r in recs[k]]) for k in recs}
    assert prior["near"] < 0.05 and prior["far"] > 1.0
    t = [r["t_err_m"] for r in recs["near"]]
    assert all(r["success"] for r in recs["near"]) and np.median(t) <= 0.03

    # a map built on every other frame (--stride 2): a listed frame it skipped becomes its nearest mapped frame;
    # names may carry the scene folder (one file for all scenes): only this scene's lines count
    fmap = SimpleNamespace(frame_names=["seq-01/frame-000000", "seq-01/frame-000010", "seq-02/frame-000000"])
    listed = ["seq-01/frame-000007.color.png", "seq-01/frame-000012.color.png", "seq-02/frame-000003.color.png"]
    write_pairs(tmp_path / "s.txt", {"seq-03/frame-000000.color.png": listed,
                                     "room/seq-03/frame-000001.color.png": ["room/seq-01/frame-000004.color.png"],
                                     "chess/seq-03/frame-000001.color.png": ["chess/seq-01/frame-000009.color.png"],
                                     "room/seq-03/frame-000002.color.png": ["chess/seq-01/frame-000001.color.png"]})
    got = retrieval_lists(tmp_path / "s.txt", "room", fmap, ["seq-03/frame-000000", "seq-03/frame-000001"])
    assert got == {"seq-03/frame-000000": [1, 2], "seq-03/frame-000001": [0]}
    assert retrieval_lists(tmp_path / "s.txt", "chess", fmap, ["seq-03/frame-000001"]) == {"seq-03/frame-000001": [1]}
    with pytest.raises(InputError, match="chess/seq-01/frame-000001.color.png, retrieved for seq-03/frame-000002, "
                                         "is not a training frame of the map of 'room'"):  # fmt: skip
        retrieval_lists(tmp_path / "s.txt", "room", fmap, ["seq-03/frame-000002"])
    with pytest.raises(InputError, match="no pairs for query seq-03/frame-000005 of scene 'room'"):
        retrieval_lists(tmp_path / "s.txt", "room", fmap, ["seq-03/frame-000005"])
    check_retrieval_pairs(tmp_path / "s.txt", ["room"])
    with pytest.raises(InputError, match="one retrieval list for 2 scenes, but it names queries without their "
                                         "scene folder"):  # fmt: skip
        check_retrieval_pairs(tmp_path / "s.txt", ["room", "chess"])
    with pytest.raises(FileNotFoundError, match="chess_top10.txt"):  # checked before the first scene's work
        check_retrieval_pairs(tmp_path / "{scene}_top10.txt", ["room", "chess"])

    # eval 7scenes: {scene} in the path becomes each scene's name; the metrics say where retrieval came from
    maps = tmp_path / "eval" / "maps"
    maps.mkdir(parents=True)
    shutil.copy(built, maps / "room.favor.npz")
    assert main(["eval", "7scenes", "--root", str(room), "--method", "favor", "--query-stride", "2", "--out",
                 str(tmp_path / "eval"), "--retrieval-pairs", str(tmp_path / "{scene}_top10.txt")]) == 0  # fmt: skip
    metrics = _strict_json(tmp_path / "eval" / "metrics.json")
    assert metrics["retrieval"].startswith("pairs ") and metrics["scenes"]["room"]["favor"]["median_t_cm"] <= 3.0
    q = _strict_json(tmp_path / "eval" / "results" / "room_favor.json")["queries"]
    assert [n + ".color.png" for n in q[0]["retrieved"]] == near[q[0]["image"]][:5]

    # bad lists: one-line errors naming the file and what is wrong
    capsys.readouterr()
    write_pairs(tmp_path / "missing.txt", dict(list(near.items())[1:]))
    write_pairs(tmp_path / "other.txt", {q: ["seq-09/frame-000000.color.png"] for q in near})
    (tmp_path / "bad.txt").write_text("seq-03/frame-000000.color.png\n")
    for name, msg in (("missing.txt", f"no pairs for query {test[0].name}"),
                      ("other.txt", "seq-09/frame-000000.color.png, retrieved for seq-03/frame-000000, is not a "
                                    "training frame of the map of 'room' (training sequences [1, 2])"),
                      ("bad.txt", "line 1 has 1 fields; expected 'name0 name1'"),
                      ("nothere.txt", "hloc pairs: missing file")):  # fmt: skip
        assert main([*base, "--out", str(tmp_path / "x.txt"), "--retrieval-pairs", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert msg in err and str(tmp_path / name) in err and len(err.strip().splitlines()) == 1, err


def test_tracking_starts_from_a_previous_pose_and_relocalises_when_lost(room: Path, built: Path) -> None:
    """localize(prior=T): the iterations start from a video's previous pose (no retrieval); from a pose on the
    other side of the room they fail, and the image is relocalised from retrieval instead."""
    rel = Relocalizer(FavorMap.load(built), QueryConfig())
    ds = SevenScenes(room, "room")
    train = ds.frames("train")  # one loop of 24 frames: 15 degrees apart
    a, b, far = train[0], train[1], train[12]
    ra = rel.localize(ds.load_color(a), "a")
    assert ra.success and not ra.tracked and not ra.lost and ra.retrieved
    rb = rel.localize(ds.load_color(b), "b", prior=ra.T_world_cam)
    assert rb.success and rb.tracked and not rb.lost and rb.retrieved == [] and rb.inliers[0] == 0
    assert pose_errors(rb.T_world_cam, b.T_world_cam)[0] < 0.02
    assert pose_errors(rb.prior, a.T_world_cam)[0] < 0.02  # the prior it started from
    rf = rel.localize(ds.load_color(far), "far", prior=ra.T_world_cam)  # the camera was carried across the room
    assert rf.success and rf.lost and not rf.tracked and rf.retrieved and len(rf.track_inliers) >= 1
    assert pose_errors(rf.T_world_cam, far.T_world_cam)[0] < 0.02
    # wrong priors (45-180 degrees and up to 2.4 m away) never give a wrong pose: a dozen chance inliers do not
    # pass for tracking (track_min_inliers), and the retrieval fallback finds the right one
    query = train[10]
    image = ds.load_color(query)
    for method in ("favor", "baseline"):
        for k in (0, 4, 7, 13, 16, 20):
            r = rel.localize(image, "q", method, prior=train[k].T_world_cam)  # (a 45-degree one may converge)
            assert r.success and r.lost != r.tracked, (method, k)
            assert pose_errors(r.T_world_cam, query.T_world_cam)[0] < 0.05, (method, k, r.tracked, r.inliers)
    with pytest.raises(InputError, match="depth baseline localises from retrieved frames only"):
        rel.localize(ds.load_color(b), "b", method="depth", prior=ra.T_world_cam)


def test_reloc_query_track_follows_each_sequence(room: Path, built: Path, tmp_path: Path, capsys) -> None:
    """reloc query --track: a training loop (frames 30 degrees apart at stride 2) as a video; a new sequence starts
    from retrieval again."""
    out = tmp_path / "poses.txt"
    base = ["reloc", "query", "--map", str(built), "--root", str(room), "--scene", "room", "--split", "train",
            "--stride", "2", "--rerun", "off", "--out", str(out)]  # fmt: skip
    assert main([*base, "--track"]) == 0
    assert "tracked from the previous frame" in capsys.readouterr().out
    recs = json.loads((tmp_path / "poses.txt.json").read_text())["queries"]
    seqs = [r["name"].split("/")[0] for r in recs]
    starts = [k for k in range(len(recs)) if k == 0 or seqs[k] != seqs[k - 1]]
    assert len(starts) == 2 and all(not recs[k]["tracked"] and recs[k]["retrieved"] for k in starts)
    tracked = [r for k, r in enumerate(recs) if k not in starts]
    assert sum(r["tracked"] for r in tracked) >= 0.8 * len(tracked)
    assert all(r["retrieved"] == [] and r["prior_kind"] == "previous frame" for r in tracked if r["tracked"])
    assert all(r["t_err_m"] < 0.05 for r in recs)  # every frame, tracked or not: no confidently wrong pose
    s = summarise(recs)  # the prior statistics are retrieval's only (a tracked frame's prior is its neighbour's pose)
    assert s["tracked"] == sum(r["tracked"] for r in recs)
    assert s["prior_median_t_cm"] == pytest.approx(100 * np.median([r["prior_t_err_m"] for r in recs
                                                                     if not r["tracked"]]))  # fmt: skip
    # the test loops: 60 degrees between frames -- tracking fails often, and must fall back, never mislead
    assert main([*base[:-2], "--out", str(tmp_path / "test.txt"), "--split", "test", "--stride", "1", "--track"]) == 0
    recs = json.loads((tmp_path / "test.txt.json").read_text())["queries"]
    assert {r["name"][:6] for r in recs} == {"seq-03", "seq-04"} and len(recs) == 12
    assert all(r["success"] and r["t_err_m"] < 0.05 for r in recs)
    assert main([*base, "--track", "--query.method", "depth"]) == 2
    assert "--track applies to favor and baseline" in capsys.readouterr().err


def test_rendered_depth_replaces_misregistered_depth(room: Path, built: Path, tmp_path: Path, capsys) -> None:
    """--rendered-depth: hloc's depth maps rendered at the colour camera (seqXX_frame-NNNNNN.pose.depth.tiff, mm)
    replace depth.png, which in the real dataset is offset from the colour image by a few pixels; here depth.png is
    shifted by 6 px and the depth baseline (B0) lifts its matches with either."""
    other = tmp_path / "r"
    shutil.copytree(room / "room", other / "room")
    rendered = other / "depth" / "7scenes_room" / "train" / "depth"
    ds = SevenScenes(other, "room")
    for f in ds.frames("train"):
        d = ds.load_depth_m(f)
        write_rendered_depth(rendered, f, d)
        shifted = np.zeros_like(d)
        shifted[:, 6:] = d[:, :-6]
        write_png16(f.depth_path, depth_m_to_mm(shifted))
    assert np.array_equal(SevenScenes(other, "room", rendered_depth=rendered).load_depth_m(f), d)
    base = ["reloc", "query", "--map", str(built), "--root", str(other), "--scene", "room", "--query.method", "depth",
            "--rerun", "off"]  # fmt: skip
    t = {}
    template = str(other / "depth/7scenes_{scene}/train/depth")  # as eval 7scenes takes it for every scene
    for key, extra in (("png", []), ("rendered", ["--rendered-depth", template])):
        assert main([*base, "--out", str(tmp_path / f"{key}.txt"), *extra]) == 0
        t[key] = np.median([q["t_err_m"] for q in json.loads((tmp_path / f"{key}.txt.json").read_text())["queries"]])
    assert t["rendered"] <= 0.7 * t["png"] and t["rendered"] <= 0.01, t  # measured 0.68 vs 1.41 cm
    # a cached map built on depth.png is not reused by a run on rendered depth (eval 7scenes rebuilds it)
    fmap = FavorMap.load(built)
    assert fmap.meta["depth"] == "depth.png"
    with pytest.raises(InputError, match="was built with the depth of depth.png, this run uses rendered"):
        check_map_matches(fmap, built, room, "room", fmap.camera, MapConfig(), None, rendered)
    fmap.meta["depth"] = "rendered /elsewhere/depth/7scenes_room/train/depth"  # the same rendering, moved: reused
    check_map_matches(fmap, built, room, "room", fmap.camera, MapConfig(), None, rendered)
    fmap.meta["depth"] = "rendered /elsewhere/other_render/7scenes_room/depth"  # another rendering: rebuilt
    with pytest.raises(InputError, match="was built with the depth of rendered /elsewhere/other_render"):
        check_map_matches(fmap, built, room, "room", fmap.camera, MapConfig(), None, rendered)
    # B0 on a map built on rendered depth but run without it: said, not silent
    fmap.meta["depth"] = f"rendered {rendered}"
    fmap.save(tmp_path / "rendered.favor.npz")
    capsys.readouterr()
    assert main([*base[:2], "--map", str(tmp_path / "rendered.favor.npz"), *base[4:], "--stride", "6",
                 "--out", str(tmp_path / "w.txt")]) == 0  # fmt: skip
    printed = capsys.readouterr()
    assert "the depth baseline reads depth.png" in " ".join((printed.out + printed.err).split())  # (rich wraps)
    # a missing rendered depth map: one line naming the file hloc's layout expects, before any query
    (rendered / "seq01_frame-000003.pose.depth.tiff").unlink()
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "x.txt"), "--rendered-depth", str(rendered)]) == 2
    err = capsys.readouterr().err
    assert "missing file" in err and "seq01_frame-000003.pose.depth.tiff" in err and len(err.strip().splitlines()) == 1


def test_bad_inputs_get_one_line_errors(room: Path, built: Path, tmp_path: Path, capsys) -> None:
    fmap = FavorMap.load(built)
    rel = Relocalizer(fmap, QueryConfig())
    ds = SevenScenes(room, "room")
    img = ds.load_color(ds.frames("test")[0])
    with pytest.raises(InputError, match="query image q.png is 160x120, the map's camera is 320x240"):
        rel.localize(img[::2, ::2], "q.png")

    # a scene whose test images have another size: the error names the file
    other = tmp_path / "r2"
    shutil.copytree(room / "room", other / "room")
    frame = SevenScenes(other, "room").frames("test")[0]
    write_rgb(frame.color_path, read_rgb(frame.color_path)[::2, ::2])
    capsys.readouterr()
    assert main(["reloc", "query", "--map", str(built), "--root", str(other), "--scene", "room",
                 "--out", str(tmp_path / "p.txt")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "frame-000000.color.png is 160x120" in err and len(err.strip().splitlines()) == 1

    # a map from another scene (by name, and by training poses under the same name)
    shutil.copytree(room / "room", other / "kitchen")
    assert main(["reloc", "query", "--map", str(built), "--root", str(other), "--scene", "kitchen"]) == 2
    assert "was built for scene 'room', not 'kitchen'" in capsys.readouterr().err
    pose = SevenScenes(other, "room").frames("train")[3].pose_path
    M = np.loadtxt(pose)
    M[0, 3] += 0.5
    np.savetxt(pose, M)
    assert main(["reloc", "query", "--map", str(built), "--root", str(other), "--scene", "room"]) == 2
    assert "training poses" in capsys.readouterr().err

    # no test split
    (other / "kitchen" / "TestSplit.txt").unlink()
    fmap.meta["scene"] = "kitchen"
    fmap.save(tmp_path / "k.npz")
    assert main(["reloc", "query", "--map", str(tmp_path / "k.npz"), "--root", str(other), "--scene", "kitchen"]) == 2
    assert "has no test split" in capsys.readouterr().err

    # a damaged map file
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really")
    assert main(["reloc", "query", "--map", str(tmp_path / "bad.npz"), "--root", str(room), "--scene", "room"]) == 2
    assert "is not a readable FaVoR map" in capsys.readouterr().err


def test_diagnostics_bound_what_descriptors_can_win(room: Path, built: Path) -> None:
    """True correspondences (from the exact poses) are what the matches mostly consist of; PnP on them alone (the
    oracle) is at least about as accurate as the methods; the rendered descriptors agree with the query's at those
    points better than the landmarks' mean descriptors."""
    fmap = FavorMap.load(built)
    rel = Relocalizer(fmap, QueryConfig())
    ds = SevenScenes(room, "room")
    queries = [(rel.extractor(ds.load_color(f)), f.T_world_cam) for f in ds.frames("test")[::2]]
    t_favor, true_frac = [], []
    for dense, T in queries:
        ids, j, res = true_correspondences(rel, dense, T, radius_px=1.5)
        assert len(ids) > 100 and len(np.unique(j)) == len(j)  # one-to-one
        # FaVoR's matching at the true pose: most of its matches are true correspondences
        vis = rel.visible(T)
        m = match_mutual_nn(dense.features.descriptors, rel.landmark_descriptors(T, vis, "favor"), ratio=1.0,
                            min_score=0.7)  # fmt: skip
        ids3, j3, _ = true_correspondences(rel, dense, T, radius_px=3.0)
        truth = dict(zip(ids3.tolist(), j3.tolist(), strict=True))
        true_frac.append(np.mean([truth.get(int(vis[b])) == a for a, b in zip(m.idx0, m.idx1, strict=True)]))
    for f in ds.frames("test")[::2]:
        r = rel.localize(ds.load_color(f), f.name)
        t_favor.append(pose_errors(r.T_world_cam, f.T_world_cam)[0])
    diag = diagnose(rel, queries)
    t_oracle = diag["oracle"]["median_t_cm"] / 100
    assert diag["oracle"]["queries"] == len(queries)
    assert t_oracle <= 1.1 * np.median(t_favor) and t_oracle < 0.02
    assert np.mean(true_frac) > 0.7
    agree = diag["descriptor_agreement"]
    cos = agree["median_cosine"]
    assert agree["pairs"] > 300
    for m in ("favor", "baseline", "direction_linear"):
        assert 0.75 < cos[m] < 1.0
    # the affine-in-direction reference is the mean descriptor plus a view-dependent term: no worse than the mean
    assert cos["direction_linear"] >= cos["baseline"] - 0.002
    # rendering (grids trained on the rendered rays) predicts the query's descriptors from its new viewpoint better
    # than the mean does, and about as well as the direction-dependent reference (8 rooms: +0.003 .. +0.006)
    assert cos["favor"] > cos["baseline"]
    assert cos["favor"] >= cos["direction_linear"] - 0.005
    # how the test views differ from training: the test loop is nearer the room's centre, i.e. further from the walls
    # (the scale change FaVoR's direction-only renderer cannot model); the angle bins partition the pairs
    view = diag["view_change"]
    assert 1.15 < view["median_scale_change"] < 1.8 and 0.0 < view["median_angle_deg"] < 20.0
    assert sum(b["pairs"] for b in view["by_angle"]) == agree["pairs"]
    assert [b["angle_deg"] for b in view["by_angle"]] == [[0, 10], [10, 20], [20, 180]]
    # a training frame as query: its landmarks are seen from a training viewpoint, no view change
    train = ds.frames("train")[5]
    same = diagnose(rel, [(rel.extractor(ds.load_color(train)), train.T_world_cam)])["view_change"]
    assert same["median_angle_deg"] < 0.5 and abs(same["median_scale_change"] - 1.0) < 0.01
