"""Errors cross the wire as ``{code, message, fields}`` and come back as their own class,
wherever in AIP that class is defined."""

from __future__ import annotations

import pytest

from aip.errors import AIPError, NotFound, error_from_body


@pytest.mark.parametrize("code, class_name", [
    ("not_found", "NotFound"),
    ("storage_unavailable", "StorageError"),
    ("artifact_corrupted", "ArtifactCorrupted"),
    ("environment_build_failed", "EnvironmentBuildError"),
    ("invalid_tracking_data", "InvalidTrackingData"),
])
def test_a_servers_error_body_comes_back_as_the_class_of_its_code(code: str,
                                                                  class_name: str) -> None:
    error = error_from_body(503, {"code": code, "message": "what to do",
                                  "fields": {"spec.x": "bad"}})

    assert type(error).__name__ == class_name
    assert error.code == code
    assert error.fields == {"spec.x": "bad"}


def test_an_unknown_code_is_a_plain_aip_error_with_the_message() -> None:
    error = error_from_body(500, {"code": "from_the_future", "message": "upgrade the SDK"})

    assert type(error) is AIPError
    assert error.message == "upgrade the SDK"


def test_a_body_without_a_message_says_what_the_server_answered() -> None:
    error = error_from_body(502, "<html>bad gateway</html>")

    assert not isinstance(error, NotFound)
    assert "HTTP 502" in str(error)
