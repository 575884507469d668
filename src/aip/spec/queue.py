"""``QueueSpec``: where a team submits, with a nominal quota per resource (per GPU type too)
and an optional cohort whose queues lend each other idle quota (Kueue's vocabulary).

    name: team-a
    cohort: research
    quota: {cpu: 64, memory: 256Gi, gpu: {V100M32: 4, T4: 8}, accelerators: {tpu: 8}}
    borrowing_limit: {gpu: 4}

A resource missing from ``quota`` is not limited. ``gpu`` is either a total over all GPU
types, or a map of per-type quotas, in which case types not listed get none (list ``"*"`` to
cap all other types together).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aip.spec.job import check_name
from aip.spec.resources import Cpu, Memory

GpuQuota = float | dict[str, float]


class Quota(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: Cpu | None = Field(default=None, ge=0)
    memory: Memory | None = Field(default=None, ge=0)
    gpu: GpuQuota | None = None
    accelerators: dict[str, int] = Field(default_factory=dict)

    @field_validator("gpu")
    @classmethod
    def _non_negative_gpu(cls, value: GpuQuota | None) -> GpuQuota | None:
        amounts = value.values() if isinstance(value, dict) else [value or 0]
        if any(amount < 0 for amount in amounts):
            raise ValueError("GPU quota must be >= 0")
        return value

    @field_validator("accelerators")
    @classmethod
    def _non_negative_accelerators(cls, value: dict[str, int]) -> dict[str, int]:
        if any(count < 0 for count in value.values()):
            raise ValueError("accelerator quota must be >= 0")
        return {kind.lower(): count for kind, count in value.items()}

    def flat(self) -> dict[str, int]:
        """Quota as scheduler resource keys: cpu (milli), memory (bytes), gpu (milli over all
        types), gpu/<TYPE> (milli), gpu/* (milli for types not listed), acc/<kind> (count)."""
        out: dict[str, int] = {}
        if self.cpu is not None:
            out["cpu"] = round(self.cpu * 1000)
        if self.memory is not None:
            out["memory"] = self.memory
        if isinstance(self.gpu, dict):
            out.update({f"gpu/{t}": round(v * 1000) for t, v in self.gpu.items()})
            out.setdefault("gpu/*", 0)
        elif self.gpu is not None:
            out["gpu"] = round(self.gpu * 1000)
        out.update({f"acc/{kind}": count for kind, count in self.accelerators.items()})
        return out


class QueueSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_version: Literal["aip/v1"] = "aip/v1"
    kind: Literal["Queue"] = "Queue"
    name: str
    cohort: str | None = Field(default=None, description="Queues in one cohort share idle quota.")
    quota: Quota = Field(default_factory=Quota, description="Nominal quota; missing = unlimited.")
    borrowing_limit: Quota | None = Field(
        default=None, description="How far above its quota the queue may borrow; none = no cap.")
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "queue name")

    @field_validator("cohort")
    @classmethod
    def _cohort(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "cohort name")
