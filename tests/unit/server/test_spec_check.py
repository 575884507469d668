"""``POST /api/v1/jobs/validate``'s check (the console's YAML editor asks it as you type):
one error per field with its YAML line, or one error for text that does not parse."""

from __future__ import annotations

import pytest

from aip.server.routes.jobs import check_spec

VALID_YAML = "name: a\nreplicas:\n  worker:\n    command: [python, -c, pass]\n"


@pytest.mark.parametrize(("text", "yaml_body", "errors"), [
    pytest.param(VALID_YAML, True, [], id="valid-yaml"),
    pytest.param('{"name": "a", "replicas": {"worker": {"command": ["python"]}}}', False, [],
                 id="valid-json"),
    pytest.param(VALID_YAML + "    resources: {gpu: -1}\n", True,
                 [("replicas.worker.resources.gpu", "greater than or equal to 0", 5)],
                 id="a-field-with-its-line"),
    pytest.param("name: a\n  bad: [\n", True,
                 [("(document)", "not valid YAML at line 2", 2)], id="yaml-that-does-not-parse"),
    pytest.param("{", False, [("(document)", "not valid JSON", 1)],
                 id="json-that-does-not-parse"),
])
def test_each_error_names_its_field_and_line(text: str, yaml_body: bool,
                                             errors: list[tuple[str, str, int]]) -> None:
    check = check_spec(text, yaml_body=yaml_body)
    assert check.valid is (not errors)
    assert [(e.field, e.line) for e in check.errors] == [(f, line) for f, _, line in errors]
    for error, (_, words, _) in zip(check.errors, errors, strict=True):
        assert words in error.message
