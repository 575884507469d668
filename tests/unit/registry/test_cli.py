"""``aip model`` without a server: help, and flag mistakes caught before any request."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from aip.cli.main import app
from tests.unit.registry import builders

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated_aip_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AIP_SERVER", "AIP_TOKEN", "AIP_DEBUG", "AIP_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIP_HOME", str(tmp_path / "aip-home"))
    monkeypatch.setenv("COLUMNS", "200")


def aip(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("command", [["model"], ["model", "register"], ["model", "list"],
                                     ["model", "get"], ["model", "alias"],
                                     ["model", "download"]])
def test_every_model_command_has_help(command: list[str]) -> None:
    code, out, _ = aip(*command, "--help")
    assert code == 0 and "Usage: aip model" in out


def test_the_root_help_lists_the_model_group() -> None:
    assert "model" in aip("--help")[1]


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["register", "m"], "give --path", id="no-path"),
    pytest.param(["register", "m", "--artifact", "model.onnx"], "--from-job",
                 id="artifact-without-job"),
    pytest.param(["alias", "m", "production"], "give a VERSION", id="alias-without-version"),
    pytest.param(["alias", "m", "production", "3", "--delete"], "give a VERSION",
                 id="alias-version-and-delete"),
])
def test_flag_mistakes_are_usage_errors(args: list[str], message: str) -> None:
    code, _, err = aip("model", *args)
    assert code == 2 and message in err and "Traceback" not in err


def test_a_bad_model_reference_is_reported_before_a_server_is_needed() -> None:
    code, _, err = aip("model", "get", "Fraud@prod")
    assert code == 1 and "model name 'Fraud'" in err


def test_an_unknown_flavor_is_caught_before_the_upload(tmp_path: Path) -> None:
    model = builders.onnx_model(tmp_path / "m.onnx")
    code, _, err = aip("model", "register", "m", "--path", str(model), "--flavor", "onx")
    assert code == 1 and "did you mean 'onnx'" in err


def test_a_signature_flag_is_json_or_a_json_file(tmp_path: Path) -> None:
    model = builders.onnx_model(tmp_path / "m.onnx")
    code, _, err = aip("model", "register", "m", "--path", str(model), "--signature",
                       str(tmp_path / "missing.json"))
    assert code == 1 and "cannot read" in err
    code, _, err = aip("model", "register", "m", "--path", str(model), "--signature",
                       '{"inputs": [{"name": "x", "dtype": "complex"}]}')
    assert code == 1 and "signature.inputs.0.dtype" in err
