"""Model registry services: register versions (their files streamed into the artifact store),
list and resolve them, point aliases at them.

    registry = Registry(platform.sessions, platform.artifacts, platform.clock)
    row = registry.register_upload(Registration("fraud", flavor="onnx"), body, filename=None)
    row = registry.register_from_job(Registration("fraud", source_job=job_id), "model.onnx")
    with platform.sessions() as session:
        row = resolve(session, parse_model_uri("models:/fraud@production"))

A registration has three steps, so no transaction stays open while bytes move:

1. reserve: the model row (made on first use) and the next version number, as a ``pending``
   version row;
2. write: the files go to ``models/<name>/<version>/`` in the artifact store; then the manifest
   (``aip-model.json``) is checked, completed (flavor, signature inferred where no code runs)
   and written there last;
3. commit: the row turns ``ready`` with its file index, tree digest, signature and lineage
   (the source job and that job's latest metrics).

A failure in step 2 or 3 deletes the pending row and the files written, so the version number
is free again. Only ready versions resolve, list as latest or take aliases.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from aip.control import tracking as tracking_service
from aip.errors import Conflict, InvalidSpec, NotFound
from aip.registry.flavors import (
    SAVED_MODEL_FILE,
    check_flavor,
    check_python_class,
    detect_in_tree,
    locate_in_tree,
    manifest_bytes,
    parse_manifest,
)
from aip.registry.signatures import Inferred, SignatureUnavailable, infer_in_subprocess
from aip.registry.tree import FileEntry, TarMember, TarStream, member_path, read_tar, tree_digest
from aip.registry.uris import ModelRef, check_alias, check_model_name
from aip.spec.model import MANIFEST_FILE, ModelManifest, Signature
from aip.storage import ArtifactStore
from aip.storage.keys import join
from aip.store.registry_tables import PENDING, READY, ModelAliasRow, ModelRow, ModelVersionRow
from aip.store.tables import JobRow
from aip.store.tracking_tables import MetricRow

log = logging.getLogger("aip.registry")

MODELS_PREFIX = "models"
MAX_MANIFEST_BYTES = 1 << 20
HEAD_BYTES = 4096
RESERVE_ATTEMPTS = 5
# Flavors whose signature the server reads without running code from the file.
SERVER_INFERRED = frozenset({"onnx", "xgboost", "lightgbm", "tensorflow"})

Infer = Callable[[str, Path], Inferred]


@dataclass(frozen=True)
class Registration:
    """What a registration asks for besides the files."""

    name: str
    flavor: str | None = None
    signature: Signature | None = None
    python_class: str | None = None
    description: str | None = None
    source_job: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_by: str | None = None


@dataclass
class Written:
    """What step 2 stored: the files (without the manifest) and the manifest's bytes, if the
    upload brought one; ``single`` when the model is one file."""

    files: list[FileEntry]
    manifest: bytes | None = None
    single: bool = False


def version_prefix(name: str, version: int) -> str:
    return f"{MODELS_PREFIX}/{name}/{version}"


class Registry:
    """Registration and downloads: the services that touch both the store and the files."""

    def __init__(self, sessions: sessionmaker[Session], store: ArtifactStore,
                 clock: Callable[[], float], *, infer: Infer = infer_in_subprocess) -> None:
        """``infer`` reads a signature from local files without running their code (tests
        swap the child process for an in-process call)."""
        self.sessions = sessions
        self.store = store
        self.clock = clock
        self.infer = infer

    def register_upload(self, request: Registration, body: IO[bytes], *,
                        filename: str | None) -> ModelVersionRow:
        """Register the body: a tar of the model directory (``filename`` None), or one file
        stored under ``filename``. Blocking: run it in a worker thread."""
        _check_request(request)
        single = member_path(filename, "filename") if filename is not None else None
        if single is not None and "/" in single:
            raise InvalidSpec(f"filename {filename!r} must be a file name, without '/'",
                              fields={"filename": "not a plain file name"})

        def write(prefix: str) -> Written:
            if single is not None:
                return Written([self._put(body, prefix, single)], single=True)
            return self._write_archive(body, prefix)

        return self._register(request, write, source_artifact=None)

    def register_from_job(self, request: Registration, artifact: str) -> ModelVersionRow:
        """Register a job's artifact (a file, or a directory of them) already in the store,
        copying it under the model; the version records the job and its latest metrics."""
        _check_request(request)
        if request.source_job is None:
            raise InvalidSpec("give source_job, the job whose artifact to register",
                              fields={"source_job": "required"})
        try:
            tracking_service.check_artifact_path(artifact)
        except InvalidSpec as exc:
            raise InvalidSpec(exc.message, fields={"artifact": exc.fields["path"]}) from None
        with self.sessions() as session:
            _check_job(session, request.source_job)
            rows = tracking_service.artifacts(session, request.source_job, prefix=artifact)
        if not rows:
            raise NotFound(f"job {request.source_job} has no artifact {artifact!r}: list them "
                           f"with `aip job artifacts {request.source_job}`",
                           fields={"artifact": "unknown artifact"})
        single = len(rows) == 1 and rows[0].path == artifact

        def write(prefix: str) -> Written:
            written = Written([], single=single)
            for row in rows:
                relative = PurePosixPath(artifact).name if single else row.path[len(artifact) + 1:]
                key = tracking_service.artifact_key(request.source_job or "", row.path)
                if relative == MANIFEST_FILE:
                    written.manifest = self.store.read_bytes(key)
                    continue
                with self.store.open(key) as stream:
                    written.files.append(self._put(stream, prefix, relative))
            return written

        return self._register(request, write, source_artifact=artifact)

    def archive(self, row: ModelVersionRow) -> TarStream:
        """The version's files as a tar stream read from the store (each file verified
        against its recorded sha256 as it is read)."""
        members = [TarMember(entry.path, entry.size,
                             opener=_opener(self.store, file_key(row, entry.path)))
                   for entry in files_of(row)]
        return TarStream(members)

    def open_file(self, row: ModelVersionRow, path: str) -> tuple[IO[bytes], FileEntry]:
        entry = next((entry for entry in files_of(row) if entry.path == path), None)
        if entry is None:
            raise NotFound(f"model {row.name} version {row.version} has no file {path!r}",
                           fields={"path": "unknown file"})
        return self.store.open(file_key(row, path)), entry

    # -- the three steps ------------------------------------------------------------------

    def _register(self, request: Registration, write: Callable[[str], Written],
                  source_artifact: str | None) -> ModelVersionRow:
        version = self._reserve(request, source_artifact)
        prefix = version_prefix(request.name, version)
        try:
            written = write(prefix)
            manifest = self._complete_manifest(request, written, prefix)
            info = self.store.put_bytes(manifest_bytes(manifest), join(prefix, MANIFEST_FILE))
            assert info.sha256 is not None
            files = sorted([*written.files, FileEntry(MANIFEST_FILE, info.size, info.sha256)],
                           key=lambda entry: entry.path)
            return self._commit(request, version, manifest, files)
        except BaseException:
            self._abandon(request.name, version, prefix)
            raise

    def _reserve(self, request: Registration, source_artifact: str | None) -> int:
        for attempt in range(RESERVE_ATTEMPTS):
            try:
                with self.sessions.begin() as session:
                    now = self.clock()
                    if request.source_job is not None:
                        _check_job(session, request.source_job)
                    model = session.get(ModelRow, request.name)
                    if model is None:
                        model = ModelRow(name=request.name, description=request.description,
                                         created_at=now, updated_at=now)
                        session.add(model)
                        session.flush()
                    elif request.description is not None:
                        model.description = request.description
                    latest = session.scalar(select(func.max(ModelVersionRow.version)).where(
                        ModelVersionRow.name == request.name)) or 0
                    session.add(ModelVersionRow(
                        name=request.name, version=latest + 1, state=PENDING,
                        flavor=request.flavor, storage_prefix=version_prefix(
                            request.name, latest + 1) + "/",
                        size=0, files="[]", source_job=request.source_job,
                        source_artifact=source_artifact, created_at=now,
                        created_by=request.created_by))
                    return int(latest + 1)
            except IntegrityError:  # another registration took the number: take the next
                if attempt == RESERVE_ATTEMPTS - 1:
                    raise Conflict(f"model {request.name!r} is being registered by others "
                                   "right now; try again", fields={"name": "busy"}) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _complete_manifest(self, request: Registration, written: Written,
                           prefix: str) -> ModelManifest:
        paths = [entry.path for entry in written.files]
        if not paths:
            raise InvalidSpec("the upload holds no model files", fields={"archive": "empty"})

        def head(path: str) -> bytes:
            with self.store.open(join(prefix, path), verify=False) as stream:
                return stream.read(HEAD_BYTES)

        base = parse_manifest(written.manifest) if written.manifest is not None else None
        if base is not None and request.flavor and request.flavor != base.flavor:
            raise InvalidSpec(f"flavor {request.flavor!r} differs from the manifest's "
                              f"{base.flavor!r}", fields={"flavor": "differs from the manifest"})
        flavor = base.flavor if base else request.flavor or detect_in_tree(
            paths, head, "the upload")
        if base is not None:
            model_path = base.path
        elif written.single:
            model_path = paths[0]
        else:
            model_path = locate_in_tree(paths, flavor, head, "the upload")
        if not _present(model_path, paths):
            raise InvalidSpec(f"the manifest's path {model_path!r} is not among the uploaded "
                              "files", fields={"path": f"{model_path}: missing"})
        python_class = request.python_class or (base.python_class if base else None)
        if flavor == "python":
            check_python_class(python_class, paths)
        elif python_class:
            raise InvalidSpec("python_class is only for the python flavor",
                              fields={"python_class": f"not used by the {flavor} flavor"})
        signature = request.signature or (base.signature if base else None)
        metadata = dict(base.metadata) if base else {}
        if signature is None:
            inferred = self._infer(flavor, model_path, prefix)
            if inferred is not None:
                signature = inferred.signature
                metadata = {**inferred.metadata, **metadata}
        return ModelManifest(
            flavor=flavor,  # type: ignore[arg-type]  # detected or checked: one of FLAVORS
            path=model_path, signature=signature, python_class=python_class,
            metadata={**metadata, **request.metadata})

    def _infer(self, flavor: str, model_path: str, prefix: str) -> Inferred | None:
        """The signature of flavors that can be read without running the file's code; the
        model file is fetched to a temporary directory and read by a child process."""
        skops = flavor == "sklearn" and model_path.lower().endswith(".skops")
        if flavor not in SERVER_INFERRED and not skops:
            return None
        relative = (f"{model_path}/{SAVED_MODEL_FILE}".removeprefix("./")
                    if flavor == "tensorflow" else model_path)
        with tempfile.TemporaryDirectory(prefix="aip-signature-") as scratch:
            local = Path(scratch) / relative
            self.store.get_file(join(prefix, relative), local)
            target = local.parent if flavor == "tensorflow" else local
            try:
                return self.infer(flavor, target)
            except SignatureUnavailable as exc:
                log.info("no signature for %s: %s", join(prefix, model_path), exc)
                return None

    def _commit(self, request: Registration, version: int, manifest: ModelManifest,
                files: list[FileEntry]) -> ModelVersionRow:
        with self.sessions.begin() as session:
            row = session.get(ModelVersionRow, (request.name, version))
            assert row is not None, "a pending version vanished"
            row.state = READY
            row.flavor = manifest.flavor
            row.manifest = manifest.model_dump_json()
            row.signature = (manifest.signature.model_dump_json()
                             if manifest.signature else None)
            row.files = json.dumps([entry.to_json() for entry in files])
            row.size = sum(entry.size for entry in files)
            row.sha256 = tree_digest(files)
            if request.source_job is not None:
                row.metrics = json.dumps(latest_metrics(session, request.source_job))
            model = session.get(ModelRow, request.name)
            if model is not None:
                model.updated_at = self.clock()
        return row

    def _abandon(self, name: str, version: int, prefix: str) -> None:
        try:
            with self.sessions.begin() as session:
                row = session.get(ModelVersionRow, (name, version))
                if row is not None and row.state == PENDING:
                    session.delete(row)
                    session.flush()
                others = session.scalar(select(func.count()).where(
                    ModelVersionRow.name == name))
                model = session.get(ModelRow, name)
                if not others and model is not None:  # its first registration failed
                    session.delete(model)
            self.store.delete(prefix)
        except Exception:  # the failure that got us here matters more
            log.exception("could not clean up the failed registration of %s/%s", name, version)

    # -- files ----------------------------------------------------------------------------

    def _put(self, stream: IO[bytes], prefix: str, path: str) -> FileEntry:
        info = self.store.put_stream(stream, join(prefix, path))  # type: ignore[arg-type]
        assert info.sha256 is not None
        return FileEntry(path, info.size, info.sha256)

    def _write_archive(self, body: IO[bytes], prefix: str) -> Written:
        written = Written([])
        stored: dict[str, FileEntry] = {}
        for path, content in read_tar(body):
            if path == MANIFEST_FILE:
                if isinstance(content, str):
                    raise InvalidSpec(f"{MANIFEST_FILE} must be a file, not a link",
                                      fields={"archive": f"{MANIFEST_FILE}: a link"})
                written.manifest = content.read(MAX_MANIFEST_BYTES + 1)
                if len(written.manifest) > MAX_MANIFEST_BYTES:
                    raise InvalidSpec(f"{MANIFEST_FILE} is over {MAX_MANIFEST_BYTES} bytes",
                                      fields={"archive": f"{MANIFEST_FILE}: too large"})
                continue
            if isinstance(content, str):  # a link inside the tree: store a copy
                if content not in stored:
                    raise InvalidSpec(f"refused archive member {path!r}: it links to "
                                      f"{content!r}, which is no stored file",
                                      fields={"archive": f"{path}: link to an unknown file"})
                with self.store.open(join(prefix, content)) as source:
                    entry = self._put(source, prefix, path)
            else:
                entry = self._put(content, prefix, path)
            stored[path] = entry
            written.files.append(entry)
        return written


# -- queries ------------------------------------------------------------------------------


def get_model(session: Session, name: str) -> ModelRow:
    row = session.get(ModelRow, name)
    if row is None:
        raise NotFound(f"no model {name!r}: list models with `aip model list`",
                       fields={"name": "unknown model"})
    return row


def list_models(session: Session, text: str | None = None, limit: int = 50,
                offset: int = 0) -> tuple[list[ModelRow], int]:
    """Models by name; ``text`` filters on a part of the name."""
    query = select(ModelRow)
    if text:
        query = query.where(ModelRow.name.contains(text, autoescape=True))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(ModelRow.name).limit(limit).offset(offset)).all()
    return list(rows), int(total)


def versions_of(session: Session, names: Sequence[str]) -> dict[str, list[ModelVersionRow]]:
    """Each model's versions, newest first (pending ones included)."""
    result: dict[str, list[ModelVersionRow]] = {name: [] for name in names}
    if names:
        for row in session.scalars(select(ModelVersionRow).where(ModelVersionRow.name.in_(
                names)).order_by(ModelVersionRow.name, ModelVersionRow.version.desc())):
            result[row.name].append(row)
    return result


