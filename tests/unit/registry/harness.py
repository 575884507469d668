"""What the registry's service tests share: a real SQLite store migrated to head, an artifact
store in a temporary directory, and uploads as the SDK sends them."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from aip.control.registry import Registration, Registry
from aip.registry.flavors import prepare_model
from aip.registry.signatures import infer_signature
from aip.registry.transfer import upload_archive
from aip.storage import ArtifactStore
from aip.store.registry_tables import ModelVersionRow
from aip.testing.store import migrated_sessions


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    with migrated_sessions(f"sqlite:///{tmp_path / 'aip.db'}") as factory:
        yield factory


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "artifacts"))


@pytest.fixture
def registry(sessions: sessionmaker[Session], store: ArtifactStore) -> Registry:
    # In-process and code-free, as the server's child process reads them.
    return Registry(sessions, store, Clock(),
                    infer=lambda flavor, path: infer_signature(flavor, path, allow_code=False))


def upload(registry: Registry, name: str, path: Path, flavor: str | None = None,
           **fields: Any) -> ModelVersionRow:
    """What the SDK sends: the client-side prepared tree as one tar."""
    stream = upload_archive(prepare_model(path, flavor))
    return registry.register_upload(Registration(name, **fields),
                                    io.BytesIO(b"".join(stream)), filename=None)


def files_in(store: ArtifactStore, prefix: str) -> list[str]:
    return [info.key.removeprefix(prefix) for info in store.list(prefix)]
