"""Nodes from a Ray cluster: ``ray.nodes()`` entries as scheduler nodes, and the cached source
that lets joining and leaving nodes show up within a second."""

from __future__ import annotations

from typing import Any

import pytest

from aip.inventory.ray import RayNodeSource, node_from_ray, nodes_from_ray
from aip.scheduler.model import Gpu, Node

HEAD_ID = "090da35898c759d6164fa5aaa8f0b65df3c3269fdb2018d5bbe9554c"
WORKER_ID = "19f5e68a3c4bf8ca24de51d2d8b29eb23595476695f2e13d1f0601a8"
GPU_ID = "7a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5"


def ray_node(node_id: str, resources: dict[str, float], labels: dict[str, str] | None = None,
             *, alive: bool = True, ip: str = "10.0.0.1") -> dict[str, Any]:
    """A ``ray.nodes()`` entry as Ray 2.60 returns it (the fields AIP reads, and some not)."""
    return {
        "NodeID": node_id, "Alive": alive, "alive": alive, "NodeManagerAddress": ip,
        "NodeManagerHostname": f"host-{ip.rsplit('.', 1)[-1]}", "NodeManagerPort": 43979,
        "NodeName": ip, "DeathReason": 0 if alive else 1, "DeathReasonMessage": "",
        "Resources": resources,
        "Labels": {"ray.io/node-id": node_id, **(labels or {})},
    }


HEAD = ray_node(HEAD_ID, {
    "CPU": 8.0, "memory": 24756936704.0, "object_store_memory": 83886080.0,
    "node:__internal_head__": 1.0, "node:10.0.0.1": 1.0, "tpu": 4.0,
    "CPU_group_0_4f6c1a2b3c4d5e6f70819203a4b5c6d7": 1.0,
    "bundle_group_4f6c1a2b3c4d5e6f70819203a4b5c6d7": 1000.0,
}, {"aip.io/node-name": "node-a", "aip.io/rdma-domain": "pod-a"})
WORKER = ray_node(WORKER_ID, {"CPU": 2.0, "memory": 2**31, "object_store_memory": 8e7,
                              "node:10.0.0.2": 1.0}, {"aip.io/rdma-domain": "pod-b"},
                  ip="10.0.0.2")
GPU_WORKER = ray_node(GPU_ID, {"CPU": 16.0, "GPU": 2.0, "memory": 2**36,
                               "accelerator_type:A100-80G": 1.0, "FPGA": 1.0,
                               "node:10.0.0.3": 1.0}, ip="10.0.0.3")


def test_a_node_keeps_its_cpu_memory_custom_resources_and_labels() -> None:
    node = node_from_ray(HEAD)

    assert node == Node(
        name="node-a", cpu_milli=8000, memory_bytes=24756936704, gpus=(),
        accelerators={"tpu": 4},  # placement-group copies and node:* are Ray's own
        labels={"aip.io/node-name": "node-a", "aip.io/rdma-domain": "pod-a",
                "aip.dev/hostname": "host-1", "aip.dev/ray-node-id": HEAD_ID},
        address="10.0.0.1")


def test_gpus_take_their_model_from_the_accelerator_type_and_resources_are_lower_cased() -> None:
    node = node_from_ray(GPU_WORKER)

    assert node.gpus == (Gpu(0, "A100"), Gpu(1, "A100"))
    assert node.labels["aip.dev/gpu-type"] == "A100"
    assert node.accelerators == {"fpga": 1}


def test_a_gpu_without_an_accelerator_type_is_still_a_gpu() -> None:
    record = ray_node(GPU_ID, {"CPU": 4.0, "GPU": 1.0, "memory": 2**30})
    assert node_from_ray(record).gpus == (Gpu(0, "GPU"),)


def test_a_node_without_a_name_label_is_named_after_its_id() -> None:
    assert node_from_ray(WORKER).name == "ray-19f5e68a"


def test_an_invalid_name_label_falls_back_to_the_id() -> None:
    record = ray_node(WORKER_ID, {"CPU": 1.0}, {"aip.io/node-name": "Not A Name!"})
    assert node_from_ray(record).name == "ray-19f5e68a"


def test_dead_nodes_are_left_out_and_the_rest_sorted_by_name() -> None:
    dead = ray_node(GPU_ID, {"CPU": 1.0}, alive=False)
    assert [node.name for node in nodes_from_ray([WORKER, dead, HEAD])] == [
        "node-a", "ray-19f5e68a"]


def test_a_name_claimed_twice_goes_to_the_first_node() -> None:
    twin = ray_node(WORKER_ID, {"CPU": 1.0}, {"aip.io/node-name": "node-a"})
    assert [node.name for node in nodes_from_ray([HEAD, twin])] == [
        "node-a", "node-a-19f5e68a"]


@pytest.mark.parametrize(("resource", "amount"), [
    pytest.param("accelerator_type:T4", 1.0, id="gpu model marker"),
    pytest.param("node:10.0.0.9", 1.0, id="node ip marker"),
    pytest.param("GPU_group_2_0123456789abcdef0123", 1.0, id="placement group bundle"),
    pytest.param("tiny", 0.5, id="less than one device"),
    pytest.param("has space", 1.0, id="not a valid kind"),
])
def test_resources_that_are_not_accelerators(resource: str, amount: float) -> None:
    record = ray_node(WORKER_ID, {"CPU": 1.0, resource: amount})
    assert node_from_ray(record).accelerators == {}


class FakeRay:
    def __init__(self, *records: dict[str, Any]) -> None:
        self.records = list(records)
        self.calls = 0
        self.fail = False

    def nodes(self) -> list[dict[str, Any]]:
        self.calls += 1
        if self.fail:
            raise ConnectionError("GCS unreachable")
        return self.records


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_source_asks_ray_at_most_once_a_second() -> None:
    ray, clock = FakeRay(HEAD), Clock()
    source = RayNodeSource(ray.nodes, clock=clock)

    assert [node.name for node in source()] == ["node-a"]
    source()
    clock.now += 0.5
    source()
    assert ray.calls == 1
    clock.now += 0.6
    ray.records.append(WORKER)  # a node joined
    assert [node.name for node in source()] == ["node-a", "ray-19f5e68a"]
    assert ray.calls == 2


def test_a_node_that_leaves_disappears_and_has_no_id_any_more() -> None:
    ray, clock = FakeRay(HEAD, WORKER), Clock()
    source = RayNodeSource(ray.nodes, clock=clock)
    assert source.node_id("ray-19f5e68a") == WORKER_ID
    assert source.is_alive(WORKER_ID)

    ray.records[1] = {**WORKER, "Alive": False, "alive": False}

    assert source.is_alive(WORKER_ID)  # still the cached list
    assert not source.is_alive(WORKER_ID, max_age=0)  # asked afresh
    assert source.node_id("ray-19f5e68a") is None
    assert [node.name for node in source()] == ["node-a"]


def test_a_failed_refresh_keeps_the_last_known_nodes() -> None:
    ray, clock = FakeRay(HEAD), Clock()
    source = RayNodeSource(ray.nodes, clock=clock)
    source()
    ray.fail = True
    clock.now += 5

    assert [node.name for node in source()] == ["node-a"]
