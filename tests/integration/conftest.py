from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aip.testing.server import AipServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AipServer]:
    """One server per test module on the default test node (8 cpu, 4×T4, 4 tpu)."""
    with AipServer(tmp_path_factory.mktemp("aip-home")) as running:
        yield running


@pytest.fixture
def fresh_home(tmp_path: Path) -> Path:
    return tmp_path / "aip-home"