def aliases_of(session: Session, names: Sequence[str]) -> dict[str, dict[str, int]]:
    """``{model: {alias: version}}``."""
    result: dict[str, dict[str, int]] = {name: {} for name in names}
    if names:
        for row in session.scalars(select(ModelAliasRow).where(ModelAliasRow.name.in_(
                names)).order_by(ModelAliasRow.alias)):
            result[row.name][row.alias] = row.version
    return result


def get_version(session: Session, name: str, version: int) -> ModelVersionRow:
    get_model(session, name)
    row = session.get(ModelVersionRow, (name, version))
    if row is None or row.state != READY:
        ready = _ready_versions(session, name)
        known = f"its versions: {', '.join(map(str, ready))}" if ready else "it has none yet"
        raise NotFound(f"model {name!r} has no version {version} ({known})",
                       fields={"version": "unknown version"})
    return row


def resolve(session: Session, ref: ModelRef) -> ModelVersionRow:
    """The ready version a reference names: by number, by alias, or the newest."""
    get_model(session, ref.name)
    if ref.version is not None:
        return get_version(session, ref.name, ref.version)
    if ref.alias is not None:
        alias = session.get(ModelAliasRow, (ref.name, ref.alias))
        if alias is None:
            known = sorted(aliases_of(session, [ref.name])[ref.name])
            hint = f"its aliases: {', '.join(known)}" if known else "it has no aliases"
            raise NotFound(f"model {ref.name!r} has no alias {ref.alias!r} ({hint}); set one "
                           f"with `aip model alias {ref.name} {ref.alias} VERSION`",
                           fields={"alias": "unknown alias"})
        return get_version(session, ref.name, alias.version)
    ready = _ready_versions(session, ref.name)
    if not ready:
        raise NotFound(f"model {ref.name!r} has no registered version yet",
                       fields={"version": "none ready"})
    return get_version(session, ref.name, ready[-1])


