"""`sparsepipe doctor`: passes on this machine, fails loudly when something required is broken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import apps.doctor as doctor
from apps.cli import main


def test_doctor_passes_and_writes_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["doctor", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "doctor.json").read_text())
    assert report["ok"] is True
    names = {c["name"]: c for c in report["checks"]}
    for required in (
        "import gtsam",
        "import open3d",
        "import spconv",
        "spconv CPU self-test",
        "rerun viewer binary",
    ):
        assert names[required]["ok"], names[required]
    assert names["import torch"]["version"].startswith("2.13.0")
    assert "rel err" in names["spconv CPU self-test"]["detail"]
    assert (tmp_path / "config.yaml").is_file()
    assert "all required checks passed" in capsys.readouterr().out


def test_doctor_fails_when_a_required_dependency_is_missing(tmp_path: Path, monkeypatch) -> None:
    broken = doctor.DEPENDENCIES + (("sparsepipe_no_such_module", "nope", True, "test"),)
    monkeypatch.setattr(doctor, "DEPENDENCIES", broken)
    assert main(["doctor", "--out", str(tmp_path), "--no-self-tests"]) == 1
    report = json.loads((tmp_path / "doctor.json").read_text())
    bad = [c for c in report["checks"] if c["name"] == "import sparsepipe_no_such_module"][0]
    assert report["ok"] is False and bad["ok"] is False and "ModuleNotFoundError" in bad["detail"]


def test_spconv_selftest_detects_a_wrong_convolution(monkeypatch) -> None:
    """The self-test compares against dense conv3d, so a broken sparse conv must fail it."""
    import spconv.pytorch as spconv

    real = spconv.SubMConv3d.forward

    def wrong(self, x):
        y = real(self, x)
        return y.replace_feature(y.features * 1.01)

    monkeypatch.setattr(spconv.SubMConv3d, "forward", wrong)
    with pytest.raises(RuntimeError, match="differs from dense conv3d"):
        doctor.spconv_cpu_selftest()
