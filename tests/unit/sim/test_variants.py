"""Trace variants change the category mix as their names say, reproducibly."""

from __future__ import annotations

import pytest

from aip.errors import InvalidSpec
from aip.sim.openb import Task
from aip.sim.variants import (
    CPU_ONLY,
    GPU_SPECS,
    MULTI_GPU,
    SHARE,
    VARIANT_KINDS,
    category_mix,
    constrained_share,
    make_variant,
    task_category,
)
from tests.unit.sim.builders import task

# 20% CPU-only, 40% shares, 36% one GPU, 4% multi-GPU (by count).
TRACE: list[Task] = (
    [task(f"cpu{i}", cpu=2) for i in range(20)]
    + [task(f"share{i}", gpu=(250, 500)[i % 2]) for i in range(40)]
    + [task(f"one{i}", gpu=1000) for i in range(36)]
    + [task(f"multi{i}", gpu=(2000, 8000)[i % 2]) for i in range(4)]
)
SIZE = 20_000  # large draws: shares land within a point of their targets


def test_categories() -> None:
    assert [task_category(TRACE[i]) for i in (0, 20, 60, 96)] == \
        ["cpu-only", "share", "one-gpu", "multi-gpu"]


def test_cpu_heavy_makes_cpu_only_tasks_25_percent_of_tasks() -> None:
    mix = category_mix(make_variant(TRACE, "cpu-heavy", seed=1, size=SIZE))
    assert mix[CPU_ONLY]["tasks"] == pytest.approx(0.25, abs=0.015)
    # the GPU tasks keep their mix among themselves: shares 40/80 of them
    assert mix[SHARE]["tasks"] / (1 - mix[CPU_ONLY]["tasks"]) == pytest.approx(0.5, abs=0.02)


def test_share_heavy_gives_shares_60_percent_of_the_gpu_request() -> None:
    before = category_mix(TRACE)[SHARE]["gpu_request"]
    mix = category_mix(make_variant(TRACE, "share-heavy", seed=1, size=SIZE))
    assert before == pytest.approx(15_000 / 71_000)
    assert mix[SHARE]["gpu_request"] == pytest.approx(0.60, abs=0.02)
    assert mix[CPU_ONLY]["tasks"] == pytest.approx(0.20, abs=0.015)  # unchanged


def test_multi_gpu_heavy_gives_multi_gpu_tasks_30_percent_of_the_gpu_request() -> None:
    mix = category_mix(make_variant(TRACE, "multi-gpu-heavy", seed=1, size=SIZE))
    assert mix[MULTI_GPU]["gpu_request"] == pytest.approx(0.30, abs=0.03)


def test_a_target_overrides_the_default_fraction() -> None:
    mix = category_mix(make_variant(TRACE, "share-heavy", seed=1, size=SIZE, target=0.9))
    assert mix[SHARE]["gpu_request"] == pytest.approx(0.90, abs=0.02)


def test_type_constrained_keeps_every_task_and_constrains_a_third_of_gpu_tasks() -> None:
    variant = make_variant(TRACE, "type-constrained", seed=3)
    assert [t.name for t in variant] == [t.name for t in TRACE]
    assert [t.request.gpu_milli for t in variant] == [t.request.gpu_milli for t in TRACE]
    assert constrained_share(variant) == pytest.approx(round(0.33 * 80) / 80)
    assert all(not t.request.gpu_types for t in variant if not t.request.gpu_milli)
    most = {models: limit for models, _weight, limit in GPU_SPECS}
    for t in variant:
        if t.request.gpu_types:  # a constraint some openb node can hold
            assert most[t.request.gpu_types] >= t.request.whole_gpus


@pytest.mark.parametrize("kind", VARIANT_KINDS)
def test_variants_are_reproducible_by_seed(kind: str) -> None:
    first = make_variant(TRACE, kind, seed=7)
    assert first == make_variant(TRACE, kind, seed=7)
    assert first != make_variant(TRACE, kind, seed=8)
    assert len(first) == len(TRACE)


def test_drawn_tasks_get_unique_names() -> None:
    variant = make_variant(TRACE, "share-heavy", seed=1)
    assert len({t.name for t in variant}) == len(variant)


def test_unknown_kinds_and_missing_categories_are_refused() -> None:
    with pytest.raises(InvalidSpec, match="did you mean 'share-heavy'"):
        make_variant(TRACE, "share-heavyy", seed=1)
    with pytest.raises(InvalidSpec, match="needs multi-gpu tasks"):
        make_variant(TRACE[:96], "multi-gpu-heavy", seed=1)
    with pytest.raises(InvalidSpec, match=r"0\.\.1"):
        make_variant(TRACE, "cpu-heavy", seed=1, target=1.5)
