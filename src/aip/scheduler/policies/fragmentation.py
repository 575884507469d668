"""Node GPU fragmentation against a target workload (Weng et al., ATC'23), kept per table row.

A task class m (CPU c, memory, d milli on each of k GPUs, allowed models) arrives with
probability p. The free GPU milli of node n that m cannot use, F_n(m), is

* all of it when m needs no GPU, or cannot run on n at all (CPU or memory short, GPU model
  not allowed, fewer than k GPUs with d free);
* otherwise the free milli of the GPUs with less than d free (a 0.3 sliver is lost to 0.5
  tasks, not to 0.2 tasks).

The node's fragmentation is the expectation F_n = sum_m p_m F_n(m). Writing T for the node's
free milli and S_m for the free milli on GPUs below d_m, it is T - sum_{m fits} p_m (T - S_m):
free capacity minus what the workload expects to be able to use. Classes that share (d, k,
allowed models) form a *shape*; S and the count N of GPUs with at least d free depend only on
the shape, and CPU/memory enter through P_g(C, M) = sum of p over the shape's classes whose
CPU and memory fit, a step function tabulated once. So one row's value costs O(shapes), and
the change a placement makes is computed for every candidate at once with numpy.

    classes = TaskClasses(workload.typical(0.95, memory=False), memory=False)
    index = FragIndex.of(state, table, classes)
    delta = index.delta(found, request)          # F(after) - F(before), one per candidate
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from aip.scheduler.model import ReplicaRequest
from aip.scheduler.policies.table import Candidates, Ints, NodeTable, TableDependent
from aip.scheduler.resources import FULL
from aip.scheduler.workload import Workload

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


class TaskClasses:
    """A workload reduced to what fragmentation needs: GPU shapes with their CPU/memory step
    tables, and the probability of CPU-only tasks. ``memory`` False ignores memory (as the
    authors' simulator does); True counts a class as unable to run where memory is short."""

    def __init__(self, workload: Workload, *, memory: bool = True) -> None:
        shape_index: dict[tuple[int, int, frozenset[str]], int] = {}
        members: list[tuple[int, int, int, float]] = []  # (shape, cpu, memory, p)
        self.cpu_only = 0.0
        for request, share in workload.shapes:
            if request.gpu_milli == 0:
                self.cpu_only += share
                continue
            whole = request.whole_gpus
            key = (FULL if whole else request.gpu_milli, max(1, whole), request.gpu_types)
            shape = shape_index.setdefault(key, len(shape_index))
            members.append((shape, request.cpu_milli, request.memory_bytes if memory else 0,
                            share))
        self.shapes = list(shape_index)
        self.demand: Ints = np.array([key[0] for key in self.shapes], dtype=np.int64)
        self.count: Ints = np.array([key[1] for key in self.shapes], dtype=np.int64)
        self.total = self.cpu_only + sum(member[3] for member in members)
        self.cpu_steps: Ints = np.array(sorted({m[1] for m in members}), dtype=np.int64)
        self.memory_steps: Ints = np.array(sorted({m[2] for m in members} - {0}),
                                           dtype=np.int64)
        table = np.zeros((len(self.cpu_steps) + 1, len(self.memory_steps) + 1,
                          len(self.shapes)), dtype=np.float64)
        for shape, cpu, memory_bytes, share in members:
            # rank = how many steps are <= the node's free value; the class fits from its own
            cpu_rank = int(np.searchsorted(self.cpu_steps, cpu)) + 1
            memory_rank = int(np.searchsorted(self.memory_steps, memory_bytes)) + 1 \
                if memory_bytes else 0
            table[cpu_rank, memory_rank, shape] += share
        self.fitting = table.cumsum(axis=0).cumsum(axis=1)  # P_g(C, M) by (cpu, memory) rank
        self.shape_share: Floats = self.fitting[-1, -1].copy()

    def allowed(self, model_names: list[str]) -> Bools:
        """allowed[model id + 1, shape]: the shape may use that GPU model (row 0: no GPU)."""
        out = np.zeros((len(model_names) + 1, len(self.shapes)), dtype=np.bool_)
        for shape, (_demand, _count, types) in enumerate(self.shapes):
            for model, name in enumerate(model_names):
                out[model + 1, shape] = not types or name in types
        return out

    def fitting_at(self, cpu: Ints, memory: Ints) -> Floats:
        """P_g for nodes with ``cpu`` / ``memory`` free: (len, shapes)."""
        cpu_rank = np.searchsorted(self.cpu_steps, cpu, side="right")
        memory_rank = np.searchsorted(self.memory_steps, memory, side="right")
        fitting: Floats = self.fitting[cpu_rank, memory_rank]
        return fitting

    def value(self, free: Ints, below: Ints, enough: Ints, cpu: Ints, memory: Ints,
              allowed: Bools) -> Floats:
        """F for rows given their free milli, S and N per shape, free CPU and memory."""
        usable = self.fitting_at(cpu, memory) * (allowed & (enough >= self.count))
        gained = (usable * (free[:, None] - below)).sum(axis=1)
        value: Floats = free * self.total - gained
        return value


class FragIndex(TableDependent):
    """F, S and N of every row of one table for one ``TaskClasses``, refreshed with it."""

    def __init__(self, table: NodeTable, classes: TaskClasses) -> None:
        self.table = table
        self.classes = classes
        self.allowed: Bools = classes.allowed(table.model_names)[table.model + 1]
        rows = len(table.node)
        shapes = len(classes.shapes)
        self.below: Ints = np.zeros((rows, shapes), dtype=np.int64)
        self.enough: Ints = np.zeros((rows, shapes), dtype=np.int64)
        self.frag: Floats = np.zeros(rows, dtype=np.float64)
        self.refresh(np.arange(rows, dtype=np.int64))

    def refresh(self, rows: Ints) -> None:
        table = self.table
        levels = table.levels[rows][:, :, None]
        short = levels < self.classes.demand[None, None, :]
        self.below[rows] = (levels * short).sum(axis=1)
        self.enough[rows] = (~short).sum(axis=1)
        self.frag[rows] = self.classes.value(table.free[rows], self.below[rows],
                                             self.enough[rows], table.cpu[rows],
                                             table.memory[rows], self.allowed[rows])

    def after(self, found: Candidates, request: ReplicaRequest) -> Floats:
        """The node's F after placing ``request`` at each candidate."""
        table, classes = self.table, self.classes
        rows, levels = found.rows, found.levels
        below, enough, free = self.below[rows], self.enough[rows], table.free[rows]
        milli = request.gpu_milli
        if request.gpu_shared:
            demand = classes.demand[None, :]
            before, left = levels[:, None], (levels - milli)[:, None]
            below = below - np.where(before < demand, before, 0) \
                + np.where(left < demand, left, 0)
            enough = enough - (before >= demand) + (left >= demand)
            free = free - milli
        elif milli:
            enough = enough - request.whole_gpus
            free = free - milli
        cpu = table.cpu[rows] - request.cpu_milli
        memory = table.memory[rows] - request.memory_bytes
        value = classes.value(free, below, enough, cpu, memory, self.allowed[rows])
        if table.multi_model:
            value += self._siblings(rows, request)
        return value

    def delta(self, found: Candidates, request: ReplicaRequest) -> Floats:
        """F(after) - F(before) of the candidate's node (negative: less fragmented)."""
        delta: Floats = self.after(found, request) - self.frag[found.rows]
        return delta

    def _siblings(self, rows: Ints, request: ReplicaRequest) -> Floats:
        """On nodes with several GPU models, the change that the CPU and memory a placement
        takes makes to the node's other rows."""
        table, classes = self.table, self.classes
        changed = classes.value(table.free, self.below, self.enough,
                                table.cpu - request.cpu_milli,
                                table.memory - request.memory_bytes, self.allowed) - self.frag
        per_node = np.bincount(table.node, weights=changed, minlength=int(table.node.max()) + 1)
        siblings: Floats = per_node[table.node[rows]] - changed[rows]
        return siblings
