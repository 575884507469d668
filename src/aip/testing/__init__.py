"""Helpers for tests and benchmarks that drive a real AIP (no mocks of AIP itself)."""
