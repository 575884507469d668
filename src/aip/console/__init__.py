"""The web console: server-rendered pages over the control plane, served by ``aip up`` at ``/``.

    mount_console(app)      # after the API routes; pages at /, /nodes, /jobs, /submit, ...

Pages are Jinja2 templates (autoescaped) over the same services and route functions as the
REST API; ``static/`` holds the small hand-written CSS and JS (theme, live refresh, log
stream, YAML validation). Sign-in and CSRF: ``aip.console.session``; design notes:
docs/design/0006-web-console.md.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from aip.console import actions, pages, serving
from aip.console.session import Revoked

STATIC_PATH = "/console/static"


def mount_console(app: FastAPI) -> None:
    app.state.console_revoked = Revoked()
    app.state.console_sampler = serving.EndpointSampler()
    for module in (actions, pages, serving):
        app.include_router(module.router)
    app.mount(STATIC_PATH, StaticFiles(packages=[("aip.console", "static")]), name="console")
