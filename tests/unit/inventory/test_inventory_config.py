"""The inventory section of the config file: parsing, errors a person can act on, and the
scheduler nodes built from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aip.errors import InvalidSpec
from aip.inventory.config import (
    GpuDeclaration,
    InventoryConfig,
    build_nodes,
    load_inventory_file,
)
from aip.inventory.detect import HostFacts
from aip.scheduler.model import Gpu, Node

HOST = HostFacts(hostname="Build-Box", cpu_count=16, memory_bytes=64 * 2**30,
                 gpus=(Gpu(0, "A10", 23028), Gpu(1, "A10", 23028)))
HOST_WITHOUT_GPUS = HostFacts(hostname="laptop", cpu_count=8, memory_bytes=16 * 2**30)


def parse(data: dict[str, Any]) -> InventoryConfig:
    return InventoryConfig.from_config_mapping(data)


def errors_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidSpec) as caught:
        parse(data)
    return caught.value.fields


# -- parsing --------------------------------------------------------------------------------


def test_gpus_as_a_count_of_one_model() -> None:
    config = parse({"node": {"gpus": {"count": 4, "model": "T4", "memory": "16Gi"}}})

    assert config.node is not None
    assert config.node.gpus == GpuDeclaration(count=4, model="T4", memory=16 * 2**30)


def test_gpus_as_a_list_of_models() -> None:
    config = parse({"nodes": [{"name": "node-a", "gpus": ["T4", "T4", "V100M32"]}]})

    assert config.nodes is not None
    assert config.nodes[0].gpus == ["T4", "T4", "V100M32"]


def test_other_sections_of_the_config_file_are_not_ours() -> None:
    config = parse({"server": {"port": 8080}, "node": {"name": "box"}})

    assert config.node is not None and config.node.name == "box"


@pytest.mark.parametrize(("data", "expected"), [
    pytest.param({"node": {"lables": {"zone": "a"}}},
                 {"node.lables": "unknown field 'lables'; did you mean 'labels'?"},
                 id="a misspelt key gets a suggestion"),
    pytest.param({"nodes": [{"name": "a", "gpus": {"cout": 2, "model": "T4"}}]},
                 {"nodes.0.gpus.cout": "unknown field 'cout'; did you mean 'count'?",
                  "nodes.0.gpus.count": "is required"},
                 id="also inside the gpus declaration"),
    pytest.param({"nodez": [{"name": "a"}]},
                 {"nodez": "unknown field 'nodez'; did you mean 'nodes'?"},
                 id="a near miss of a top-level inventory key"),
    pytest.param({"nod": {"name": "a"}},
                 {"nod": "unknown field 'nod'; did you mean 'node'?"},
                 id="a near miss of 'node', told apart from 'nodes' by its mapping"),
    pytest.param({"nodes": [{"name": "a"}, {"name": "b"}, {"name": "a"}]},
                 {"nodes.2.name": "node name 'a' is already used by nodes.0; "
                                  "node names must be unique"},
                 id="duplicate node names point at the second one"),
    pytest.param({"nodes": [{"name": "a"}, {"name": "b", "gpus": {"count": -1, "model": "T4"}}]},
                 {"nodes.1.gpus.count": "must be > 0"},
                 id="a negative GPU count"),
    pytest.param({"node": {"accelerators": {"tpu": -4}}},
                 {"node.accelerators": "accelerator 'tpu': count must be > 0 (remove it instead)"},
                 id="a negative accelerator count"),
    pytest.param({"node": {"cpu": -2, "memory": "lots"}},
                 {"node.cpu": "must be > 0",
                  "node.memory": "cannot read memory size 'lots': use e.g. 512Mi, 16Gi or 2G"},
                 id="cpu and memory"),
    pytest.param({"nodes": [{"name": "a", "gpus": ["T4", "Tesla T4"]}]},
                 {"nodes.0.gpus.1": "GPU model 'Tesla T4' must be letters, digits, '.', '-' or "
                                    "'_' with no spaces, e.g. T4 or V100M32"},
                 id="a GPU model with a space"),
    pytest.param({"nodes": [{"name": "a", "gpus": 4}]},
                 {"nodes.0.gpus": "must be {count, model, memory} or a list of models such as "
                                  "[T4, T4]"},
                 id="gpus in neither form"),
    pytest.param({"nodes": [{"cpu": 4}]}, {"nodes.0.name": "is required"},
                 id="a virtual node needs a name"),
    pytest.param({"nodes": []},
                 {"nodes": "lists no node; remove 'nodes' to use this host as the only node"},
                 id="an empty node list"),
    pytest.param({"node": {"labels": {"aip.dev/gpu-type": "H100"}}},
                 {"node.labels": "label 'aip.dev/gpu-type': labels under aip.dev/ are set by "
                                 "AIP; choose another name"},
                 id="AIP's own labels cannot be declared"),
])
def test_mistakes_name_their_field(data: dict[str, Any], expected: dict[str, str]) -> None:
    assert errors_of(data) == expected


def test_node_and_nodes_cannot_be_combined() -> None:
    fields = errors_of({"node": {"name": "box"}, "nodes": [{"name": "a"}]})

    assert list(fields) == ["node"]
    assert "cannot be combined with 'nodes'" in fields["node"]


# -- the config file ------------------------------------------------------------------------


def test_a_config_file_with_other_sections(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("server:\n  port: 8080\nnode:\n  name: my-box\n"
                    "  gpus: {count: 2, model: T4}\n")

    config = load_inventory_file(path)

    assert config == InventoryConfig.from_config_mapping(
        {"node": {"name": "my-box", "gpus": {"count": 2, "model": "T4"}}})


def test_a_mistake_in_the_file_names_file_field_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("server: {}\nnodes:\n  - name: a\n"
                    "  - name: b\n    gpus: {count: 0, model: T4}\n")

    with pytest.raises(InvalidSpec) as caught:
        load_inventory_file(path)

    assert caught.value.fields == {"nodes.1.gpus.count": "must be > 0 (line 5)"}
    assert str(path) in caught.value.message


def test_malformed_yaml_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("node:\n  name: [unclosed\n")

    with pytest.raises(InvalidSpec, match=r"not valid YAML at line \d+, column \d+"):
        load_inventory_file(path)


def test_a_near_miss_key_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("nodse:\n  - name: a\n")

    with pytest.raises(InvalidSpec) as caught:
        load_inventory_file(path)

    assert caught.value.fields == {"nodse": "unknown field 'nodse'; did you mean 'nodes'?"}


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_an_empty_file_means_defaults(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)

    assert load_inventory_file(path) == InventoryConfig()


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match=r"cannot read config file .*missing\.yaml"):
        load_inventory_file(tmp_path / "missing.yaml")


# -- nodes ----------------------------------------------------------------------------------


def test_without_inventory_the_only_node_is_this_host_as_detected() -> None:
    assert build_nodes(InventoryConfig(), HOST) == [Node(
        name="build-box", cpu_milli=16000, memory_bytes=64 * 2**30, gpus=HOST.gpus,
        labels={"aip.dev/hostname": "Build-Box", "aip.dev/gpu-type": "A10"})]


def test_the_local_node_with_declared_extras_and_overrides() -> None:
    config = parse({"node": {
        "name": "my-box", "labels": {"zone": "a"}, "accelerators": {"FPGA": 1, "tpu": 4},
        "gpus": {"count": 2, "model": "T4", "memory": "16Gi"}, "cpu": "7500m", "memory": "32Gi"}})

    [node] = build_nodes(config, HOST)

    assert node == Node(
        name="my-box", cpu_milli=7500, memory_bytes=32 * 2**30,
        gpus=(Gpu(0, "T4", 16384), Gpu(1, "T4", 16384)),
        accelerators={"fpga": 1, "tpu": 4},
        labels={"zone": "a", "aip.dev/hostname": "Build-Box", "aip.dev/gpu-type": "T4"})


def test_an_empty_gpu_list_hides_detected_gpus() -> None:
    [node] = build_nodes(parse({"node": {"gpus": []}}), HOST)

    assert node.gpus == ()
    assert "aip.dev/gpu-type" not in node.labels


def test_virtual_nodes_default_to_the_hosts_cpu_and_memory() -> None:
    config = parse({"nodes": [
        {"name": "node-a", "cpu": 8, "memory": "32Gi", "gpus": {"count": 2, "model": "V100M32"},
         "accelerators": {"tpu": 4}, "labels": {"rdma-domain": "r1"}},
        {"name": "node-b", "gpus": ["T4", "V100M32", "T4"]},
        {"name": "node-c"},
    ]})

    nodes = build_nodes(config, HOST)

    assert nodes == [
        Node(name="node-a", cpu_milli=8000, memory_bytes=32 * 2**30,
             gpus=(Gpu(0, "V100M32"), Gpu(1, "V100M32")), accelerators={"tpu": 4},
             labels={"rdma-domain": "r1", "aip.dev/hostname": "Build-Box",
                     "aip.dev/gpu-type": "V100M32"}),
        Node(name="node-b", cpu_milli=16000, memory_bytes=64 * 2**30,
             gpus=(Gpu(0, "T4"), Gpu(1, "V100M32"), Gpu(2, "T4")),
             labels={"aip.dev/hostname": "Build-Box", "aip.dev/gpu-type": "T4,V100M32"}),
        Node(name="node-c", cpu_milli=16000, memory_bytes=64 * 2**30,
             labels={"aip.dev/hostname": "Build-Box"}),
    ]


def test_virtual_nodes_do_not_inherit_the_hosts_gpus() -> None:
    [node] = build_nodes(parse({"nodes": [{"name": "cpu-only"}]}), HOST)

    assert node.gpus == ()


def test_build_nodes_detects_this_host_when_not_given_one() -> None:
    [node] = build_nodes(InventoryConfig())

    assert node.cpu_milli > 0 and node.memory_bytes > 0
    assert node.labels["aip.dev/hostname"]
