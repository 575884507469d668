"""CLI tests run with an empty AIP_HOME and no AIP_* settings from the developer's shell."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_aip_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "aip-home"
    for name in ("AIP_SERVER", "AIP_TOKEN", "AIP_DEBUG", "AIP_CONFIG", "AIP_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIP_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    return home
