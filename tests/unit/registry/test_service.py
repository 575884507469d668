"""Registry services on a real store: SQLite migrated to head and an artifact store in a
temporary directory. Registration, numbering, lineage from a job, aliases, resolution, and
failed registrations that leave nothing behind."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from aip.control import jobs as job_service
from aip.control import registry as registry_service
from aip.control import tracking as tracking_service
from aip.control.registry import Registration, Registry
from aip.errors import InvalidSpec, NotFound
from aip.registry.flavors import prepare_model
from aip.registry.signatures import infer_in_subprocess
from aip.registry.transfer import upload_archive
from aip.registry.tree import tree_digest
from aip.registry.uris import ModelRef, parse_model_uri
from aip.scheduler import Node
from aip.spec import JobSpec
from aip.spec.model import MANIFEST_FILE, ModelManifest
from aip.storage import ArtifactStore
from aip.store.registry_tables import ModelVersionRow
from tests.unit.registry import builders
from tests.unit.registry.harness import Clock, files_in, upload

NODES = [Node(name="n1", cpu_milli=8000, memory_bytes=32 * 2**30)]


def test_versions_count_up_from_one_and_land_under_the_models_prefix(
        registry: Registry, store: ArtifactStore, tmp_path: Path) -> None:
    model = builders.onnx_model(tmp_path / "fraud.onnx")
    first = upload(registry, "fraud", model, description="card fraud")
    second = upload(registry, "fraud", model)
    assert (first.version, second.version) == (1, 2)
    assert first.state == "ready" and first.flavor == "onnx"
    assert second.storage_prefix == "models/fraud/2/"
    assert files_in(store, "models/fraud/2/") == [MANIFEST_FILE, "fraud.onnx"]
    manifest = ModelManifest.model_validate_json(store.read_bytes("models/fraud/2/" +
                                                                  MANIFEST_FILE))
    assert manifest.path == "fraud.onnx" and manifest.signature is not None
    index = registry_service.files_of(second)
    assert [entry.path for entry in index] == [MANIFEST_FILE, "fraud.onnx"]
    assert second.sha256 == tree_digest(index)
    assert second.size == sum(entry.size for entry in index)
    with registry.sessions() as session:
        assert registry_service.get_model(session, "fraud").description == "card fraud"


def test_one_raw_file_gets_a_manifest_and_a_signature_from_the_server(
        registry: Registry, store: ArtifactStore, tmp_path: Path) -> None:
    data = builders.onnx_model(tmp_path / "m.onnx").read_bytes()
    row = registry.register_upload(Registration("raw"), io.BytesIO(data), filename="m.onnx")
    manifest = ModelManifest.model_validate_json(row.manifest or "")
    assert (manifest.flavor, manifest.path) == ("onnx", "m.onnx")
    assert manifest.signature is not None and manifest.signature.inputs[0].name == "x"
    assert store.read_bytes("models/raw/1/m.onnx") == data


def test_the_server_reads_signatures_in_a_child_process(
        sessions: sessionmaker[Session], store: ArtifactStore, tmp_path: Path) -> None:
    registry = Registry(sessions, store, Clock(), infer=infer_in_subprocess)
    data = builders.lightgbm_model(tmp_path / "b.txt").read_bytes()
    row = registry.register_upload(Registration("gbm", flavor="lightgbm"), io.BytesIO(data),
                                   filename="booster.txt")
    assert json.loads(row.signature or "null")["inputs"][0]["shape"] == [-1, 4]


def test_a_pickle_uploaded_raw_is_stored_but_never_unpickled_by_the_server(
        registry: Registry, tmp_path: Path) -> None:
    data = builders.sklearn_classifier(tmp_path / "clf.joblib").read_bytes()
    row = registry.register_upload(Registration("clf"), io.BytesIO(data),
                                   filename="clf.joblib")
    assert row.flavor == "sklearn" and row.signature is None


def test_a_client_inferred_pickle_signature_is_kept(registry: Registry, tmp_path: Path) -> None:
    row = upload(registry, "clf", builders.sklearn_classifier(tmp_path / "clf.joblib"))
    signature = json.loads(row.signature or "null")
    assert [o["name"] for o in signature["outputs"]] == ["predictions", "probabilities"]


@pytest.mark.parametrize(("members", "field", "problem"), [
    pytest.param([("../evil.onnx", b"x")], "archive", "'..'", id="dot-dot"),
    pytest.param([("/abs.onnx", b"x")], "archive", "absolute", id="absolute"),
    pytest.param([("model.onnx", b"x"), ("link", ("sym", "/etc/passwd"))], "archive",
                 "outside", id="link-outside"),
    pytest.param([(MANIFEST_FILE, b'{"flavor": "onnx", "path": "gone.onnx"}'),
                  ("model.onnx", b"x")], "path", "not among the uploaded files",
                 id="manifest-names-a-missing-file"),
    pytest.param([(MANIFEST_FILE, b'{"flavor": "keras", "path": "m"}'), ("m", b"x")],
                 "manifest.flavor", "valid model manifest", id="manifest-unknown-flavor"),
    pytest.param([("notes.txt", b"x")], "flavor", "no model file", id="no-model-file"),
    pytest.param([], "archive", "no model files", id="empty-archive"),
])
def test_bad_uploads_are_refused_naming_the_field_and_leave_nothing(
        registry: Registry, store: ArtifactStore, members: list[tuple[str, Any]], field: str,
        problem: str) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if isinstance(content, bytes):
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
            else:
                info.type, info.linkname = tarfile.SYMTYPE, content[1]
                archive.addfile(info)
    buffer.seek(0)
    with pytest.raises(InvalidSpec, match=problem) as caught:
        registry.register_upload(Registration("bad"), buffer, filename=None)
    assert field in caught.value.fields
    assert store.list("models") == []
    with registry.sessions() as session:
        assert session.get(ModelVersionRow, ("bad", 1)) is None
        with pytest.raises(NotFound):
            registry_service.get_model(session, "bad")


def test_a_refused_upload_does_not_burn_the_version_number(
        registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec):
        registry.register_upload(Registration("m", flavor="onnx"), io.BytesIO(b"junk"),
                                 filename="m.onnx")  # not an ONNX graph: refused
    row = upload(registry, "m", builders.onnx_model(tmp_path / "m.onnx"))
    assert row.version == 1


@pytest.mark.parametrize(("request_fields", "field"), [
    pytest.param({"name": "Bad Name"}, "name", id="bad-name"),
    pytest.param({"name": "m", "flavor": "keras"}, "flavor", id="unknown-flavor"),
    pytest.param({"name": "m", "python_class": "nope"}, "python_class", id="bad-class"),
    pytest.param({"name": "m", "source_job": "ghost-123"}, "source_job", id="unknown-job"),
])
def test_bad_requests_are_refused_before_any_byte_is_stored(
        registry: Registry, store: ArtifactStore, request_fields: dict[str, Any],
        field: str) -> None:
    with pytest.raises((InvalidSpec, NotFound)) as caught:
        registry.register_upload(Registration(**request_fields), io.BytesIO(b"x"),
                                 filename="m.onnx")
    assert field in caught.value.fields  # type: ignore[union-attr]
    assert store.list("") == []


def test_a_filename_with_a_slash_is_refused(registry: Registry) -> None:
    with pytest.raises(InvalidSpec) as caught:
        registry.register_upload(Registration("m"), io.BytesIO(b"x"), filename="a/../b.onnx")
    assert "filename" in caught.value.fields


def test_a_python_model_keeps_its_package_and_class(registry: Registry, tmp_path: Path) -> None:
    root = builders.python_model(tmp_path / "pkg")
    stream = upload_archive(prepare_model(root, "python", python_class="predictor:Model"))
    row = registry.register_upload(Registration("py"), io.BytesIO(b"".join(stream)),
                                   filename=None)
    manifest = ModelManifest.model_validate_json(row.manifest or "")
    assert (manifest.path, manifest.python_class) == (".", "predictor:Model")
    assert [e.path for e in registry_service.files_of(row)] == [
        MANIFEST_FILE, "offset.txt", "predictor.py"]


# -- from a job's artifact ----------------------------------------------------------------


def make_job(registry: Registry) -> str:
    with registry.sessions.begin() as session:
        spec = JobSpec.model_validate({"name": "train", "command": ["python", "train.py"]})
        job_id = job_service.submit(session, spec, NODES, 1.0).id
        tracking_service.record_metrics(session, job_id, [
            tracking_service.Point("loss", 0, 0.9), tracking_service.Point("loss", 5, 0.2),
            tracking_service.Point("loss", 9, 0.3, rank=1),
            tracking_service.Point("auc", 5, 0.93)], 2.0)
    return job_id


def log_artifact(registry: Registry, job_id: str, path: str, data: bytes) -> None:
    info = registry.store.put_bytes(data, tracking_service.artifact_key(job_id, path))
    with registry.sessions.begin() as session:
        tracking_service.record_artifact(session, job_id, path, info.size, info.sha256 or "",
                                         3.0)


def test_registering_a_job_artifact_records_lineage_and_metrics(
        registry: Registry, store: ArtifactStore, tmp_path: Path) -> None:
    job_id = make_job(registry)
    data = builders.onnx_model(tmp_path / "m.onnx").read_bytes()
    log_artifact(registry, job_id, "out/model.onnx", data)
    row = registry.register_from_job(Registration("fraud", source_job=job_id),
                                     "out/model.onnx")
    assert (row.source_job, row.source_artifact) == (job_id, "out/model.onnx")
    assert json.loads(row.metrics or "{}") == {"auc": 0.93, "loss": 0.2}  # rank 0, last step
    assert store.read_bytes("models/fraud/1/model.onnx") == data
    assert json.loads(row.signature or "null")["outputs"][0]["name"] == "y"


def test_a_job_artifact_directory_is_copied_whole(registry: Registry, tmp_path: Path) -> None:
    job_id = make_job(registry)
    log_artifact(registry, job_id, "export/model.onnx",
                 builders.onnx_model(tmp_path / "m.onnx").read_bytes())
    log_artifact(registry, job_id, "export/labels.txt", b"no\nyes\n")
    row = registry.register_from_job(Registration("fraud", source_job=job_id), "export")
    assert [e.path for e in registry_service.files_of(row)] == [
        MANIFEST_FILE, "labels.txt", "model.onnx"]


def test_an_unknown_artifact_or_job_is_named(registry: Registry) -> None:
    job_id = make_job(registry)
    with pytest.raises(NotFound, match=r"has no artifact 'nope\.onnx'") as caught:
        registry.register_from_job(Registration("m", source_job=job_id), "nope.onnx")
    assert caught.value.fields == {"artifact": "unknown artifact"}
    with pytest.raises(NotFound) as caught:
        registry.register_from_job(Registration("m", source_job="ghost-1"), "m.onnx")
    assert caught.value.fields == {"source_job": "unknown job"}
    with pytest.raises(InvalidSpec) as bad:
        registry.register_from_job(Registration("m", source_job=job_id), "../x")
    assert "artifact" in bad.value.fields


# -- aliases and resolution ---------------------------------------------------------------


def test_aliases_point_at_one_version_and_move(registry: Registry, tmp_path: Path) -> None:
    model = builders.onnx_model(tmp_path / "m.onnx")
    for _ in range(3):
        upload(registry, "fraud", model)
    with registry.sessions.begin() as session:
        registry_service.set_alias(session, "fraud", "production", 2, 5.0)
        registry_service.set_alias(session, "fraud", "staging", 3, 5.0)
    with registry.sessions() as session:
        assert registry_service.resolve(session, parse_model_uri(
            "models:/fraud@production")).version == 2
        assert registry_service.resolve(session, ModelRef("fraud")).version == 3
        assert registry_service.resolve(session, ModelRef("fraud", version=1)).version == 1
        assert registry_service.aliases_of(session, ["fraud"]) == {
            "fraud": {"production": 2, "staging": 3}}
    with registry.sessions.begin() as session:
        registry_service.set_alias(session, "fraud", "production", 3, 6.0)
        registry_service.delete_alias(session, "fraud", "staging")
    with registry.sessions() as session:
        assert registry_service.aliases_of(session, ["fraud"]) == {"fraud": {"production": 3}}


@pytest.mark.parametrize(("uri", "field", "message"), [
    pytest.param("models:/ghost", "name", "no model 'ghost'", id="unknown-model"),
    pytest.param("models:/fraud/9", "version", "its versions: 1", id="unknown-version"),
    pytest.param("models:/fraud@canary", "alias", "has no alias 'canary'", id="unknown-alias"),
])
def test_resolving_what_does_not_exist_says_what_does(
        registry: Registry, tmp_path: Path, uri: str, field: str, message: str) -> None:
    upload(registry, "fraud", builders.onnx_model(tmp_path / "m.onnx"))
    with registry.sessions() as session, pytest.raises(NotFound, match=message) as caught:
        registry_service.resolve(session, parse_model_uri(uri))
    assert field in caught.value.fields


def test_an_alias_needs_an_existing_version(registry: Registry, tmp_path: Path) -> None:
    upload(registry, "fraud", builders.onnx_model(tmp_path / "m.onnx"))
    with registry.sessions.begin() as session, pytest.raises(NotFound):
        registry_service.set_alias(session, "fraud", "production", 4, 1.0)
    with registry.sessions.begin() as session, pytest.raises(InvalidSpec):
        registry_service.set_alias(session, "fraud", "latest", 1, 1.0)


def test_pending_versions_neither_resolve_nor_count_as_latest(
        registry: Registry, tmp_path: Path) -> None:
    upload(registry, "fraud", builders.onnx_model(tmp_path / "m.onnx"))
    with registry.sessions.begin() as session:  # a registration still writing its files
        session.add(ModelVersionRow(name="fraud", version=2, state="pending",
                                    storage_prefix="models/fraud/2/", size=0, files="[]",
                                    created_at=1.0))
    with registry.sessions() as session:
        assert registry_service.resolve(session, ModelRef("fraud")).version == 1
        with pytest.raises(NotFound):
            registry_service.resolve(session, ModelRef("fraud", version=2))


def test_listing_filters_by_name_and_pages(registry: Registry, tmp_path: Path) -> None:
    model = builders.onnx_model(tmp_path / "m.onnx")
    for name in ("churn", "fraud", "fraud-eu"):
        upload(registry, name, model)
    with registry.sessions() as session:
        rows, total = registry_service.list_models(session, "fraud")
        assert [r.name for r in rows] == ["fraud", "fraud-eu"] and total == 2
        rows, total = registry_service.list_models(session, limit=1, offset=1)
        assert [r.name for r in rows] == ["fraud"] and total == 3


def test_the_archive_streams_a_version_back_byte_for_byte(
        registry: Registry, tmp_path: Path) -> None:
    model = builders.onnx_model(tmp_path / "m.onnx")
    row = upload(registry, "fraud", model)
    stream = registry.archive(row)
    data = b"".join(stream)
    assert len(data) == stream.size
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        member = archive.extractfile("m.onnx")
        assert member is not None and member.read() == model.read_bytes()
