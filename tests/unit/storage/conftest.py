"""Stores for the storage suite: a local directory, and a real S3 protocol endpoint (moto's
standalone server on loopback, started once per session; skipped cleanly when moto or s3fs
is missing or the server cannot start)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aip.storage import ArtifactStore
from aip.testing.s3 import MotoS3


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    problem = MotoS3.unavailable()
    if problem:
        pytest.skip(problem)
    server = MotoS3(tmp_path_factory.mktemp("moto"))
    try:
        server.start()
    except RuntimeError as exc:
        pytest.skip(f"moto's S3 server did not start: {str(exc).splitlines()[0]}")
    yield server
    server.stop()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """The same suite against a directory and against S3 (a fresh prefix per test)."""
    if request.param == "local":
        return ArtifactStore(str(tmp_path / "store"))
    server: MotoS3 = request.getfixturevalue("moto_s3")
    return server.store(f"test-{uuid.uuid4().hex[:12]}")
