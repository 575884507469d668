"""Loaders for Alibaba PAI's GPU cluster trace (openb, ``cluster-trace-gpu-v2023``).

    nodes = load_nodes("openb_node_list_gpu_node.csv")   # 1,213 nodes, 6,212 GPUs
    tasks = load_tasks("openb_pod_list_default.csv")     # 8,152 tasks

Node columns: ``sn, cpu_milli, memory_mib, gpu, model``. Task columns: ``name, cpu_milli,
memory_mib, num_gpu, gpu_milli, gpu_spec, qos, pod_phase, creation_time, deletion_time,
scheduled_time``. ``num_gpu`` = 1 with ``gpu_milli`` < 1000 is a share of one GPU;
``gpu_spec`` lists the allowed GPU models separated by ``|`` (empty: any); CPU-only tasks
(``num_gpu`` = 0) count against CPU and memory only.

A malformed row or an unknown column raises ``InvalidSpec`` naming the file, line and column.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from aip.errors import InvalidSpec
from aip.scheduler.model import MILLI_PER_GPU, Gpu, Node, ReplicaRequest

MIB = 2**20
NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
TASK_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec", "qos",
                "pod_phase", "creation_time", "deletion_time", "scheduled_time")
TASK_REQUIRED = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")


@dataclass(frozen=True, slots=True)
class Task:
    """One pod of the trace, as the scheduler sees it, plus its lifetime."""

    name: str
    request: ReplicaRequest
    creation_time: int | None = None
    deletion_time: int | None = None
    qos: str = ""
    scheduled_time: int | None = None  # when the production scheduler placed it (None: never)

    @property
    def gpu_milli(self) -> int:
        return self.request.gpu_milli


def load_nodes(path: str | Path) -> list[Node]:
    nodes = []
    for line, row, column_of in _rows(Path(path), NODE_COLUMNS, NODE_COLUMNS):
        gpus = _int(row, "gpu", line, column_of, path, minimum=0)
        model = (row.get("model") or "").strip()
        if gpus and not model:
            raise _error(path, line, column_of("model"), "model",
                         f"a node with {gpus} GPUs needs its GPU model")
        nodes.append(Node(
            name=_text(row, "sn", line, column_of, path),
            cpu_milli=_int(row, "cpu_milli", line, column_of, path, minimum=0),
            memory_bytes=_int(row, "memory_mib", line, column_of, path, minimum=0) * MIB,
            gpus=tuple(Gpu(index=i, model=model) for i in range(gpus)),
            labels={"aip.dev/gpu-type": model} if gpus else {}))
    return nodes


def load_tasks(path: str | Path) -> list[Task]:
    tasks = []
    for line, row, column_of in _rows(Path(path), TASK_COLUMNS, TASK_REQUIRED):
        num_gpu = _int(row, "num_gpu", line, column_of, path, minimum=0)
        gpu_milli = _int(row, "gpu_milli", line, column_of, path, minimum=0)
        if num_gpu == 1 and not 0 < gpu_milli <= MILLI_PER_GPU:
            raise _error(path, line, column_of("gpu_milli"), "gpu_milli",
                         f"a one-GPU task needs gpu_milli in 1..1000, not {gpu_milli}")
        total = 0 if num_gpu == 0 else gpu_milli if num_gpu == 1 else num_gpu * MILLI_PER_GPU
        spec = (row.get("gpu_spec") or "").strip()
        tasks.append(Task(
            name=_text(row, "name", line, column_of, path),
            request=ReplicaRequest(
                cpu_milli=_int(row, "cpu_milli", line, column_of, path, minimum=0),
                memory_bytes=_int(row, "memory_mib", line, column_of, path, minimum=0) * MIB,
                gpu_milli=total,
                gpu_types=frozenset(m.strip() for m in spec.split("|") if m.strip())
                if total else frozenset()),
            creation_time=_optional_int(row, "creation_time", line, column_of, path),
            deletion_time=_optional_int(row, "deletion_time", line, column_of, path),
            qos=(row.get("qos") or "").strip(),
            scheduled_time=_optional_int(row, "scheduled_time", line, column_of, path)))
    return tasks


def gpu_capacity_milli(nodes: list[Node]) -> int:
    return sum(len(node.gpus) for node in nodes) * MILLI_PER_GPU


def evenly_spaced(nodes: list[Node], fraction: float) -> list[Node]:
    """About ``fraction`` of ``nodes``, evenly spaced through the list (at least one), so a
    smaller cluster keeps the node list's mix of machines."""
    if not 0 < fraction <= 1:
        raise InvalidSpec(f"node fraction must be in (0, 1], not {fraction}",
                          fields={"node_fraction": "must be in (0, 1]"})
    count = max(1, round(len(nodes) * fraction)) if nodes else 0
    return [nodes[int(i * len(nodes) / count)] for i in range(count)]


ColumnOf = Callable[[str], int]


def _rows(path: Path, known: tuple[str, ...],
          required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str], ColumnOf]]:
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise InvalidSpec(f"{path}: cannot read: {exc.strerror}", fields={"path": str(path)}) \
            from None
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or not any(name.strip() for name in header):
            raise _error(path, 1, 1, "header", "the file is empty; expected a header row")
        header = [name.strip() for name in header]
        for position, name in enumerate(header, start=1):
            if name not in known:
                raise _error(path, 1, position, name, f"unknown column {name!r}; expected "
                             f"columns: {', '.join(known)}")
        for name in required:
            if name not in header:
                raise _error(path, 1, len(header) + 1, name, f"missing column {name!r}")

        def column_of(name: str) -> int:
            return header.index(name) + 1

        for values in reader:
            line = reader.line_num
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise _error(path, line, min(len(values), len(header)) + 1, "row",
                             f"expected {len(header)} values, found {len(values)}")
            yield line, dict(zip(header, values, strict=True)), column_of


def _text(row: dict[str, str], name: str, line: int, column_of: ColumnOf,
          path: str | Path) -> str:
    value = row[name].strip()
    if not value:
        raise _error(path, line, column_of(name), name, "is empty")
    return value


def _int(row: dict[str, str], name: str, line: int, column_of: ColumnOf, path: str | Path,
         *, minimum: int) -> int:
    text = row[name].strip()
    try:
        value = int(float(text)) if text else None
    except ValueError:
        value = None
    if value is None:
        raise _error(path, line, column_of(name), name, f"expected a whole number, not {text!r}")
    if value < minimum:
        raise _error(path, line, column_of(name), name, f"must be >= {minimum}, not {value}")
    return value


def _optional_int(row: dict[str, str], name: str, line: int, column_of: ColumnOf,
                  path: str | Path) -> int | None:
    if not (row.get(name) or "").strip():
        return None
    return _int(row, name, line, column_of, path, minimum=0)


def _error(path: str | Path, line: int, column: int, field: str, message: str) -> InvalidSpec:
    where = f"{path}, line {line}, column {column} ({field})"
    return InvalidSpec(f"{where}: {message}", fields={f"line {line}.{field}": message})
