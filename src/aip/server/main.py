"""``aip up``: start the control plane (store, reconciler, API) and serve until stopped.

The server records its address in ``AIP_HOME/server.json`` so the CLI finds it with no
flags, and removes the record when it stops cleanly.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn

from aip.config import Settings
from aip.control.platform import Platform, PlatformConfig
from aip.server.app import create_app
from aip.server.auth import ensure_token

log = logging.getLogger("aip.server")


def run_server(host: str | None = None, port: int | None = None,
               config_path: Path | None = None, backend: str | None = None,
               ray_address: str | None = None) -> None:
    """Serve until SIGINT/SIGTERM. ``host``/``port``/``backend``/``ray_address`` override
    the environment (AIP_BACKEND, AIP_RAY_ADDRESS) and the config file."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = Settings()
    overrides = {"config": config_path, "backend": backend, "ray_address": ray_address}
    settings = settings.model_copy(update={key: value for key, value in overrides.items()
                                           if value is not None})
    config = PlatformConfig.load(settings.config_path)
    host = host or config.server.host
    port = config.server.port if port is None else port
    url = f"http://{_url_host(host)}:{port}"
    settings.home.mkdir(parents=True, exist_ok=True)
    token = ensure_token(settings.token_path)
    platform = Platform.from_settings(settings, config, server_url=url)
    app = create_app(platform, token)
    server = _Server(uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False,
        loop="uvloop", http="httptools", timeout_graceful_shutdown=3),
        on_listening=lambda: _record(settings, url), on_stopped=lambda: _forget(settings))
    log.info("starting AIP control plane at %s (database %s, %s backend, %d node(s))", url,
             _redacted(settings.effective_database_url()),
             settings.backend or config.server.backend, len(platform.nodes()))
    server.run()


class _Server(uvicorn.Server):
    """uvicorn's server, recording ``server.json`` once the socket listens (so a client that
    finds the file can connect) and removing it when serving ends."""

    def __init__(self, config: uvicorn.Config, *, on_listening: Callable[[], None],
                 on_stopped: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_listening = on_listening
        self.on_stopped = on_stopped

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.on_listening()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().shutdown(sockets=sockets)
        finally:
            self.on_stopped()


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _record(settings: Settings, url: str) -> None:
    path = settings.server_info_path
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    os.replace(tmp, path)


def _forget(settings: Settings) -> None:
    info = settings.read_server_info()
    if info and info.get("pid") == os.getpid():
        settings.server_info_path.unlink(missing_ok=True)


def _redacted(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
