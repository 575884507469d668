"""Wiring of one control plane: config, store, inventory, executor, reconciler.

    platform = Platform.from_settings(Settings())
    platform.start()      # migrate, create the default queue, recover, start the loop
    ...
    platform.close()

The backend (``server.backend``, or ``aip up --backend``) swaps the executor and the node
source, nothing else: ``local`` runs replicas as processes on this host and takes its nodes
from the config file (fixed for the server's life); ``ray`` runs them on the nodes of the Ray
cluster at ``server.ray_address`` and takes its nodes from Ray, refreshed about once a second
(``aip.executor.ray``, ``aip.inventory.ray``).

``platform.artifacts`` is the artifact store of the ``storage:`` section (default: the
directory ``AIP_HOME/artifacts``), built on first use so that a server which never touches
artifacts never imports fsspec or s3fs (``aip.storage``).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from aip.config import DEFAULT_PORT, Settings
from aip.control import queues as queue_service
from aip.control.endpoint_controller import EndpointController, RouterProcess
from aip.control.launch import Launcher
from aip.control.reconciler import ReconcileOptions, Reconciler
from aip.errors import AIPError, InvalidSpec
from aip.executor.base import Executor
from aip.inventory.config import InventoryConfig
from aip.inventory.config import build_nodes as build_inventory_nodes
from aip.scheduler import Node
from aip.spec.endpoint import EndpointSpec
from aip.spec.loading import load_yaml
from aip.storage.config import StorageConfig
from aip.store.db import make_engine, migrate, session_factory
from aip.store.endpoint_tables import EndpointRow

if TYPE_CHECKING:
    from aip.storage.store import ArtifactStore

log = logging.getLogger("aip.platform")

Seconds = float
Backend = Literal["local", "ray"]


class ServerConfig(BaseModel):
    """The ``server:`` section of ``AIP_HOME/config.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    stop_grace_period: Seconds = Field(default=10.0, gt=0)
    retry_backoff_base: Seconds = Field(default=1.0, ge=0)
    retry_backoff_max: Seconds = Field(default=60.0, ge=0)
    port_range: tuple[int, int] = Field(
        default=(20000, 29999), description="Ports AIP hands to replicas for their framework's "
        "rendezvous (MASTER_PORT, TF_CONFIG, ...), first and last; never two live replicas of a "
        "node at once.")
    placement_policy: str = Field(
        default="aip", description="How replicas are placed: aip (default), fgd, best-fit, "
        "gpu-packing, gpu-clustering, dot-product or random.")
    backend: Backend = Field(
        default="local", description="Where replicas run: local (processes on this host, "
        "nodes from this file) or ray (the nodes of a Ray cluster, see ray_address).")
    ray_address: str | None = Field(
        default=None, description="The Ray cluster of the ray backend, as ray.init takes it "
        "(10.0.0.1:6379); default: the cluster `ray start` started on this host.")
    router_host: str = Field(default="127.0.0.1", description="Where the serving router "
                             "listens (started with the first endpoint).")
    router_port: int = Field(default=8480, ge=1, le=65535,
                             description="The serving router's port: every endpoint's traffic.")

    @field_validator("placement_policy")
    @classmethod
    def _known_policy(cls, name: str) -> str:
        from aip.scheduler.policies import policy_names

        if name not in policy_names():
            raise ValueError(f"unknown placement policy {name!r}; known: "
                             f"{', '.join(policy_names())}")
        return name

    @field_validator("port_range")
    @classmethod
    def _port_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        first, last = value
        if not 1024 <= first <= last <= 65535:
            raise ValueError("give [first, last] with 1024 <= first <= last <= 65535")
        return value

    def reconcile_options(self) -> ReconcileOptions:
        return ReconcileOptions(stop_grace_period=self.stop_grace_period,
                                retry_backoff_base=self.retry_backoff_base,
                                retry_backoff_max=self.retry_backoff_max,
                                placement_policy=self.placement_policy)


