"""``NodeTable``: a numpy mirror of a ``ClusterState`` that placement policies score in bulk.

Scoring every node in Python costs about a microsecond per node and per replica; a trace of
10,000 arrivals on 1,200 nodes would spend tens of seconds there. The table keeps the free
capacity as arrays, one row per (schedulable node, GPU model on it), so a policy scores all
candidates with a few array operations. It lives in ``state.caches`` and refreshes only the
nodes the state reports changed (``state.watchers``), so keeping it current costs a few
microseconds per placement.

    table = NodeTable.of(state)                        # built once per state, kept in sync
    found = table.candidates(state, request, models)   # rows (and free GPU levels) that fit
    i = table.best(state, found, cost)                 # lowest cost, ties: first node
    choice = table.choice(state, found.rows[i], found.levels[i], request)

Rows of a node share its CPU and memory. A node without GPUs has one row with model -1. Free
GPU milli of a row are kept sorted, largest first, padded with 0 (never enough for a request).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from aip.scheduler.model import ReplicaRequest
from aip.scheduler.placement import Choice
from aip.scheduler.resources import FULL, ClusterState, NodeState

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

MAX_CACHED_RESTRICTIONS = 64  # row masks kept for ``ClusterState.only`` (RDMA domains)


@dataclass(frozen=True, slots=True)
class Candidates:
    """Feasible spots for one request: ``rows[i]`` with free GPU level ``levels[i]`` (the free
    milli of the GPU a share would take, 1000 for whole GPUs, 0 for CPU-only requests). A share
    gets one candidate per distinct free level of a row: GPUs of equal level are
    interchangeable."""

    rows: Ints
    levels: Ints


class NodeTable:
    """Free capacity by (node, GPU model) row; see the module docstring."""

    def __init__(self, state: ClusterState) -> None:
        self.model_names = sorted(state.models)
        self.model_index = {name: i for i, name in enumerate(self.model_names)}
        node_of: list[int] = []
        model_of: list[int] = []
        self.rows_of: dict[int, list[int]] = {}
        for node in state.nodes:
            if not node.schedulable:
                continue
            models: list[str | None] = [*sorted(node.models)] or [None]
            self.rows_of[node.position] = list(range(len(node_of), len(node_of) + len(models)))
            for model in models:
                node_of.append(node.position)
                model_of.append(-1 if model is None else self.model_index[model])
        rows = len(node_of)
        width = max((len(node.gpu_model) for node in state.nodes), default=0) or 1
        self.node: Ints = np.array(node_of, dtype=np.int64)
        self.model: Ints = np.array(model_of, dtype=np.int64)
        self.primary: Bools = np.zeros(rows, dtype=np.bool_)
        self.primary[[found[0] for found in self.rows_of.values()]] = True
        self.multi_model = any(len(found) > 1 for found in self.rows_of.values())
        self.gpus: Ints = np.zeros(rows, dtype=np.int64)
        self.cpu: Ints = np.zeros(rows, dtype=np.int64)
        self.memory: Ints = np.zeros(rows, dtype=np.int64)
        self.levels: Ints = np.zeros((rows, width), dtype=np.int64)
        self.whole: Ints = np.zeros(rows, dtype=np.int64)
        self.free: Ints = np.zeros(rows, dtype=np.int64)
        self.node_free: Ints = np.zeros(rows, dtype=np.int64)
        self.holders: Ints = np.zeros(rows, dtype=np.int64)  # bit n: holds n-GPU replicas
        self.accelerators: Bools = np.zeros(rows, dtype=np.bool_)
        self.dependents: list[TableDependent] = []
        self._dirty: set[int] = set()
        self._allowed: dict[frozenset[str] | None, Bools] = {}
        self._within: dict[frozenset[int], Bools] = {}
        self._ranks: dict[int, Ints] = {}
        self._row_model: list[str | None] = [
            None if model < 0 else self.model_names[model] for model in model_of]
        self._seen: list[object] = [None] * rows
        self._refresh(state, list(self.rows_of))

    @classmethod
    def of(cls, state: ClusterState) -> NodeTable:
        """The table of ``state``, brought up to date with its latest changes."""
        table = state.caches.get(cls)
        if not isinstance(table, NodeTable):
            table = cls(state)
            state.caches[cls] = table
            state.watchers.append(table._dirty.add)
        elif table._dirty:
            table._refresh(state, list(table._dirty))
            table._dirty.clear()
        return table

    # -- finding candidates ----------------------------------------------------------------

    def fits_host(self, request: ReplicaRequest) -> Bools:
        """Rows whose node has the CPU, memory (and accelerators) ``request`` needs."""
        fits: Bools = (self.cpu >= request.cpu_milli) & (self.memory >= request.memory_bytes)
        if request.accelerators:
            fits &= self.accelerators
        return fits

    def allowed(self, models: frozenset[str] | None) -> Bools:
        """Rows whose GPU model is one of ``models`` (None: any GPU model)."""
        by_model = self._allowed.get(models)
        if by_model is None:
            # index 0 stands for "no GPU" (model -1), which no GPU request may use
            by_model = np.array([False] + [models is None or name in models
                                           for name in self.model_names], dtype=np.bool_)
            self._allowed[models] = by_model
        allowed: Bools = by_model[self.model + 1]
        return allowed

    def within(self, positions: frozenset[int]) -> Bools:
        """Rows whose node is at one of ``positions`` (a ``ClusterState.only`` restriction)."""
        rows = self._within.get(positions)
        if rows is None:
            if len(self._within) >= MAX_CACHED_RESTRICTIONS:
                self._within.clear()
            rows = self._within[positions] = np.isin(
                self.node, np.fromiter(positions, dtype=np.int64, count=len(positions)))
        return rows

    def candidates(self, state: ClusterState, request: ReplicaRequest,
                   models: frozenset[str] | None) -> Candidates:
        """Every feasible spot for ``request``: a node's first row for CPU-only requests, rows
        with enough fully free GPUs for whole GPUs, (row, distinct free level) for shares.
        Only rows of nodes in ``state.only`` when it is set."""
        fits = self.fits_host(request)
        if state.only is not None:
            fits &= self.within(state.only)
        milli = request.gpu_milli
        if milli == 0:
            rows = np.flatnonzero(fits & self.primary)
            return self._checked(state, request, Candidates(rows, np.zeros_like(rows)))
        fits &= self.allowed(models)
        whole = request.whole_gpus
        if whole:
            rows = np.flatnonzero(fits & (self.whole >= whole))
            return self._checked(state, request, Candidates(rows, np.full_like(rows, FULL)))
        levels = self.levels
        distinct = np.ones(levels.shape, dtype=np.bool_)
        distinct[:, 1:] = levels[:, 1:] != levels[:, :-1]
        rows, columns = np.nonzero((levels >= milli) & distinct & fits[:, None])
        return self._checked(state, request, Candidates(rows, levels[rows, columns]))

    def rank(self, state: ClusterState, seed: int) -> Ints:
        """A fixed pseudo-random order of the rows' nodes, from ``seed`` and node names (not
        positions, so it survives snapshots): ties between equally good nodes go to the
        lowest rank. A fixed order fills some nodes first and keeps others whole, as the
        authors' simulator does by sorting randomly prefixed node names."""
        ranks = self._ranks.get(seed)
        if ranks is None:
            ranks = np.array([int.from_bytes(hashlib.blake2b(
                f"{seed}/{state.nodes[int(position)].name}".encode(), digest_size=7).digest(),
                "big") for position in self.node], dtype=np.int64)
            self._ranks[seed] = ranks
        return ranks

    def best(self, state: ClusterState, found: Candidates, cost: npt.NDArray[np.float64],
             seed: int | None = None) -> int:
        """Index of the candidate with the lowest ``cost``; ties go to the lowest node rank
        for ``seed`` (None: the first node in the state's order), then the tightest GPU."""
        tied = np.flatnonzero(cost <= cost.min())
        if len(tied) == 1:
            return int(tied[0])
        rows = found.rows[tied]
        first = rows if seed is None else self.rank(state, seed)[rows]
        order = np.lexsort((rows, found.levels[tied], first))
        return int(tied[order[0]])

    def choice(self, state: ClusterState, row: int, level: int,
               request: ReplicaRequest) -> Choice:
        """The ``Choice`` for ``request`` on ``row``: the lowest slots of the row's model that
        are fully free (whole GPUs) or have exactly ``level`` free (a share)."""
        node = state.nodes[int(self.node[row])]
        if request.gpu_milli == 0:
            return Choice(node)
        model = self.model_names[int(self.model[row])]
        if request.whole_gpus:
            return Choice(node, model, node.free_whole_slots(model, request.whole_gpus), FULL)
        for slot, free in enumerate(node.gpu_free):
            if free == level and node.gpu_model[slot] == model:
                return Choice(node, model, (slot,), request.gpu_milli)
        raise LookupError(f"no GPU of {model} with {level} free on {node.name}")

    # -- keeping up with the state -----------------------------------------------------------

    def _checked(self, state: ClusterState, request: ReplicaRequest,
                 found: Candidates) -> Candidates:
        """Drop candidates whose node lacks the accelerators ``request`` needs (rare: only
        requests with accelerators pay for a per-node look)."""
        if not request.accelerators or not len(found.rows):
            return found
        keep = np.array([state.nodes[int(self.node[row])].fits_host(request)
                         for row in found.rows], dtype=np.bool_)
        return Candidates(found.rows[keep], found.levels[keep])

    def _refresh(self, state: ClusterState, positions: list[int]) -> None:
        changed: list[int] = []
        for position in positions:
            rows = self.rows_of.get(position)
            if rows is None:
                continue  # not schedulable: never a candidate
            node = state.nodes[position]
            for row in rows:
                if self._load(node, row):
                    changed.append(row)
        if changed:  # a node that changed and changed back (what-if moves) costs nothing
            for dependent in self.dependents:
                dependent.refresh(np.array(changed, dtype=np.int64))

    def _load(self, node: NodeState, row: int) -> bool:
        """Copy ``node``'s free values into ``row``; False when they had not changed."""
        model = self._row_model[row]
        if model is None:
            levels: tuple[int, ...] = ()
        elif len(node.models) == 1:
            levels = tuple(sorted((free if free > 0 else 0 for free in node.gpu_free),
                                  reverse=True))
        else:
            levels = tuple(sorted((free if free > 0 else 0
                                   for slot, free in enumerate(node.gpu_free)
                                   if node.gpu_model[slot] == model), reverse=True))
        seen = (node.cpu_free, node.memory_free, node.gpu_free_total, levels,
                tuple(node.gpu_holders), tuple(node.acc_free.values()))
        if seen == self._seen[row]:
            return False
        self._seen[row] = seen
        self.cpu[row] = node.cpu_free
        self.memory[row] = node.memory_free
        self.node_free[row] = max(0, node.gpu_free_total)
        self.accelerators[row] = any(count > 0 for count in node.acc_free.values())
        holders = 0
        for shape in node.gpu_holders:
            holders |= 1 << min(shape, 62)
        self.holders[row] = holders
        if model is not None:
            self.gpus[row] = len(levels)
            self.levels[row, :len(levels)] = levels
            self.levels[row, len(levels):] = 0
            self.whole[row] = node.whole_free.get(model, 0)
            self.free[row] = sum(levels)
        return True


class TableDependent:
    """Arrays derived from a table (per row) for one set of task classes, that must follow
    the table's changes. Subclasses are built as ``cls(table, classes)``."""

    table: NodeTable

    def __init__(self, table: NodeTable, classes: Any) -> None:
        raise NotImplementedError

    @classmethod
    def of(cls, state: ClusterState, table: NodeTable, classes: Any) -> Self:
        """The index for ``classes`` over ``table``, cached in the state and kept fresh."""
        key = (cls, classes)
        index = state.caches.get(key)
        if not isinstance(index, cls) or index.table is not table:
            index = cls(table, classes)
            state.caches[key] = index
            table.dependents.append(index)
        return index

    def refresh(self, rows: Ints) -> None:
        """Recompute the derived values of ``rows`` (their table values just changed)."""
        raise NotImplementedError
