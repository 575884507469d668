"""Loaders: the openb columns as the scheduler sees them, and bad input named by file, line
and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from aip.errors import InvalidSpec
from aip.sim.openb import MIB, evenly_spaced, gpu_capacity_milli, load_nodes, load_tasks
from tests.unit.sim.builders import TINY_NODES, TINY_PODS, node

POD_HEADER = ("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
              "creation_time,deletion_time,scheduled_time")


def write(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_nodes_carry_cpu_memory_and_gpus_of_their_model() -> None:
    nodes = load_nodes(TINY_NODES)
    assert [n.name for n in nodes] == ["tiny-node-0", "tiny-node-1", "tiny-node-2"]
    assert nodes[0].cpu_milli == 32000
    assert nodes[0].memory_bytes == 131072 * MIB
    assert [gpu.model for gpu in nodes[0].gpus] == ["T4", "T4"]
    assert nodes[0].labels == {"aip.dev/gpu-type": "T4"}
    assert nodes[2].gpus == ()
    assert gpu_capacity_milli(nodes) == 3000


def test_tasks_turn_num_gpu_and_gpu_milli_into_one_milli_request() -> None:
    tasks = {t.name: t for t in load_tasks(TINY_PODS)}
    assert tasks["tiny-pod-0"].request.gpu_milli == 1000  # one whole GPU
    assert tasks["tiny-pod-1"].request.gpu_milli == 500  # a share of one GPU
    assert tasks["tiny-pod-3"].request.gpu_milli == 2000  # two whole GPUs
    assert tasks["tiny-pod-4"].request.gpu_milli == 0  # CPU-only: CPU and memory only
    assert tasks["tiny-pod-4"].request.cpu_milli == 1000
    assert tasks["tiny-pod-4"].request.memory_bytes == 2048 * MIB


def test_gpu_spec_lists_the_allowed_models() -> None:
    tasks = {t.name: t for t in load_tasks(TINY_PODS)}
    assert tasks["tiny-pod-5"].request.gpu_types == {"V100M16", "V100M32"}
    assert tasks["tiny-pod-2"].request.gpu_types == {"T4"}
    assert tasks["tiny-pod-0"].request.gpu_types == frozenset()


def test_times_and_qos_are_kept_and_a_pending_pod_has_no_scheduled_time() -> None:
    tasks = {t.name: t for t in load_tasks(TINY_PODS)}
    pod = tasks["tiny-pod-1"]
    assert (pod.creation_time, pod.deletion_time, pod.scheduled_time, pod.qos) == \
        (10, 500, 12, "BE")
    assert tasks["tiny-pod-5"].scheduled_time is None


def test_columns_may_come_in_any_order_and_optional_ones_may_be_missing(tmp_path: Path) -> None:
    path = write(tmp_path, "pods.csv", "gpu_milli,num_gpu,name,memory_mib,cpu_milli",
                 "300,1,p,1024,500")
    [only] = load_tasks(path)
    assert (only.name, only.request.gpu_milli, only.creation_time) == ("p", 300, None)


@pytest.mark.parametrize(("lines", "where", "says"), [
    pytest.param([POD_HEADER + ",priority", "p,1,1,0,0,,BE,Running,0,1,0,5"],
                 "line 1, column 12 (priority)", "unknown column 'priority'",
                 id="an unknown column is named with its position"),
    pytest.param([POD_HEADER, "p,1,1,0,0,,BE,Running,0,1,0", "q,2,2,one,0,,BE,Running,0,1,0"],
                 "line 3, column 4 (num_gpu)", "expected a whole number, not 'one'",
                 id="a malformed value names its line and column"),
    pytest.param([POD_HEADER, "p,1,1,0,0,,BE,Running,0,1"],
                 "line 2, column 11 (row)", "expected 11 values, found 10",
                 id="a short row names the first missing column"),
    pytest.param([POD_HEADER, "p,1,1,1,0,,BE,Running,0,1,0"],
                 "line 2, column 5 (gpu_milli)", "gpu_milli in 1..1000",
                 id="a one-GPU pod needs a share"),
    pytest.param([POD_HEADER, "p,-5,1,0,0,,BE,Running,0,1,0"],
                 "line 2, column 2 (cpu_milli)", "must be >= 0",
                 id="negative CPU"),
    pytest.param(["name,cpu_milli,memory_mib,num_gpu", "p,1,1,0"],
                 "line 1, column 5 (gpu_milli)", "missing column 'gpu_milli'",
                 id="a required column is missing"),
])
def test_bad_pod_lists_name_file_line_and_column(tmp_path: Path, lines: list[str], where: str,
                                                 says: str) -> None:
    path = write(tmp_path, "bad_pods.csv", *lines)
    with pytest.raises(InvalidSpec) as caught:
        load_tasks(path)
    assert f"{path}, {where}" in str(caught.value)
    assert says in str(caught.value)


def test_bad_node_lists_name_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "bad_nodes.csv", "sn,cpu_milli,memory_mib,gpu,model",
                 "n0,1000,1024,2,T4", "n1,1000,1024,2,")
    with pytest.raises(InvalidSpec, match=r"bad_nodes.csv, line 3, column 5 \(model\): a node "
                       r"with 2 GPUs needs its GPU model"):
        load_nodes(path)
    unknown = write(tmp_path, "nodes2.csv", "sn,cpu,memory_mib,gpu,model")
    with pytest.raises(InvalidSpec, match=r"line 1, column 2 \(cpu\): unknown column 'cpu'"):
        load_nodes(unknown)


def test_an_empty_or_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match="the file is empty"):
        load_nodes(write(tmp_path, "empty.csv", ""))
    with pytest.raises(InvalidSpec, match="cannot read"):
        load_tasks(tmp_path / "absent.csv")


def test_evenly_spaced_keeps_the_mix_of_a_node_list() -> None:
    nodes = [node(f"n{i}", model="T4" if i % 2 else "G2") for i in range(10)]
    half = evenly_spaced(nodes, 0.5)
    assert [n.name for n in half] == ["n0", "n2", "n4", "n6", "n8"]
    assert [n.name for n in evenly_spaced(nodes, 0.01)] == ["n0"]
    assert evenly_spaced(nodes, 1.0) == nodes
    with pytest.raises(InvalidSpec):
        evenly_spaced(nodes, 0)
