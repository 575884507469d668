"""Host detection on the machine the tests run on, and the GPU model naming rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aip.inventory.detect import HostFacts, detect_gpus, detect_host, short_gpu_model


def test_detect_host_reports_this_machine() -> None:
    facts = detect_host()

    assert isinstance(facts, HostFacts)
    assert facts.cpu_count > 0
    assert facts.memory_bytes > 2**20
    assert facts.hostname
    assert [gpu.index for gpu in facts.gpus] == list(range(len(facts.gpus)))


def test_a_host_without_an_nvidia_driver_has_no_gpus() -> None:
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        assert detect_gpus() == ()
        return
    pynvml.nvmlShutdown()
    pytest.skip("this machine has an NVIDIA driver")


@pytest.mark.gpu
def test_gpus_are_detected_with_short_model_names() -> None:
    gpus = detect_gpus()
    if not gpus:
        pytest.skip("no NVIDIA GPU with a driver here")

    for gpu in gpus:
        assert gpu.model and " " not in gpu.model
        assert gpu.memory_mib > 1024


@pytest.mark.parametrize(("name", "memory_mib", "expected"), [
    ("NVIDIA H100 80GB HBM3", 81559, "H100"),
    ("NVIDIA H100 PCIe", 81559, "H100"),
    ("NVIDIA H200", 143771, "H200"),
    ("Tesla T4", 15360, "T4"),
    ("NVIDIA A10", 23028, "A10"),
    ("Tesla V100-SXM2-32GB", 32510, "V100M32"),
    ("Tesla V100-PCIE-16GB", 16160, "V100M16"),
    ("Tesla V100S-PCIE-32GB", 32510, "V100S"),
    ("Tesla V100-SXM2", 32510, "V100M32"),  # memory from NVML when the name lacks it
    ("NVIDIA A100-SXM4-80GB", 81920, "A100"),
    ("NVIDIA A800-SXM4-80GB", 81920, "A800"),
    ("NVIDIA L40S", 46068, "L40S"),
    ("NVIDIA GeForce RTX 4090", 24564, "RTX4090"),
    ("NVIDIA RTX A6000", 49140, "RTXA6000"),
    ("Quadro RTX 8000", 48601, "RTX8000"),
    ("NVIDIA GH200 480GB", 97871, "GH200"),
    ("NVIDIA", 0, "NVIDIA"),  # nothing left: stays readable
])
def test_gpu_model_names_are_shortened(name: str, memory_mib: int, expected: str) -> None:
    assert short_gpu_model(name, memory_mib) == expected


@given(st.text(max_size=40), st.integers(min_value=0, max_value=200_000))
def test_a_short_model_name_is_never_empty_and_has_no_spaces(name: str, memory_mib: int) -> None:
    model = short_gpu_model(name, memory_mib)

    assert model
    assert not any(ch.isspace() for ch in model)