class PlatformConfig(BaseModel):
    """The whole config file: ``server``, ``storage`` (the artifact store) and the node
    inventory (``node`` / ``nodes``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server: ServerConfig = Field(default_factory=ServerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    node: dict[str, Any] | None = None
    nodes: list[dict[str, Any]] | None = None

    @classmethod
    def load(cls, path: Path) -> PlatformConfig:
        """Read the file if it exists; a missing file means all defaults."""
        if not path.exists():
            return cls()
        text = path.read_text()
        if not yaml.safe_load(text):
            return cls()
        config = load_yaml(text, cls, source=str(path))
        config.inventory(source=str(path))  # report inventory mistakes now, with the file
        return config

    def inventory(self, source: str = "config") -> InventoryConfig:
        data = {key: value for key in ("node", "nodes")
                if (value := getattr(self, key)) is not None}
        try:
            return InventoryConfig.from_config_mapping(data)
        except InvalidSpec as exc:
            raise InvalidSpec(f"{source}: {exc.message}", fields=exc.fields) from None


class Platform:
    def __init__(
        self,
        settings: Settings,
        config: PlatformConfig,
        engine: Engine,
        nodes: Sequence[Node] | Callable[[], Sequence[Node]],
        executor: Executor,
        clock: Callable[[], float] = time.time,
        server_url: str | None = None,
        on_close: Callable[[], None] | None = None,
        artifacts: ArtifactStore | None = None,
    ) -> None:
        """``nodes`` is a fixed list, or a function returning the current nodes (a cluster
        whose nodes come and go); ``on_close`` releases the backend (after the loop stops);
        ``artifacts`` replaces the store that ``config.storage`` names."""
        self.settings = settings
        self.config = config
        self.engine = engine
        self.sessions: sessionmaker[Session] = session_factory(engine)
        self._nodes: Callable[[], Sequence[Node]] = (
            nodes if callable(nodes) else _fixed(list(nodes)))
        self.executor = executor
        self.clock = clock
        self._on_close = on_close
        self._artifacts = artifacts
        self._artifacts_lock = threading.Lock()
        self.launcher = Launcher(executor, settings.jobs_dir, server_url=server_url,
                                 port_range=config.server.port_range)
        self.reconciler = Reconciler(
            self.sessions, executor, self.nodes, self.launcher,
            config.server.reconcile_options(), clock=clock)
        self.router = RouterProcess(
            port=config.server.router_port, host=config.server.router_host,
            token_file=settings.token_path, log_file=settings.home / "router.log")
        self.endpoints = EndpointController(
            self.sessions, self.nodes, self.router, lambda: settings.token_path.read_text().strip(),
            replica_command=self._replica_command, wake_scheduler=self.reconciler.wake,
            clock=clock)

    @classmethod
    def from_settings(cls, settings: Settings, config: PlatformConfig | None = None,
                      server_url: str | None = None) -> Platform:
        config = config or PlatformConfig.load(settings.config_path)
        settings.home.mkdir(parents=True, exist_ok=True)
        backend = settings.backend or config.server.backend
        if backend == "ray":
            return cls._on_ray(settings, config, server_url)
        from aip.executor.local import LocalExecutor

        engine = make_engine(settings.effective_database_url())
        nodes = build_inventory_nodes(config.inventory())
        return cls(settings, config, engine, nodes, LocalExecutor(), server_url=server_url)

    @classmethod
    def _on_ray(cls, settings: Settings, config: PlatformConfig,
                server_url: str | None) -> Platform:
        from aip.executor.ray import RayCluster, RayExecutor

        if config.node is not None or config.nodes is not None:
            log.warning("%s: 'node'/'nodes' are ignored with the ray backend: the nodes come "
                        "from the Ray cluster (declare accelerators with `ray start "
                        "--resources`, labels with `ray start --labels`)", settings.config_path)
        cluster = RayCluster(settings.ray_address or config.server.ray_address).connect()
        engine = make_engine(settings.effective_database_url())
        executor = RayExecutor(cluster)
        return cls(settings, config, engine, cluster.nodes, executor, server_url=server_url,
                   on_close=executor.close)

    def nodes(self) -> Sequence[Node]:
        return self._nodes()

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store (models, job outputs), built on first use."""
        with self._artifacts_lock:
            if self._artifacts is None:
                from aip.storage.store import store_from_config

                self._artifacts = store_from_config(self.config.storage, self.settings.home)
            return self._artifacts

    def _replica_command(self, row: EndpointRow, label: str,
                         version: dict[str, Any]) -> list[str]:
        """An endpoint replica: fetch the version from the artifact store, then serve it."""
        spec = EndpointSpec.model_validate_json(row.spec)
        storage = self.config.storage
        url = storage.resolved_url(self.settings.home)
        options = storage.options() if url.startswith("s3://") else {}
        host = "0.0.0.0" if self.config.server.backend == "ray" else "127.0.0.1"
        return [sys.executable, "-m", "aip.serving.launch", "--version", json.dumps(version),
                "--store-url", url, "--store-options", json.dumps(options),
                "--cache-dir", str(self.settings.home / "models"), "--host", host, "--",
                "--name", row.name, "--max-batch-size", str(spec.batching.max_batch_size),
                "--max-wait-ms", f"{spec.batching.max_wait_ms:g}",
                "--max-body-bytes", str(spec.max_body)]

    def start(self) -> None:
        migrate(self.engine)
        with self.sessions.begin() as session:
            queue_service.ensure_default(session, self.clock())
        self._recover_registry()
        self.reconciler.start()
        self.endpoints.start()

    def _recover_registry(self) -> None:
        """Finish model versions the last run left pending or half removed. A store that
        does not answer now must not stop the platform: they are retried next start."""
        from aip.control.model_removal import recover

        try:
            recover(self.sessions, self.artifacts)
        except AIPError as exc:
            log.warning("could not clean up unfinished model versions: %s", exc)

    def close(self) -> None:
        self.endpoints.stop()
        self.reconciler.stop()
        self.engine.dispose()
        if self._on_close is not None:
            self._on_close()


def _fixed(nodes: list[Node]) -> Callable[[], Sequence[Node]]:
    return lambda: nodes
