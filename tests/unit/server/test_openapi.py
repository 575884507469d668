"""The OpenAPI document is a snapshot: an API change must be deliberate.

After changing the API on purpose, refresh the snapshot with
``AIP_UPDATE_SNAPSHOTS=1 pytest tests/unit/server/test_openapi.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from aip.config import Settings
from aip.control.platform import Platform, PlatformConfig
from aip.server.app import create_app

SNAPSHOT = Path(__file__).parent / "openapi.json"


def test_openapi_matches_the_snapshot(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    config = PlatformConfig.model_validate({"nodes": [{"name": "n", "cpu": 1, "memory": "1Gi"}]})
    app = create_app(Platform.from_settings(settings, config), token="unused")
    current = json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"
    if os.environ.get("AIP_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(current)
    assert SNAPSHOT.exists(), "no snapshot yet: run with AIP_UPDATE_SNAPSHOTS=1"
    assert current == SNAPSHOT.read_text(), (
        "the OpenAPI document changed; if on purpose, rerun with AIP_UPDATE_SNAPSHOTS=1")
