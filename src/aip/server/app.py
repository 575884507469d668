"""The FastAPI application: REST API under /api/v1, OpenAPI at /docs, the console at /."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from aip import __version__
from aip.console import mount_console
from aip.control.platform import Platform
from aip.server.auth import require_token
from aip.server.errors import install_error_handlers
from aip.server.routes import endpoints, jobs, models, nodes, queues, tracking

API_PREFIX = "/api/v1"


def create_app(platform: Platform, token: str) -> FastAPI:
    """The API over ``platform``. Serving the app starts the platform (migrations, default
    queue, recovery, reconcile loop) and stops it at shutdown."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        platform.start()
        try:
            yield
        finally:
            platform.close()

    app = FastAPI(title="AIP", version=__version__, docs_url="/docs",
                  openapi_url=f"{API_PREFIX}/openapi.json", lifespan=lifespan,
                  description="AIP control plane: jobs on heterogeneous compute, queues, nodes.")
    app.state.platform = platform
    app.state.token = token
    install_error_handlers(app)

    @app.get(f"{API_PREFIX}/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_token)])
    for module in (jobs, nodes, queues):
        api.include_router(module.router)
    api.include_router(models.router)  # the model registry: admin token only
    api.include_router(endpoints.router)
    app.include_router(api)
    app.include_router(tracking.router, prefix=API_PREFIX)  # admin or job token: its own auth
    mount_console(app)  # the web console at /: its own session cookie (aip.console.session)
    return app
