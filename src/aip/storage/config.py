"""The ``storage:`` section of ``AIP_HOME/config.yaml``: where artifacts and models live.

    storage:                                  # all optional; the default is AIP_HOME/artifacts
      url: s3://ml-artifacts/aip              # or /data/aip-artifacts, file:///data/...
      endpoint_url: http://minio.lan:9000     # S3-compatible stores (MinIO, Ceph, OSS, ...)
      region: us-east-1

Credentials are never read from this file: the store uses the standard AWS chain of the
process that opens it (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` or ``profile:`` below, ``~/.aws/credentials``, an
instance role). Config files get copied, committed and pasted into issues; secrets in them
leak. A key such as ``secret_access_key`` here is rejected with that explanation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_SECRET_FIELDS = frozenset({
    "key", "secret", "token", "access_key", "access_key_id", "secret_key",
    "secret_access_key", "session_token", "aws_access_key_id", "aws_secret_access_key",
    "aws_session_token", "password"})
_SCHEMES = ("file", "s3")


class StorageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(
        default=None, description="Where artifacts live: a directory (/data/aip, "
        "file:///data/aip; relative paths are under AIP_HOME) or s3://bucket/prefix. "
        "Default: AIP_HOME/artifacts.")
    endpoint_url: str | None = Field(
        default=None, description="The S3 endpoint of an S3-compatible store "
        "(http://minio:9000); default: AWS.")
    region: str | None = Field(default=None, description="The bucket's region (us-east-1).")
    profile: str | None = Field(
        default=None, description="An AWS profile of ~/.aws/credentials to take the "
        "credentials from; default: AWS_PROFILE or the environment's keys.")

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            secrets = sorted(k for k in data if str(k).lower() in _SECRET_FIELDS)
            if secrets:
                raise ValueError(
                    f"{', '.join(secrets)}: credentials are not read from the config file; "
                    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the "
                    "environment of `aip up`")
        return data

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value:
            raise ValueError("give a directory or s3://bucket/prefix, or leave url out")
        scheme, separator, rest = value.partition("://")
        if not separator:
            return value
        if scheme not in _SCHEMES:
            raise ValueError(f"unsupported scheme {scheme}://; use a directory, file:///dir "
                             "or s3://bucket/prefix")
        if scheme == "s3" and not rest.strip("/"):
            raise ValueError("name the bucket: s3://bucket or s3://bucket/prefix")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("give the endpoint as http://host:port or https://host")
        return value

    def resolved_url(self, home: Path) -> str:
        """The store's URL: ``url``, with a relative directory under ``home``; default
        ``home/artifacts``."""
        if self.url is None:
            return str(home / "artifacts")
        if "://" in self.url:
            return self.url
        path = Path(self.url).expanduser()
        return str(path if path.is_absolute() else home / path)

    def options(self) -> dict[str, Any]:
        """What ``ArtifactStore(..., options=)`` takes for an S3 URL (nothing for a directory).
        No credentials: s3fs reads them from the environment when none are given."""
        options: dict[str, Any] = {}
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.region:
            options["region"] = self.region
        if self.profile:
            options["profile"] = self.profile
        return options
