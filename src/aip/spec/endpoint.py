"""``EndpointSpec``: a served model — versions with traffic weights, replicas between a
minimum and a maximum, an autoscaling policy and batching.

    name: iris
    model: models:/iris@production        # one version; or `versions:` for a canary
    versions:
      - {model: models:/iris/3, weight: 90}
      - {model: models:/iris/4, weight: 10}
      - {model: models:/iris/5, shadow_percent: 5}    # gets copies, answers nobody
    min_replicas: 1
    max_replicas: 4
    resources: {cpu: 1, memory: 1Gi, gpu: 0.25}
    autoscaling: {target_in_flight: 4, scale_in_cooldown: 30s, scale_to_zero_after: 5m}
    batching: {max_batch_size: 32, max_wait_ms: 5}
    max_body: 64Mi
    max_in_flight_per_replica: 64            # beyond it: 503 + Retry-After (backpressure)
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from aip.spec.job import check_name
from aip.spec.quantities import parse_duration, parse_memory
from aip.spec.resources import Resources

MODEL_URI_RE: Final = re.compile(r"^models:/[a-z0-9][a-z0-9._-]*(@[A-Za-z0-9_-]+|/[0-9]+)?$")
Duration = Annotated[float, BeforeValidator(parse_duration)]
Bytes = Annotated[int, BeforeValidator(parse_memory)]


def check_model_uri(value: str) -> str:
    if not MODEL_URI_RE.match(value):
        raise ValueError(f"model {value!r} must be a registry URI: models:/NAME@ALIAS, "
                         "models:/NAME/VERSION or models:/NAME (the latest version)")
    return value


class VersionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="models:/name@alias or models:/name/3")
    weight: float = Field(default=100.0, ge=0, le=100,
                          description="Share of the traffic (relative to the other versions).")
    shadow_percent: float = Field(
        default=0.0, ge=0, le=100, description="A shadow: receives this percentage of the "
        "requests as copies, fire-and-forget; its answers are never returned.")

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        return check_model_uri(value)


class AutoscalingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target_in_flight: float | None = Field(default=None, gt=0,
                                           description="Requests in flight per replica.")
    target_qps: float | None = Field(default=None, gt=0,
                                     description="Requests per second per replica (instead).")
    scale_in_cooldown: Duration = Field(default=30.0, ge=0)
    scale_to_zero_after: Duration = Field(default=300.0, ge=0)

    @model_validator(mode="after")
    def _one_target(self) -> AutoscalingSpec:
        if self.target_in_flight is not None and self.target_qps is not None:
            raise ValueError("give target_in_flight or target_qps, not both")
        return self

    def target(self) -> tuple[float | None, float | None]:
        """(target_in_flight, target_qps), defaulting to 4 requests in flight per replica."""
        if self.target_in_flight is None and self.target_qps is None:
            return 4.0, None
        return self.target_in_flight, self.target_qps


class BatchingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(default=1, ge=1, le=4096)
    max_wait_ms: float = Field(default=0.0, ge=0, le=10_000)


class EndpointSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    model: str | None = Field(default=None, description="Shorthand for one version.")
    versions: list[VersionSpec] = Field(default_factory=list)
    min_replicas: int = Field(default=1, ge=0, le=1000)
    max_replicas: int = Field(default=1, ge=1, le=1000)
    resources: Resources = Field(default_factory=Resources)
    queue: str = "default"
    priority: int = Field(default=0, ge=-1000, le=1000)
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    batching: BatchingSpec = Field(default_factory=BatchingSpec)
    max_body: Bytes = Field(default=64 * 2**20, gt=0, description="Largest request body.")
    cold_start_timeout: Duration = Field(default=120.0, gt=0)
    max_in_flight_per_replica: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Backpressure: with this many requests "
        "in flight per ready replica (at least one), the router answers new ones 503 with "
        "Retry-After instead of queueing them. None: no limit.")
    retry: bool = Field(default=True, description="Retry a request on another replica when "
                        "its replica dies (inference is idempotent).")

    @model_validator(mode="before")
    @classmethod
    def _model_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("model") is not None:
            if data.get("versions"):
                raise ValueError("give model or versions, not both")
            data = {**data, "versions": [{"model": data["model"]}], "model": None}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "endpoint name")

    @model_validator(mode="after")
    def _check(self) -> EndpointSpec:
        if not self.versions:
            raise ValueError("give model (models:/NAME@ALIAS) or versions")
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} is above max_replicas "
                             f"{self.max_replicas}")
        if not any(v.weight > 0 and v.shadow_percent == 0 for v in self.versions):
            raise ValueError("at least one version must take traffic (weight > 0, no shadow)")
        models = [v.model for v in self.versions]
        if len(set(models)) != len(models):
            raise ValueError("each version must name a different model")
        return self
