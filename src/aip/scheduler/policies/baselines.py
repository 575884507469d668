"""The baseline policies of Weng et al. (ATC'23), as their simulator scores them.

The authors ran each policy as the only score plugin of a Kubernetes scheduler
(hkust-adsl/kubernetes-scheduler-simulator): every feasible node gets an integer score in
0..100 and the highest wins. Their vendored scheduler breaks ties "for reproducibility" by
the smallest node name, and node names carry a random per-run prefix: ties go to the first
node of a fixed random order. That order matters a great deal (it fills some nodes first and
keeps others whole); ``NodeTable.rank(seed)`` reproduces it. A share then takes the tightest
GPU of the chosen node ("best" GPU selection; whole GPUs take the lowest free ones).
Normalizations are those of their ``max`` mode: CPU over 128 cores, GPU over 8 GPUs. Memory
counts for feasibility only, as there.

* ``random``: a uniformly random feasible node, and a random GPU on it that fits.
* ``best-fit``: least left over, 0.5 x CPU left / 128 cores + 0.5 x node GPU left / 8 GPUs.
* ``gpu-packing``: a share on an already shared GPU first (the fuller the better), then free
  GPUs of a partly used node, then an idle node with the fewest GPUs.
* ``gpu-clustering``: nodes already holding replicas of the same GPU shape (a share, or n
  whole GPUs: their simulator does not tell share sizes apart), best when only that shape,
  then idle nodes, then the rest; fuller first.
* ``dot-product`` (Tetris): the node's free (CPU, GPU) vector against the request's, both
  over the maximum spec; their simulator keeps the *smallest* dot product (the best-aligned
  node with the least to spare), which is what it measured.

CPU-only requests score alike under gpu-packing and gpu-clustering (the first node in the
random order).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod

import numpy as np

from aip.scheduler.model import ReplicaRequest
from aip.scheduler.placement import Choice
from aip.scheduler.policies.table import Candidates, Ints, NodeTable
from aip.scheduler.resources import FULL, ClusterState

MAX_SPEC_CPU = 128_000
MAX_SPEC_GPU = 8 * FULL
MAX_SCORE = 100


class TableScoredPolicy(ABC):
    """Integer score per feasible node (higher is better), ties to the lowest node rank; a
    share takes the tightest GPU of the chosen node."""

    name = "table-scored"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def choose(self, state: ClusterState, request: ReplicaRequest,
               models: frozenset[str] | None) -> Choice | None:
        table = NodeTable.of(state)
        found = per_row_tightest(table.candidates(state, request, models))
        if not len(found.rows):
            return None
        scores = self.scores(table, found, request)
        pick = table.best(state, found, -scores.astype(np.float64), self.seed)
        return table.choice(state, int(found.rows[pick]), int(found.levels[pick]), request)

    @abstractmethod
    def scores(self, table: NodeTable, found: Candidates, request: ReplicaRequest) -> Ints:
        """One integer score per candidate row (its tightest fitting GPU level given)."""


class RandomPolicy(TableScoredPolicy):
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.rng = random.Random(seed)

    def choose(self, state: ClusterState, request: ReplicaRequest,
               models: frozenset[str] | None) -> Choice | None:
        table = NodeTable.of(state)
        rows = np.unique(table.candidates(state, request, models).rows)
        if not len(rows):
            return None
        row = int(rows[self.rng.randrange(len(rows))])
        if not request.gpu_shared:
            return table.choice(state, row, FULL, request)
        node = state.nodes[int(table.node[row])]
        model = table.model_names[int(table.model[row])]
        slots = [slot for slot, free in enumerate(node.gpu_free)
                 if free >= request.gpu_milli and node.gpu_model[slot] == model]
        return Choice(node, model, (slots[self.rng.randrange(len(slots))],), request.gpu_milli)

    def scores(self, table: NodeTable, found: Candidates, request: ReplicaRequest) -> Ints:
        return np.zeros(len(found.rows), dtype=np.int64)


class PaperBestFitPolicy(TableScoredPolicy):
    name = "best-fit"

    def scores(self, table: NodeTable, found: Candidates, request: ReplicaRequest) -> Ints:
        rows = found.rows
        left = 0.5 * (table.cpu[rows] - request.cpu_milli) / MAX_SPEC_CPU \
            + 0.5 * (table.node_free[rows] - request.gpu_milli) / MAX_SPEC_GPU
        return np.floor((1.0 - left) * MAX_SCORE).astype(np.int64)


class GpuPackingPolicy(TableScoredPolicy):
    name = "gpu-packing"

    def scores(self, table: NodeTable, found: Candidates, request: ReplicaRequest) -> Ints:
        rows, levels = found.rows, found.levels
        if request.gpu_milli == 0:
            return np.zeros(len(rows), dtype=np.int64)
        whole = table.whole[rows]
        idle_node = whole == table.gpus[rows]
        idle_score = np.maximum(MAX_SCORE // 3 - whole, whole)
        if request.whole_gpus:
            used_score = np.full(len(rows), max(MAX_SCORE // 2 - request.whole_gpus,
                                                MAX_SCORE // 3), dtype=np.int64)
        else:
            shared = np.maximum(MAX_SCORE - (levels * 100 // FULL) // 10, MAX_SCORE // 2)
            used_score = np.where(levels == FULL, MAX_SCORE // 2 - 1, shared)
        return np.where(idle_node, idle_score, used_score)


class GpuClusteringPolicy(TableScoredPolicy):
    name = "gpu-clustering"

    def scores(self, table: NodeTable, found: Candidates, request: ReplicaRequest) -> Ints:
        rows = found.rows
        if request.gpu_milli == 0:
            return np.zeros(len(rows), dtype=np.int64)
        bit = 1 << min(request.whole_gpus, 62)
        holders = table.holders[rows]
        base = np.where((holders & bit) != 0, np.where(holders == bit, 75, 50),
                        np.where(holders == 0, 25, 0))
        fullness = (MAX_SCORE // 4) * (MAX_SPEC_GPU - table.node_free[rows]) // MAX_SPEC_GPU
        return base + fullness


class DotProductPolicy(TableScoredPolicy):
    """The paper's runs merge the node's GPUs into one dimension (free GPU milli in total)."""

    name = "dot-product"

    def scores(self, table: NodeTable, found: Candidates, request: ReplicaRequest) -> Ints:
        rows = found.rows
        dot = (table.cpu[rows] / MAX_SPEC_CPU) * (request.cpu_milli / MAX_SPEC_CPU) \
            + (table.node_free[rows] / MAX_SPEC_GPU) * (request.gpu_milli / MAX_SPEC_GPU)
        return np.floor((1.0 - dot / 2) * MAX_SCORE).astype(np.int64)


def per_row_tightest(found: Candidates) -> Candidates:
    """One candidate per row: its smallest fitting free level (candidates come row-sorted)."""
    if not len(found.rows):
        return found
    rows, starts = np.unique(found.rows, return_index=True)
    return Candidates(rows, np.minimum.reduceat(found.levels, starts))
