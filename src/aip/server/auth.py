"""API token auth. Submitting a job runs code, so every route but /health needs the token.

On first start an admin token is generated and stored in ``AIP_HOME/token`` with mode 0600;
the CLI and SDK read it from there.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from aip.errors import Unauthorized


def ensure_token(path: Path) -> str:
    """Read the admin token, creating it (0600) on first start."""
    try:
        token = path.read_text().strip()
        if token:
            os.chmod(path, 0o600)
            return token
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    return token


async def require_token(request: Request) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if not header:
        raise Unauthorized("missing API token: send 'Authorization: Bearer <token>' "
                           "(the CLI reads it from $AIP_HOME/token, or set AIP_TOKEN)")
    expected: str = request.app.state.token
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), expected):
        raise Unauthorized("wrong API token: use the one in $AIP_HOME/token of the server")


Authenticated = Annotated[None, Depends(require_token)]
