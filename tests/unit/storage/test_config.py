"""The ``storage:`` section of the platform config and ``platform.artifacts``: a directory
under AIP_HOME by default, S3 by URL, and never a secret in the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aip.config import Settings
from aip.control.platform import Platform, PlatformConfig
from aip.errors import InvalidSpec
from aip.storage import StorageConfig, store_from_config
from aip.testing.s3 import MotoS3


def load(tmp_path: Path, text: str) -> PlatformConfig:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return PlatformConfig.load(path)


def test_the_default_store_is_a_directory_under_aip_home(tmp_path: Path) -> None:
    config = PlatformConfig()
    assert config.storage == StorageConfig()
    store = store_from_config(config.storage, tmp_path)
    assert store.url == f"file://{tmp_path}/artifacts" and store.protocol == "file"


def test_a_relative_directory_is_under_aip_home(tmp_path: Path) -> None:
    config = load(tmp_path, "storage: {url: shared/artifacts}\n")
    assert store_from_config(config.storage, tmp_path).url == \
        f"file://{tmp_path}/shared/artifacts"
    config = load(tmp_path, f"storage: {{url: 'file://{tmp_path}/abs'}}\n")
    assert store_from_config(config.storage, tmp_path / "home").url == f"file://{tmp_path}/abs"


def test_an_s3_section_reaches_the_store(tmp_path: Path) -> None:
    config = load(tmp_path, "storage:\n  url: s3://ml/aip/\n  endpoint_url: http://minio:9000\n"
                            "  region: eu-west-1\n")
    store = store_from_config(config.storage, tmp_path)
    assert (store.url, store.endpoint_url) == ("s3://ml/aip", "http://minio:9000")
    assert store.fs.client_kwargs["region_name"] == "eu-west-1"
    assert store.fs.key is None  # credentials: the environment's standard AWS chain


@pytest.mark.parametrize(("text", "field", "message"), [
    ("storage: {secret_access_key: abc}\n", "storage", "credentials are not read from the "
     "config file; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    ("storage: {url: 'gs://b/p'}\n", "storage.url", "unsupported scheme gs://"),
    ("storage: {url: 's3://'}\n", "storage.url", "name the bucket"),
    ("storage: {endpoint_url: 'minio:9000'}\n", "storage.endpoint_url", "http://host:port"),
    ("storage: {endpont_url: 'http://x'}\n", "storage.endpont_url", "did you mean"),
])
def test_storage_mistakes_name_the_field(tmp_path: Path, text: str, field: str,
                                         message: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        load(tmp_path, text)
    assert any(key.startswith(field) and message in value
               for key, value in caught.value.fields.items()), caught.value.fields


def test_the_platform_builds_its_store_on_first_use(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    platform = Platform.from_settings(settings, PlatformConfig())
    try:
        assert platform._artifacts is None  # not built, fsspec not needed, until asked
        assert platform.artifacts is platform.artifacts
        assert platform.artifacts.url == f"file://{tmp_path}/home/artifacts"
        platform.artifacts.put_bytes(b"x", "runs/1/out")
        assert (tmp_path / "home" / "artifacts" / "runs" / "1" / "out").read_bytes() == b"x"
    finally:
        platform.close()


def test_the_harness_config_and_environment_reach_a_real_s3_store(
        moto_s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in moto_s3.env.items():
        monkeypatch.setenv(name, value)
    config = load(tmp_path, yaml.safe_dump({"storage": moto_s3.storage_config}))

    store = store_from_config(config.storage, tmp_path)
    store.put_bytes(b"from the config", "config-check/x")

    assert moto_s3.store().read_bytes("config-check/x") == b"from the config"
    assert moto_s3.store().delete("config-check") == 1
