"""Choosing the Ray backend: the config file, AIP_* settings and their precedence, and what a
user sees when Ray is missing. No Ray cluster here: the connection is replaced."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from aip.config import Settings
from aip.control.platform import Platform, PlatformConfig
from aip.errors import AIPError, InvalidSpec
from aip.executor import ray as ray_backend
from aip.executor.local import LocalExecutor
from aip.executor.ray import RayCluster, RayExecutor

NODE_ID = "19f5e68a3c4bf8ca24de51d2d8b29eb23595476695f2e13d1f0601a8"
RAY_NODES = [{"NodeID": NODE_ID, "Alive": True, "NodeManagerAddress": "10.0.0.2",
              "Resources": {"CPU": 4.0, "memory": 2.0**33, "tpu": 4.0}, "Labels": {}}]


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the addresses ``RayCluster.connect`` is asked for, instead of connecting."""
    addresses: list[str] = []

    def connect(self: RayCluster) -> RayCluster:
        addresses.append(self.address)
        return self

    monkeypatch.setattr(RayCluster, "connect", connect)
    monkeypatch.setattr(RayCluster, "_list_nodes", staticmethod(lambda: RAY_NODES))
    monkeypatch.setattr(RayCluster, "close", lambda self: None)
    return addresses


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(home=tmp_path / "home", **values)


def write_config(tmp_path: Path, text: str) -> PlatformConfig:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return PlatformConfig.load(path)


def test_the_config_file_chooses_ray_and_the_nodes_come_from_the_cluster(
        tmp_path: Path, connections: list[str]) -> None:
    config = write_config(tmp_path, "server: {backend: ray, ray_address: '10.0.0.1:6379'}\n")
    platform = Platform.from_settings(settings(tmp_path), config)
    try:
        assert isinstance(platform.executor, RayExecutor)
        assert connections == ["10.0.0.1:6379"]
        assert [(node.name, node.accelerators) for node in platform.nodes()] == [
            ("ray-19f5e68a", {"tpu": 4})]
    finally:
        platform.close()


def test_settings_override_the_config_file(tmp_path: Path, connections: list[str]) -> None:
    config = write_config(tmp_path, "server: {backend: local, ray_address: '10.0.0.1:6379'}\n")
    platform = Platform.from_settings(
        settings(tmp_path, backend="ray", ray_address="10.9.9.9:6379"), config)
    platform.close()
    assert connections == ["10.9.9.9:6379"]


def test_without_an_address_ray_finds_the_cluster_on_this_host(
        tmp_path: Path, connections: list[str]) -> None:
    Platform.from_settings(settings(tmp_path, backend="ray"), PlatformConfig()).close()
    assert connections == ["auto"]


def test_the_local_backend_stays_the_default(tmp_path: Path, connections: list[str]) -> None:
    config = write_config(tmp_path, "nodes: [{name: a, cpu: 2, memory: 1Gi}]\n")
    platform = Platform.from_settings(settings(tmp_path), config)
    platform.close()
    assert isinstance(platform.executor, LocalExecutor)
    assert [node.name for node in platform.nodes()] == ["a"]
    assert connections == []


def test_an_unknown_backend_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec) as caught:
        write_config(tmp_path, "server: {backend: kubernetes}\n")
    assert "server.backend" in caught.value.fields


def test_a_missing_ray_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(AIPError, match=r"pip install 'aip\[bench\]'"):
        RayCluster("10.0.0.1:6379").connect()
    assert ray_backend.INSTALL_HINT.startswith("the ray backend needs Ray")


def test_the_config_blocks_of_the_ray_page_are_valid(tmp_path: Path) -> None:
    page = Path(__file__).parents[3] / "docs" / "ray.md"
    blocks = re.findall(r"```yaml\n(.*?)```", page.read_text(), re.DOTALL)
    assert blocks
    for block in blocks:
        assert write_config(tmp_path, block).server.backend == "ray"