def set_alias(session: Session, name: str, alias: str, version: int,
              now: float) -> ModelAliasRow:
    """Point ``alias`` at ``version`` (moving it if it pointed elsewhere)."""
    check_alias(alias)
    get_version(session, name, version)
    row = session.get(ModelAliasRow, (name, alias))
    if row is None:
        row = ModelAliasRow(name=name, alias=alias, version=version, updated_at=now)
        session.add(row)
    else:
        row.version, row.updated_at = version, now
    return row


def delete_alias(session: Session, name: str, alias: str) -> None:
    get_model(session, name)
    row = session.get(ModelAliasRow, (name, alias))
    if row is None:
        raise NotFound(f"model {name!r} has no alias {alias!r}", fields={"alias": "unknown alias"})
    session.delete(row)


def latest_metrics(session: Session, job_id: str) -> dict[str, float | None]:
    """Each metric's value at its last step, from the lowest-ranked replica that logged it
    (rank 0 in the usual case)."""
    last_steps = session.execute(
        select(MetricRow.key, MetricRow.rank, func.max(MetricRow.step))
        .where(MetricRow.job_id == job_id).group_by(MetricRow.key, MetricRow.rank)
        .order_by(MetricRow.key, MetricRow.rank))
    chosen: dict[str, tuple[int, int]] = {}
    for key, rank, step in last_steps:
        chosen.setdefault(key, (rank, step))
    values: dict[str, float | None] = {}
    for key, (rank, step) in chosen.items():
        point = session.get(MetricRow, (job_id, key, rank, step))
        values[key] = point.value if point is not None else None
    return values


