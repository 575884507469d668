"""``Resources``: the immutable request of one replica.

    Resources(cpu=4, memory="16Gi", gpu=1, gpu_type=["V100M16", "V100M32"],
              accelerators={"fpga": 1})

``gpu`` is a whole count (1, 2, 8) or a fraction of one GPU below 1 (0.25 is a shared
quarter). Internally GPUs are counted in milli-GPU: 0.25 -> 250, 2 -> 2000.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator

from aip.spec.quantities import format_memory, parse_cpu, parse_memory

MILLI = 1000

Memory = Annotated[
    int,
    BeforeValidator(parse_memory),
    PlainSerializer(format_memory, return_type=str),
    Field(description='Bytes, or a size string such as "512Mi", "16Gi" or "2G".'),
]
Cpu = Annotated[float, BeforeValidator(parse_cpu)]


def _split_gpu_types(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split("|") if part.strip()]
    return value


class Resources(BaseModel):
    """What one replica needs. Immutable; change it with ``.copy_with(...)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: Cpu = Field(default=1.0, gt=0, description="CPU cores, fractions allowed (0.5, 500m).")
    memory: Memory = Field(default=512 * 2**20, gt=0)
    gpu: float = Field(
        default=0, ge=0,
        description="Whole GPUs (1, 2, 8) or a share of one GPU below 1 (0.25 = 250 milli-GPU).")
    gpu_type: Annotated[tuple[str, ...], BeforeValidator(_split_gpu_types)] = Field(
        default=(), description='Allowed GPU models, e.g. ["V100M16", "V100M32"]; empty = any.')
    accelerators: dict[str, int] = Field(
        default_factory=dict, description='Declared accelerators by kind, e.g. {"tpu": 4}.')

    @field_validator("gpu")
    @classmethod
    def _gpu_is_whole_or_share(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError(
                f"{value} GPUs is neither a whole count nor a share of one GPU: "
                "use a whole number (1, 2, 8) or a fraction below 1 (0.25, 0.5)")
        if 0 < value < 1 and round(value * MILLI) < 1:
            raise ValueError("a GPU share must be at least 0.001 (1 milli-GPU)")
        return value

    @field_validator("accelerators")
    @classmethod
    def _positive_accelerators(cls, value: dict[str, int]) -> dict[str, int]:
        for kind, count in value.items():
            if count <= 0:
                raise ValueError(f"accelerator {kind!r} must be requested as a count > 0")
            if not kind or not kind.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"accelerator kind {kind!r} must be letters, digits, - or _")
        return {kind.lower(): count for kind, count in value.items()}

    @property
    def cpu_milli(self) -> int:
        return round(self.cpu * MILLI)

    @property
    def gpu_milli(self) -> int:
        """Total milli-GPU: a share (< 1000) or 1000 per whole GPU."""
        return round(self.gpu * MILLI)

    @property
    def gpu_shared(self) -> bool:
        return 0 < self.gpu < 1

    @property
    def gpu_count(self) -> int:
        """Number of distinct GPU devices the replica sees (a share sees one)."""
        if self.gpu == 0:
            return 0
        return 1 if self.gpu_shared else int(self.gpu)

    def copy_with(self, **changes: Any) -> Resources:
        return Resources.model_validate({**self.model_dump(), **changes})

    def describe(self) -> str:
        """Short human form: "2 cpu, 8Gi, 1 gpu (T4|V100M32), tpu:4"."""
        parts = [f"{self.cpu:g} cpu", format_memory(self.memory)]
        if self.gpu:
            gpu = f"{self.gpu:g} gpu"
            if self.gpu_type:
                gpu += f" ({'|'.join(self.gpu_type)})"
            parts.append(gpu)
        parts.extend(f"{kind}:{count}" for kind, count in sorted(self.accelerators.items()))
        return ", ".join(parts)
