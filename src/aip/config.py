"""Typed settings, read from ``AIP_*`` environment variables on access (never at import).

    settings = Settings()          # reads the environment now
    settings.home / "token"        # where the admin token lives

Files under ``AIP_HOME`` (default ``~/.aip``):
    token         the admin API token (mode 0600), made on first ``aip up``
    server.json   {"url", "pid"} of the running server, so the CLI finds it with no flags
    aip.db        the embedded SQLite store (WAL)
    config.yaml   optional platform config (declared nodes, accelerators, labels)
    jobs/<id>/    per-job output, logs and replica status files
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORT = 8470


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIP_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".aip")
    server: str | None = None  # AIP_SERVER: URL of the API, overrides server.json
    token: str | None = None  # AIP_TOKEN: overrides the token file
    debug: bool = False  # AIP_DEBUG=1: show tracebacks
    database_url: str | None = None  # AIP_DATABASE_URL: PostgreSQL instead of SQLite
    config: Path | None = None  # AIP_CONFIG: platform config file, default home/config.yaml
    backend: Literal["local", "ray"] | None = None  # AIP_BACKEND: overrides server.backend
    ray_address: str | None = None  # AIP_RAY_ADDRESS: overrides server.ray_address

    @property
    def token_path(self) -> Path:
        return self.home / "token"

    @property
    def server_info_path(self) -> Path:
        return self.home / "server.json"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def config_path(self) -> Path:
        return self.config or self.home / "config.yaml"

    @property
    def sqlite_url(self) -> str:
        return f"sqlite:///{self.home / 'aip.db'}"

    def effective_database_url(self) -> str:
        return self.database_url or self.sqlite_url

    def read_server_info(self) -> dict[str, object] | None:
        try:
            data = json.loads(self.server_info_path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def resolve_server_url(self) -> str | None:
        """AIP_SERVER, else the address the local server recorded in AIP_HOME."""
        if self.server:
            return self.server.rstrip("/")
        info = self.read_server_info()
        url = info.get("url") if info else None
        return str(url).rstrip("/") if url else None

    def resolve_token(self) -> str | None:
        if self.token:
            return self.token
        try:
            return self.token_path.read_text().strip() or None
        except OSError:
            return None


def debug_enabled() -> bool:
    return os.environ.get("AIP_DEBUG", "").lower() in {"1", "true", "yes"}
