"""The CLI shell: help, config files, resolved-config round trip, one-line errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from apps.cli import COMMANDS, main
from apps.config import CommonConfig, PipelineConfig, load_config_file, parse_config, save_resolved_config
from perception.errors import InputError


@dataclass
class Inner:
    k: int = 1
    name: str = "x"


@dataclass
class ToyConfig(PipelineConfig):
    inner_custom: Inner = field(default_factory=lambda: Inner(k=5, name="custom"))
    out: Path = Path("out/toy")
    """Output folder."""
    steps: int = 10
    """Number of steps."""
    rate: float = 0.5
    mode: Literal["fast", "exact"] = "fast"
    sizes: tuple[int, ...] = (1, 2)
    inner: Inner = field(default_factory=Inner)
    weights: Path | None = None


def test_defaults_file_and_flags_priority(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("steps: 42\nrate: 2\nmode: exact\ninner: {k: 7}\nsizes: [3, 4, 5]\ninner_custom: {k: 6}\n")
    cfg = parse_config(ToyConfig, ["--config", str(cfg_file), "--rate", "0.25"], "toy", "toy")
    assert cfg.steps == 42  # from the file
    assert cfg.rate == 0.25  # flag beats file
    assert cfg.mode == "exact" and cfg.inner.k == 7 and cfg.inner.name == "x"
    assert cfg.sizes == (3, 4, 5)
    # a partial nested mapping keeps the config's own nested defaults, not the nested class's
    assert cfg.inner_custom == Inner(k=6, name="custom")
    assert isinstance(cfg.rate, float)


def test_resolved_config_round_trip(tmp_path: Path) -> None:
    cfg = ToyConfig(out=tmp_path / "o", steps=3, mode="exact", weights=tmp_path / "w.pt", seed=9)
    path = save_resolved_config(cfg, "toy")
    assert path == tmp_path / "o" / "config.yaml"
    data = yaml.safe_load(path.read_text())
    assert data["steps"] == 3 and data["out"] == str(tmp_path / "o") and "config" not in data
    again = load_config_file(ToyConfig, path)
    assert again == cfg
    assert not list((tmp_path / "o").glob(".*partial*"))


def test_config_errors_name_file_and_option(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("stepz: 3\n")
    with pytest.raises(InputError, match=r"bad\.yaml.*unknown option.*stepz"):
        load_config_file(ToyConfig, bad)
    bad.write_text("mode: slow\n")
    with pytest.raises(InputError, match=r"mode.*'slow' is not one of"):
        load_config_file(ToyConfig, bad)
    bad.write_text("steps: [1, 2\n")
    with pytest.raises(InputError, match=r"bad\.yaml: not valid YAML"):
        load_config_file(ToyConfig, bad)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config_file(ToyConfig, tmp_path / "missing.yaml")


def test_help_lists_subcommands(capsys: pytest.CaptureFixture) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for c in COMMANDS:
        assert c.name in out
    with pytest.raises(SystemExit) as e:
        main(["demo", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--out", "--seed", "--config", "--rerun", "--tiny", "--scenario.uav-altitude", "--options.loop.top-k"):
        assert flag in out
    assert "(default: out/demo)" in out.replace("\n", " ").replace("│", " ").replace("  ", " ")


def test_unknown_command_and_bad_config_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown command 'frobnicate'" in err
    assert main(["doctor", "--config", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope.yaml does not exist" in err


def test_common_fields_everywhere() -> None:
    import importlib

    for c in COMMANDS:
        mod, cls, fn = c.target.split(":")
        module = importlib.import_module(mod)
        cfg_cls = getattr(module, cls)
        assert issubclass(cfg_cls, CommonConfig), c.name
        assert callable(getattr(module, fn))
