"""Removing versions and models: their files leave the store, what uses them refuses the
removal naming the user, and what a crash left half done is finished at the next start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aip.control import registry as registry_service
from aip.control.model_removal import recover, remove_model, remove_version
from aip.control.registry import Registry
from aip.errors import Conflict, NotFound
from aip.registry.uris import ModelRef
from aip.store.endpoint_tables import EndpointRow
from aip.store.registry_tables import ModelRow, ModelVersionRow
from aip.store.tables import JobRow
from tests.unit.registry import builders
from tests.unit.registry.harness import files_in, upload


def three_versions(registry: Registry, tmp_path: Path) -> None:
    model = builders.onnx_model(tmp_path / "m.onnx")
    for _ in range(3):
        upload(registry, "fraud", model)


def test_a_removed_version_loses_its_files_and_no_longer_resolves(
        registry: Registry, tmp_path: Path) -> None:
    three_versions(registry, tmp_path)

    remove_version(registry.sessions, registry.store, "fraud", 3)

    assert files_in(registry.store, "models/fraud/3/") == []
    assert files_in(registry.store, "models/fraud/2/") != []
    with registry.sessions() as session:
        assert registry_service.resolve(session, ModelRef("fraud")).version == 2
        with pytest.raises(NotFound):
            registry_service.resolve(session, ModelRef("fraud", version=3))
    with pytest.raises(NotFound, match="no version 3"):
        remove_version(registry.sessions, registry.store, "fraud", 3)


def test_an_aliased_version_is_kept_until_the_alias_moves(
        registry: Registry, tmp_path: Path) -> None:
    three_versions(registry, tmp_path)
    with registry.sessions.begin() as session:
        registry_service.set_alias(session, "fraud", "production", 2, 5.0)

    with pytest.raises(Conflict, match="aliased 'production'") as caught:
        remove_version(registry.sessions, registry.store, "fraud", 2)

    assert caught.value.fields == {"version": "aliased production"}
    assert files_in(registry.store, "models/fraud/2/") != []
    with registry.sessions.begin() as session:
        registry_service.set_alias(session, "fraud", "production", 1, 6.0)
    remove_version(registry.sessions, registry.store, "fraud", 2)


def test_a_served_version_or_one_a_replica_runs_is_kept(
        registry: Registry, tmp_path: Path) -> None:
    three_versions(registry, tmp_path)
    with registry.sessions.begin() as session:
        session.add(EndpointRow(name="scoring", spec="{}", created_at=1.0, updated_at=1.0,
                                versions=json.dumps({"fraud-1": {"name": "fraud",
                                                                 "version": 1}})))
        session.add(JobRow(id="job-7", name="scoring-fraud-2", queue="default", state="RUNNING",
                           spec="{}", labels=json.dumps({"aip.io/endpoint-version": "fraud-2"}),
                           created_at=1.0, updated_at=1.0))

    with pytest.raises(Conflict, match="served by endpoint 'scoring'"):
        remove_version(registry.sessions, registry.store, "fraud", 1)
    with pytest.raises(Conflict, match="job-7 still runs fraud-2"):
        remove_version(registry.sessions, registry.store, "fraud", 2)
    with pytest.raises(Conflict, match="served by endpoint"):
        remove_model(registry.sessions, registry.store, "fraud")
    remove_version(registry.sessions, registry.store, "fraud", 3)


def test_removing_a_model_removes_its_versions_aliases_and_files(
        registry: Registry, tmp_path: Path) -> None:
    three_versions(registry, tmp_path)
    upload(registry, "churn", builders.onnx_model(tmp_path / "c.onnx"))
    with registry.sessions.begin() as session:
        registry_service.set_alias(session, "fraud", "production", 2, 5.0)

    assert remove_model(registry.sessions, registry.store, "fraud") == 3

    assert files_in(registry.store, "models/fraud/") == []
    with registry.sessions() as session:
        assert session.get(ModelRow, "fraud") is None
        assert registry_service.aliases_of(session, ["fraud"]) == {"fraud": {}}
        assert registry_service.resolve(session, ModelRef("churn")).version == 1
    with pytest.raises(NotFound, match="no model 'fraud'"):
        remove_model(registry.sessions, registry.store, "fraud")


def test_recovery_finishes_interrupted_registrations_and_removals(
        registry: Registry, tmp_path: Path) -> None:
    three_versions(registry, tmp_path)
    registry.store.put_bytes(b"half an upload", "models/fresh/1/model.onnx")
    with registry.sessions.begin() as session:  # what a crash left behind
        session.get(ModelVersionRow, ("fraud", 3)).state = "removing"  # type: ignore[union-attr]
        session.add(ModelRow(name="fresh", created_at=1.0, updated_at=1.0))
        session.flush()
        session.add(ModelVersionRow(name="fresh", version=1, state="pending",
                                    storage_prefix="models/fresh/1/", created_at=1.0))

    assert recover(registry.sessions, registry.store) == 2

    assert files_in(registry.store, "models/fraud/3/") == []
    assert files_in(registry.store, "models/fresh/") == []
    with registry.sessions() as session:
        assert session.get(ModelRow, "fresh") is None  # its first registration never ended
        assert registry_service.resolve(session, ModelRef("fraud")).version == 2
    assert recover(registry.sessions, registry.store) == 0
