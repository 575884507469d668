"""Usable capacity of a node for a target workload: what AIP's default policy descends on.

FGD (``fragmentation``) asks of each task class m whether *one more* task fits on a node.
That misses the most common way GPUs are lost in production traces: the node keeps free
GPUs but not the CPU (or memory) to feed them. A node with 8 free GPUs and 20 free cores can
take one 12-core GPU task, not eight. So here each class counts how many of its tasks the
node could still take if only that class came, limited by every resource at once:

    tasks_m(n) = min(GPU slots for m on n, free CPU / cpu_m, free memory / memory_m)

GPU slots are sum(floor(free_g / d)) over the GPUs for a share of d, floor(fully free / k)
for k whole GPUs (0 on a GPU model the class may not use). CPU and memory count
fractionally: a smooth measure ranks candidates better than one that jumps at every whole
task. The node's capacity lost to fragmentation is

    F_n = T_n - sum_m p_m * tasks_m(n) * gpu_m          (T: free GPU milli)

and a placement's cost is how much it raises F_n. Placing a CPU-only task on a node whose
CPU its free GPUs need raises F; on a node with CPU to spare it costs nothing.

    classes = CapacityClasses(workload.typical(0.95))
    index = CapacityIndex.of(state, table, classes)
    delta = index.delta(found, request)        # F(after) - F(before), one per candidate
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from aip.scheduler.model import ReplicaRequest
from aip.scheduler.policies.fragmentation import Bools, Floats
from aip.scheduler.policies.table import Candidates, Ints, NodeTable, TableDependent
from aip.scheduler.resources import FULL
from aip.scheduler.workload import Workload

Slots = npt.NDArray[np.float32]  # task counts: small whole numbers, kept as float32


class CapacityClasses:
    """A workload as per-class arrays: the GPU shape each class uses (per-GPU milli d, GPU
    count k, allowed models), its CPU, memory, GPU milli per task and probability."""

    def __init__(self, workload: Workload, *, memory: bool = True) -> None:
        shape_index: dict[tuple[int, int, frozenset[str]], int] = {}
        shape_of: list[int] = []
        cpu: list[int] = []
        memory_bytes: list[int] = []
        gpu: list[int] = []
        share: list[float] = []
        self.total = 0.0
        for request, probability in workload.shapes:
            self.total += probability
            if request.gpu_milli == 0:
                continue  # CPU-only tasks use no GPU: for them all free GPU milli is lost
            whole = request.whole_gpus
            key = (FULL if whole else request.gpu_milli, max(1, whole), request.gpu_types)
            shape_of.append(shape_index.setdefault(key, len(shape_index)))
            cpu.append(max(1, request.cpu_milli))
            memory_bytes.append(max(1, request.memory_bytes if memory else 1))
            gpu.append(request.gpu_milli)
            share.append(probability)
        self.shapes = list(shape_index)
        self.demand: Ints = np.array([key[0] for key in self.shapes], dtype=np.int64)
        self.count: Ints = np.array([key[1] for key in self.shapes], dtype=np.int64)
        self.whole: Bools = self.demand == FULL
        self.share_shapes: Ints = np.flatnonzero(~self.whole)
        self.whole_shapes: Ints = np.flatnonzero(self.whole)
        self.shape_of: Ints = np.array(shape_of, dtype=np.int64)
        self.per_cpu = (1.0 / np.array(cpu, dtype=np.float64)).astype(np.float32)
        self.per_memory = (1.0 / np.array(memory_bytes, dtype=np.float64)).astype(np.float32)
        self.weight = (np.array(share) * np.array(gpu, dtype=np.float64)).astype(np.float32)

    def allowed(self, model_names: list[str]) -> Bools:
        """allowed[model id + 1, shape]: the shape may use that GPU model (row 0: no GPU)."""
        out = np.zeros((len(model_names) + 1, len(self.shapes)), dtype=np.bool_)
        for shape, (_demand, _count, types) in enumerate(self.shapes):
            for model, name in enumerate(model_names):
                out[model + 1, shape] = not types or name in types
        return out

    def slots(self, levels: Ints, whole: Ints, allowed: Bools) -> Slots:
        """Tasks of each shape the rows' GPUs could hold: (rows, shapes)."""
        shares = (levels[:, :, None] // self.demand[None, None, :]).sum(axis=1)
        slots = np.where(self.whole[None, :], whole[:, None] // self.count[None, :], shares)
        return np.where(allowed, slots, 0).astype(np.float32)

    def value(self, free: Ints, slots: Slots, cpu: Ints, memory: Ints) -> Floats:
        """F for rows given free GPU milli, slots per shape, free CPU and memory."""
        # float32 is plenty (a task count to 7 digits) and halves the work per candidate
        tasks = np.minimum(np.maximum(cpu, 0).astype(np.float32)[:, None] * self.per_cpu,
                           np.maximum(memory, 0).astype(np.float32)[:, None] * self.per_memory)
        np.minimum(tasks, slots[:, self.shape_of], out=tasks)
        value: Floats = free * self.total - (tasks @ self.weight).astype(np.float64)
        return value


class CapacityIndex(TableDependent):
    """Slots per shape and F of every row of one table, refreshed with it."""

    def __init__(self, table: NodeTable, classes: CapacityClasses) -> None:
        self.table = table
        self.classes = classes
        self.allowed: Bools = classes.allowed(table.model_names)[table.model + 1]
        rows = len(table.node)
        self.slots: Slots = np.zeros((rows, len(classes.shapes)), dtype=np.float32)
        self.frag: Floats = np.zeros(rows, dtype=np.float64)
        self.refresh(np.arange(rows, dtype=np.int64))

    def refresh(self, rows: Ints) -> None:
        table = self.table
        self.slots[rows] = self.classes.slots(table.levels[rows], table.whole[rows],
                                              self.allowed[rows])
        self.frag[rows] = self.classes.value(table.free[rows], self.slots[rows],
                                             table.cpu[rows], table.memory[rows])

    def delta(self, found: Candidates, request: ReplicaRequest) -> Floats:
        """F(after) - F(before) of each candidate's node (negative: more usable)."""
        table, classes = self.table, self.classes
        rows, levels = found.rows, found.levels
        free = table.free[rows]
        milli = request.gpu_milli
        slots = self.slots[rows]
        if milli:
            # Slots only shrink; a shape the row's model does not allow has none and may go
            # negative here, which the clip below undoes.
            shares, wholes = classes.share_shapes, classes.whole_shapes
            if request.gpu_shared:
                demand = classes.demand[shares]
                slots[:, shares] += (levels - milli)[:, None] // demand \
                    - levels[:, None] // demand
                whole = table.whole[rows] - (levels == FULL)  # a share opens a free GPU
            else:
                whole = table.whole[rows] - request.whole_gpus
                slots[:, shares] -= request.whole_gpus * (FULL // classes.demand[shares])
            slots[:, wholes] = whole[:, None] // classes.count[wholes] \
                * self.allowed[rows][:, wholes]
            np.maximum(slots, 0, out=slots)
            free = free - milli
        after = classes.value(free, slots, table.cpu[rows] - request.cpu_milli,
                              table.memory[rows] - request.memory_bytes)
        if table.multi_model:
            after += self._siblings(rows, request)
        delta: Floats = after - self.frag[rows]
        return delta

    def _siblings(self, rows: Ints, request: ReplicaRequest) -> Floats:
        """On nodes with several GPU models, the change the CPU and memory a placement takes
        makes to the node's other rows."""
        table = self.table
        changed = self.classes.value(table.free, self.slots, table.cpu - request.cpu_milli,
                                     table.memory - request.memory_bytes) - self.frag
        per_node = np.bincount(table.node, weights=changed, minlength=int(table.node.max()) + 1)
        siblings: Floats = per_node[table.node[rows]] - changed[rows]
        return siblings
