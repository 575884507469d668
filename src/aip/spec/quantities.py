"""Parsing of the small string grammars used in specs: memory ("512Mi", "16Gi"), CPU
("500m", 2.5) and durations ("90s", "30m", "1h30m")."""

from __future__ import annotations

import re

_MEMORY_UNITS: dict[str, int] = {
    "": 1,
    "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15,
    "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40, "pi": 2**50,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_MEMORY_RE = re.compile(r"^\s*(-?[0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_DURATION_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_memory(value: object) -> int:
    """Bytes from an int or a string such as "512Mi", "16Gi", "1.5G"."""
    if isinstance(value, bool):
        raise ValueError("memory must be a size such as 512Mi or 16Gi, not a boolean")
    if isinstance(value, int | float):
        return int(value)
    if not isinstance(value, str):
        raise ValueError("memory must be a size such as 512Mi or 16Gi")
    match = _MEMORY_RE.match(value)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _MEMORY_UNITS:
        raise ValueError(f"cannot read memory size {value!r}: use e.g. 512Mi, 16Gi or 2G")
    return int(float(match.group(1)) * _MEMORY_UNITS[unit])


def format_memory(num_bytes: int) -> str:
    """The shortest exact binary form: 536870912 -> "512Mi"."""
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if num_bytes >= size and num_bytes % size == 0:
            return f"{num_bytes // size}{unit}"
    for unit, size in (("Gi", 2**30), ("Mi", 2**20)):
        if num_bytes >= size:
            return f"{num_bytes / size:.1f}{unit}"
    return str(num_bytes)


def parse_cpu(value: object) -> float:
    """Cores from a number or a Kubernetes-style milli string ("500m")."""
    if isinstance(value, bool):
        raise ValueError("cpu must be a number of cores such as 2 or 0.5")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
        except ValueError:
            pass
    raise ValueError(f"cannot read cpu {value!r}: use a number of cores such as 2, 0.5 or 500m")


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as "90s", "30m", "1h30m"."""
    if isinstance(value, bool):
        raise ValueError("a duration must be seconds or a string such as 30m")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            return float(text)
        except ValueError:
            pass
        parts = _DURATION_RE.findall(text)
        if parts and "".join(n + u for n, u in parts) == text.replace(" ", ""):
            return sum(float(n) * _DURATION_SECONDS[u] for n, u in parts)
    raise ValueError(f"cannot read duration {value!r}: use seconds or e.g. 90s, 30m, 1h30m")