def file_key(row: ModelVersionRow, path: str) -> str:
    """Where one file of a version is in the artifact store."""
    return join(row.storage_prefix.rstrip("/"), path)


def files_of(row: ModelVersionRow) -> list[FileEntry]:
    return [FileEntry(item["path"], int(item["size"]), item["sha256"])
            for item in json.loads(row.files or "[]")]


# -- helpers ------------------------------------------------------------------------------


def _check_request(request: Registration) -> None:
    check_model_name(request.name)
    if request.flavor is not None:
        check_flavor(request.flavor)
    if request.python_class is not None:
        check_python_class(request.python_class)


def _check_job(session: Session, job_id: str) -> None:
    if session.scalar(select(JobRow.id).where(JobRow.id == job_id)) is None:
        raise NotFound(f"no job {job_id!r}: list jobs with `aip job list`",
                       fields={"source_job": "unknown job"})


def _ready_versions(session: Session, name: str) -> list[int]:
    return list(session.scalars(select(ModelVersionRow.version).where(
        ModelVersionRow.name == name, ModelVersionRow.state == READY)
        .order_by(ModelVersionRow.version)).all())


def _present(model_path: str, paths: Sequence[str]) -> bool:
    if model_path == ".":
        return True
    return any(path == model_path or path.startswith(f"{model_path}/") for path in paths)


def _opener(store: ArtifactStore, key: str) -> Callable[[], IO[bytes]]:
    return lambda: store.open(key)

