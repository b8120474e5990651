"""ROS 2 YAML launch files: args and overrides, groups and namespaces, includes, substitutions, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.nodes.launch import NodeSpec, join_ns, load_launch, parse_overrides
from perception.errors import InputError

MAIN = """%YAML 1.2
---
launch:
- arg: {name: robot, default: ugv1}
- arg: {name: rate, default: "1.0"}
- group:
  - push_ros_namespace: {namespace: "$(var robot)"}
  - node:
      pkg: sparsepipe
      exec: ugv_frontend
      name: frontend
      namespace: front
      respawn: "true"
      respawn_delay: 0.5
      param:
      - {name: rate, value: "$(var rate)"}
      - {name: window, value: 10}
      - {name: data, value: "$(dirname)/data"}
      remap:
      - {from: image, to: "/$(var robot)/camera/image_raw"}
- include:
    file: "$(dirname)/sub/uav.yaml"
    arg: [{name: uav, value: "uav_$(var robot)"}]
- node: {pkg: sparsepipe, exec: recorder, param: [{name: home, value: "$(env SP_TEST_HOME /tmp)"}]}
"""

UAV = """launch:
- arg: {name: uav}
- arg: {name: budget, default: "300000"}
- group:
  - push-ros-namespace: {namespace: "$(var uav)"}
  - node: {pkg: sparsepipe, exec: uav_frontend, name: frontend, required: true,
           param: [{name: budget, value: "$(var budget)"}]}
"""


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "sub").mkdir()
    (tmp_path / "main.yaml").write_text(MAIN)
    (tmp_path / "sub" / "uav.yaml").write_text(UAV)
    return tmp_path


def test_resolves_namespaces_args_includes_and_substitutions(files: Path, monkeypatch) -> None:
    monkeypatch.delenv("SP_TEST_HOME", raising=False)
    nodes = load_launch(files / "main.yaml", {"robot": "ugv2"})
    by = {n.fqn: n for n in nodes}
    assert list(by) == ["/ugv2/front/frontend", "/uav_ugv2/frontend", "/recorder"]
    f = by["/ugv2/front/frontend"]
    assert f.exec == "ugv_frontend" and f.respawn and f.respawn_delay == 0.5 and not f.required
    assert f.params == {"rate": "1.0", "window": 10, "data": f"{(files).resolve()}/data"}
    assert f.remaps == [("image", "/ugv2/camera/image_raw")]
    u = by["/uav_ugv2/frontend"]
    assert u.required and u.params == {"budget": "300000"} and u.source.startswith("uav.yaml:")
    assert by["/recorder"].params == {"home": "/tmp"} and by["/recorder"].name == "recorder"
    monkeypatch.setenv("SP_TEST_HOME", "/data")
    assert load_launch(files / "main.yaml")[2].params == {"home": "/data"}
    assert load_launch(files / "main.yaml")[0].fqn == "/ugv1/front/frontend"  # default arg
    assert NodeSpec.from_dict(f.to_dict()) == f


def test_join_ns_and_overrides() -> None:
    assert join_ns("/", "uav", "front") == "/uav/front"
    assert join_ns("/uav", "/abs", "x") == "/abs/x"
    assert join_ns("", "") == "/"
    assert parse_overrides(["a:=1", "b:=x:=y"]) == {"a": "1", "b": "x:=y"}
    with pytest.raises(InputError, match="expected NAME:=VALUE"):
        parse_overrides(["a=1"])


@pytest.mark.parametrize(
    "text, message",
    [
        ("launch:\n- node: {pkg: p, exec: e, nmae: x}\n", r"bad\.yaml: launch\[0\]: unknown node key\(s\) \['nmae'\]"),
        ("launch:\n- node: {pkg: p}\n", r"bad\.yaml: launch\[0\]: node needs 'exec'"),
        ("launch:\n- node: {pkg: p, exec: e, param: [{name: a, value: '$(var nope)'}]}\n",
         r"\$\(var nope\) is not a declared arg"),
        ("launch:\n- arg: {name: x}\n", r"arg 'x' has no default; pass x:=VALUE"),
        ("launch:\n- timer: {period: 1}\n", r"unknown entry 'timer'"),
        ("launch:\n- node: {pkg: p, exec: e, param: [{name: a, value: '$(find-pkg-share x)'}]}\n",
         r"unsupported substitution \$\(find-pkg-share"),
        ("launch:\n- node: {pkg: p, exec: e, respawn: maybe}\n", r"respawn: expected true/false"),
        ("launch:\n- node: {pkg: p, exec: e}\n- node: {pkg: p, exec: e}\n", r"two nodes named /e"),
        ("nodes: []\n", r"expected a top-level 'launch:' list"),
        ("launch: [\n", r"bad\.yaml: not valid YAML at line"),
        ("launch:\n- include: {file: bad.yaml}\n", r"nested more than 16 deep"),
    ],
)  # fmt: skip
def test_errors_are_one_line_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(InputError, match=message) as e:
        load_launch(tmp_path / "bad.yaml")
    assert "\n" not in str(e.value)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.yaml does not exist"):
        load_launch(tmp_path / "nope.yaml")
    (tmp_path / "a.yaml").write_text("launch:\n- include: {file: gone.yaml}\n")
    with pytest.raises(FileNotFoundError, match="gone.yaml does not exist"):
        load_launch(tmp_path / "a.yaml")
