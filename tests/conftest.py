"""Shared fixtures: database URLs for store tests (SQLite always; PostgreSQL when a server
answers on 127.0.0.1:5432). Hypothesis runs without its per-example deadline: on a shared,
busy machine one stalled example is not a failure of the property."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from hypothesis import settings

settings.register_profile("aip", deadline=None)
settings.load_profile("aip")

POSTGRES_ADMIN_URL = os.environ.get(
    "AIP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_reachable() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'aip[postgres]')"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL.replace("+psycopg", ""), connect_timeout=2):
            return None
    except psycopg.Error as exc:
        return f"no PostgreSQL server answers at {POSTGRES_ADMIN_URL}: {exc}".splitlines()[0]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    problem = _postgres_reachable()
    if problem:
        pytest.skip(problem)
    import psycopg

    admin = POSTGRES_ADMIN_URL.replace("+psycopg", "")
    name = f"aip_test_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'aip.db'}"
    return str(request.getfixturevalue("postgres_url"))
