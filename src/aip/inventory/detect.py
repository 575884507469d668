"""What this host has: CPUs, memory and NVIDIA GPUs, as facts for the node inventory.

    facts = detect_host()     # HostFacts(hostname, cpu_count, memory_bytes, gpus)

CPUs are the logical CPUs this process may run on (``psutil.cpu_count(logical=True)``, narrowed
by the CPU affinity mask, so a container pinned to 4 cores reports 4). Memory is
``psutil.virtual_memory().total``, narrowed by a cgroup v2 ``memory.max`` limit when one is set.
GPUs come from NVML (nvidia-ml-py, imported lazily); a host without an NVIDIA driver simply has
no GPUs. Accelerators such as TPUs or FPGAs cannot be detected: the config file declares them.

GPU model names are shortened to the form used in specs and quotas (``gpu_type``), see
``short_gpu_model``.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

import psutil

from aip.scheduler.model import Gpu

log = logging.getLogger(__name__)

_BRAND_WORDS = frozenset({"NVIDIA", "TESLA", "GEFORCE", "QUADRO"})
# Form factor and memory technology say nothing about the model a job asks for.
_PACKAGING_RE = re.compile(r"^(SXM\d*|PCIE|HBM\d*E?|NVLINK|MIG)$", re.IGNORECASE)
_MEMORY_RE = re.compile(r"^(\d+)GB$", re.IGNORECASE)
# V100s come in 16 and 32 GB variants that jobs tell apart (V100M16, V100M32, as PAI does).
_MODELS_WITH_MEMORY_SUFFIX = frozenset({"V100"})
_V100_BIG_MIB = 24 * 1024


@dataclass(frozen=True, slots=True)
class HostFacts:
    """Detected facts about the host the control plane runs on."""

    hostname: str
    cpu_count: int
    memory_bytes: int
    gpus: tuple[Gpu, ...] = ()


def detect_host() -> HostFacts:
    """Detect this host. Never raises for a missing GPU driver: it reports no GPUs."""
    return HostFacts(
        hostname=socket.gethostname(),
        cpu_count=detect_cpu_count(),
        memory_bytes=detect_memory_bytes(),
        gpus=detect_gpus(),
    )


def detect_cpu_count() -> int:
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    try:
        return max(1, min(logical, len(os.sched_getaffinity(0))))
    except (AttributeError, OSError):  # no affinity API (macOS)
        return logical


def detect_memory_bytes() -> int:
    total = int(psutil.virtual_memory().total)
    limit = _cgroup_memory_limit()
    return min(total, limit) if limit else total


def detect_gpus() -> tuple[Gpu, ...]:
    """NVIDIA GPUs in NVML order (PCI bus order, the order ``CUDA_DEVICE_ORDER=PCI_BUS_ID``
    gives CUDA), or ``()`` when there is no usable driver."""
    try:
        import pynvml
    except ImportError:
        return ()
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no GPUs here
        log.debug("no NVIDIA GPUs: NVML did not initialise (%s)", exc)
        return ()
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            device = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(device)
            if isinstance(name, bytes):  # older nvidia-ml-py releases return bytes
                name = name.decode(errors="replace")
            memory_mib = int(pynvml.nvmlDeviceGetMemoryInfo(device).total) // 2**20
            gpus.append(Gpu(index=index, model=short_gpu_model(name, memory_mib),
                            memory_mib=memory_mib))
        return tuple(gpus)
    except Exception as exc:
        log.warning("NVML found a driver but could not list GPUs (%s); reporting none", exc)
        return ()
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def short_gpu_model(name: str, memory_mib: int = 0) -> str:
    """The short model name used in specs: "NVIDIA H100 80GB HBM3" -> "H100".

    The rule: split the marketing name on spaces, '-' and '_'; drop brand words (NVIDIA,
    Tesla, GeForce, Quadro), form factors and memory technology (SXM4, PCIe, HBM3) and memory
    sizes (80GB); join what is left without spaces ("GeForce RTX 4090" -> "RTX4090"). V100s keep
    their memory as a suffix because the two variants are scheduled apart:
    "Tesla V100-SXM2-32GB" -> "V100M32" (from the name, else from ``memory_mib``). A name with
    nothing left keeps its letters and digits, so it stays readable.
    """
    words = [word for word in re.split(r"[\s\-_/]+", name.strip()) if word]
    kept: list[str] = []
    memory_gb: int | None = None
    for word in words:
        memory = _MEMORY_RE.match(word)
        if memory:
            memory_gb = int(memory.group(1))
        elif word.upper() not in _BRAND_WORDS and not _PACKAGING_RE.match(word):
            kept.append(word)
    model = "".join(re.sub(r"[^A-Za-z0-9.]", "", word) for word in kept)
    if not model:
        model = re.sub(r"[^A-Za-z0-9]", "", name) or "GPU"
    if model.upper() in _MODELS_WITH_MEMORY_SUFFIX:
        model = model.upper()
        if memory_gb is None and memory_mib:
            memory_gb = 32 if memory_mib >= _V100_BIG_MIB else 16
        if memory_gb is not None:
            model += f"M{memory_gb}"
    return model


def _cgroup_memory_limit() -> int | None:
    """The cgroup v2 memory limit of this process, if any (containers)."""
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" means no limit
