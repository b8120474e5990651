"""`sparsepipe sim egohumans`: a subject with constant bones, unsynchronised cameras, truth in the EgoHumans layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from perception.datasets.egohumans import EgoHumans
from perception.datasets.keypoints2d import read_keypoints2d_dir
from perception.sim.scenarios.mocap import BONES, MocapSimConfig, bone_lengths, make_mocap, subject_joints


def test_bones_keep_their_length_through_every_activity() -> None:
    t = np.linspace(-5.0, 30.0, 3000)
    J = subject_joints(t, height=1.8)
    L = bone_lengths(1.8)
    for bone, pairs in BONES.items():
        for a, b in pairs:
            d = np.linalg.norm(J[:, a] - J[:, b], axis=1)
            assert np.allclose(d, L[bone], rtol=2e-3), bone
    assert J[:, 15:, 2].min() == pytest.approx(0.08)  # ankles on the floor (ankle height), never below
    # a pure function of time: any sub-range of times gives the same joints
    assert np.allclose(subject_joints(t[1000:1010], 1.8), J[1000:1010])


def test_noise_free_keypoints_are_projections_of_the_truth(tmp_path) -> None:
    truth = make_mocap(tmp_path, MocapSimConfig(cameras=3, seconds=4.0, noise="none"), seed=3)
    kp = read_keypoints2d_dir(tmp_path / "keypoints2d")
    ds = EgoHumans(tmp_path)
    meta = json.loads((tmp_path / "gt" / "mocap_gt.json").read_text())
    assert sorted(kp) == ds.cameras == ["cam01", "cam02", "cam03"]
    for name, k in kp.items():
        cam, T = ds.intrinsics(name), ds.T_world_cam(name)  # read back from colmap/workplace
        assert np.allclose(T.matrix(), truth["T_world_cam"][name].matrix(), atol=1e-6)
        t_world = k.timestamp_ns * 1e-9 - meta["time_offsets_s"][name]
        uv, _ = cam.project(T.inverse().act(subject_joints(t_world, 1.75, 1.5, truth["phase"]).reshape(-1, 3)))
        ok = k.confidence.reshape(-1) > 0
        assert ok.mean() > 0.9
        np.testing.assert_allclose(k.xy.reshape(-1, 2)[ok], uv[ok], atol=1e-3)
    frames, subjects = ds.load_poses3d_sequence()
    assert len(frames) == len(meta["gt_frame_times_s"]) > 40
    np.testing.assert_allclose(subjects["aria01"][:, :, :3], truth["joints"], atol=1e-9)


def test_realistic_noise_has_the_detector_artefacts(tmp_path) -> None:
    make_mocap(tmp_path, MocapSimConfig(cameras=2, seconds=10.0, noise="realistic"), seed=1)
    k = read_keypoints2d_dir(tmp_path / "keypoints2d")["cam01"]
    c = k.confidence
    assert 0.03 < np.mean(c == 0) < 0.2  # dropouts (and joints outside the image)
    assert 0.5 < np.median(c[c > 0]) < 0.98 and len(np.unique(np.round(c[c > 0], 3))) > 50
