"""The platform config file: defaults, the placement policy, and errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from aip.control.platform import PlatformConfig
from aip.errors import InvalidSpec


def test_a_missing_or_empty_file_means_defaults(tmp_path: Path) -> None:
    assert PlatformConfig.load(tmp_path / "absent.yaml") == PlatformConfig()
    (tmp_path / "empty.yaml").write_text("\n")
    assert PlatformConfig.load(tmp_path / "empty.yaml").server.placement_policy == "aip"


def test_a_known_policy_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("server: {placement_policy: fgd, stop_grace_period: 5}\n")
    config = PlatformConfig.load(path)
    assert config.server.placement_policy == "fgd"
    assert config.server.reconcile_options().placement_policy == "fgd"


@pytest.mark.parametrize(("text", "field", "message"), [
    ("server: {placement_policy: fgdd}\n", "server.placement_policy", "unknown placement policy"),
    ("server: {stop_grace: 5}\n", "server.stop_grace", "did you mean 'stop_grace_period'"),
    ("sever: {}\n", "sever", "did you mean 'server'"),
    ("nodes: [{name: a, gpus: {count: -1, model: T4}}]\n", "nodes.0.gpus.count", "> 0"),
])
def test_config_errors_name_the_file_and_field(
        tmp_path: Path, text: str, field: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(InvalidSpec) as caught:
        PlatformConfig.load(path)
    assert str(path) in caught.value.message
    assert any(key.startswith(field) and message in value
               for key, value in caught.value.fields.items()), caught.value.fields
