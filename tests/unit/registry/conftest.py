"""The registry service fixtures (tests/unit/registry/harness.py) for every test here."""

from tests.unit.registry.harness import registry, sessions, store

__all__ = ["registry", "sessions", "store"]
