"""Fixtures for the optimizer's tests: fast timing settings and tiny models on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.optimize.builders import mlp_onnx

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="session")
def quick() -> object:
    """Options for tests: one timed call per batch size, one calibration setting."""
    from aip.optimize import MeasureSettings, OptimizeOptions

    return OptimizeOptions(measure=MeasureSettings(warmup=1, min_runs=2, min_seconds=0.0),
                           calibration_methods=("minmax",), per_channel=(False,))


@pytest.fixture(scope="session")
def mlp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mlp_onnx(tmp_path_factory.mktemp("models") / "mlp.onnx")
