"""Wiring of one control plane: config, store, inventory, executor, reconciler.

    platform = Platform.from_settings(Settings())
    platform.start()      # migrate, create the default queue, recover, start the loop
    ...
    platform.close()

The cluster backend (a later issue) swaps the executor and the node source, nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from aip.config import DEFAULT_PORT, Settings
from aip.control import queues as queue_service
from aip.control.launch import Launcher
from aip.control.reconciler import ReconcileOptions, Reconciler
from aip.errors import InvalidSpec
from aip.executor.base import Executor
from aip.inventory.config import InventoryConfig
from aip.inventory.config import build_nodes as build_inventory_nodes
from aip.scheduler import Node
from aip.spec.loading import load_yaml
from aip.store.db import make_engine, migrate, session_factory

Seconds = float


class ServerConfig(BaseModel):
    """The ``server:`` section of ``AIP_HOME/config.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    stop_grace_period: Seconds = Field(default=10.0, gt=0)
    retry_backoff_base: Seconds = Field(default=1.0, ge=0)
    retry_backoff_max: Seconds = Field(default=60.0, ge=0)
    placement_policy: str = Field(
        default="aip", description="How replicas are placed: aip (default), fgd, best-fit, "
        "gpu-packing, gpu-clustering, dot-product or random.")

    @field_validator("placement_policy")
    @classmethod
    def _known_policy(cls, name: str) -> str:
        from aip.scheduler.policies import policy_names

        if name not in policy_names():
            raise ValueError(f"unknown placement policy {name!r}; known: "
                             f"{', '.join(policy_names())}")
        return name

    def reconcile_options(self) -> ReconcileOptions:
        return ReconcileOptions(stop_grace_period=self.stop_grace_period,
                                retry_backoff_base=self.retry_backoff_base,
                                retry_backoff_max=self.retry_backoff_max,
                                placement_policy=self.placement_policy)


class PlatformConfig(BaseModel):
    """The whole config file: ``server``, and the node inventory (``node`` / ``nodes``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server: ServerConfig = Field(default_factory=ServerConfig)
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
        nodes: Sequence[Node],
        executor: Executor,
        clock: Callable[[], float] = time.time,
        server_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.engine = engine
        self.sessions: sessionmaker[Session] = session_factory(engine)
        self._nodes = list(nodes)
        self.executor = executor
        self.clock = clock
        self.launcher = Launcher(executor, settings.jobs_dir, server_url=server_url)
        self.reconciler = Reconciler(
            self.sessions, executor, self.nodes, self.launcher,
            config.server.reconcile_options(), clock=clock)

    @classmethod
    def from_settings(cls, settings: Settings, config: PlatformConfig | None = None,
                      server_url: str | None = None) -> Platform:
        from aip.executor.local import LocalExecutor

        config = config or PlatformConfig.load(settings.config_path)
        settings.home.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.effective_database_url())
        nodes = build_inventory_nodes(config.inventory())
        return cls(settings, config, engine, nodes, LocalExecutor(), server_url=server_url)

    def nodes(self) -> Sequence[Node]:
        return self._nodes

    def start(self) -> None:
        migrate(self.engine)
        with self.sessions.begin() as session:
            queue_service.ensure_default(session, self.clock())
        self.reconciler.start()

    def close(self) -> None:
        self.reconciler.stop()
        self.engine.dispose()
