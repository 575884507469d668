"""``aip run`` and ``aip queue create`` flags become specs: pure builders, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from aip.cli.specs import (
    InvalidFlags,
    RunRequest,
    build_job_spec,
    build_queue_spec,
    default_job_name,
    sanitize_name,
)

TRAIN = ["python", "train.py"]


def worker_resources(request: RunRequest) -> dict[str, Any]:
    spec = build_job_spec(request)
    resources: dict[str, Any] = spec.model_dump(mode="json")["replicas"]["worker"]["resources"]
    return resources


@pytest.mark.parametrize(("request_", "expected"), [
    pytest.param(RunRequest(TRAIN), {"gpu": 0, "gpu_type": [], "accelerators": {}},
                 id="no resource flags keep the spec defaults"),
    pytest.param(RunRequest(TRAIN, gpus="0.25"), {"gpu": 0.25},
                 id="a quarter of one GPU is a share"),
    pytest.param(RunRequest(TRAIN, gpus="2", gpu_types=["T4|V100M32"]),
                 {"gpu": 2, "gpu_type": ["T4", "V100M32"]},
                 id="a pipe lists the GPU models allowed"),
    pytest.param(RunRequest(TRAIN, gpus="1", gpu_types=["T4", "V100M32"]),
                 {"gpu_type": ["T4", "V100M32"]}, id="repeating --gpu-type lists models too"),
    pytest.param(RunRequest(TRAIN, accelerators=["tpu=4", "fpga"]),
                 {"accelerators": {"tpu": 4, "fpga": 1}},
                 id="accelerators by kind, a bare kind asks for one"),
    pytest.param(RunRequest(TRAIN, cpus="500m", memory="4Gi"),
                 {"cpu": 0.5, "memory": "4Gi"}, id="cpu in millicores and memory sizes"),
])
def test_resource_flags_become_the_worker_request(
        request_: RunRequest, expected: dict[str, Any]) -> None:
    resources = worker_resources(request_)
    assert {key: resources[key] for key in expected} == expected


def test_job_level_flags_land_on_the_spec() -> None:
    spec = build_job_spec(RunRequest(
        ["torchrun", "--nproc_per_node", "2", "train.py"], name="resnet", queue="team-a",
        priority=5, replicas=4, env=["EPOCHS=3", "OPTS=a=b"], labels=["team=vision"],
        max_retries=2, timeout="30m", workdir="/data/run"))
    worker = spec.replicas["worker"]
    assert (spec.name, spec.queue, spec.priority, spec.max_retries, spec.timeout) == (
        "resnet", "team-a", 5, 2, 1800.0)
    assert (worker.count, worker.command[-1], spec.working_dir) == (4, "train.py", "/data/run")
    assert spec.env == {"EPOCHS": "3", "OPTS": "a=b"}
    assert spec.labels == {"team": "vision"}


@pytest.mark.parametrize(("request_", "flag", "words"), [
    pytest.param(RunRequest(TRAIN, env=["EPOCHS"]), "--env", "KEY=VALUE",
                 id="an env value without '=' names the flag and the form"),
    pytest.param(RunRequest(TRAIN, env=["1X=2"]), "--env", "must match",
                 id="an env name the shell cannot use"),
    pytest.param(RunRequest(TRAIN, accelerators=["tpu=four"]), "--accelerator", "KIND=COUNT",
                 id="an accelerator count that is not a number"),
    pytest.param(RunRequest(TRAIN, gpus="1.5"), "--gpus", "whole count nor a share",
                 id="more than one GPU must be whole"),
    pytest.param(RunRequest(TRAIN, memory="lots"), "--memory", "512Mi",
                 id="an unreadable memory size"),
    pytest.param(RunRequest(TRAIN, timeout="soon"), "--timeout", "30m",
                 id="an unreadable timeout"),
    pytest.param(RunRequest(TRAIN, name="My Job!"), "--name", "lower-case",
                 id="a name that breaks the name rule"),
    pytest.param(RunRequest([]), "COMMAND", "is required", id="no command at all"),
])
def test_bad_flags_are_reported_against_the_flag(
        request_: RunRequest, flag: str, words: str) -> None:
    with pytest.raises(InvalidFlags) as caught:
        build_job_spec(request_)
    assert words in caught.value.fields[flag]


@pytest.mark.parametrize(("command", "name"), [
    (["python", "train.py"], "train"),
    (["python3.11", "-u", "scripts/Fine_Tune.py", "--lr", "3e-4"], "fine_tune"),
    (["python", "-m", "aip.examples.mnist"], "mnist"),
    (["torchrun", "--nproc_per_node", "8", "pretrain.py"], "pretrain"),
    (["/usr/bin/nvidia-smi"], "nvidia-smi"),
    (["python", "-c", "print(1)"], "python"),
    (["./Run All.sh"], "run-all.sh"),
])
def test_the_default_job_name_comes_from_the_program_or_its_script(
        command: list[str], name: str) -> None:
    assert default_job_name(command) == name


@pytest.mark.parametrize(("text", "name"), [
    ("Hello World", "hello-world"), ("--x--", "x"), ("!!!", "job"), ("a" * 80, "a" * 63)])
def test_any_text_can_be_made_a_valid_name(text: str, name: str) -> None:
    assert sanitize_name(text) == name


@pytest.mark.parametrize(("gpu", "quota"), [
    pytest.param(["8"], 8.0, id="one number caps all GPU types together"),
    pytest.param(["T4=4", "V100M32=2"], {"T4": 4.0, "V100M32": 2.0}, id="a quota per model"),
])
def test_queue_gpu_quota_flags(gpu: list[str], quota: object) -> None:
    spec = build_queue_spec("team-a", cohort="research", cpu="64", memory="256Gi", gpu=gpu,
                            accelerators=["tpu=8"])
    assert spec.quota.gpu == quota
    assert (spec.cohort, spec.quota.cpu, spec.quota.memory, spec.quota.accelerators) == (
        "research", 64.0, 256 * 2**30, {"tpu": 8})


def test_queue_flags_override_a_spec_file() -> None:
    base = {"name": "from-file", "quota": {"gpu": 4, "cpu": 16}}
    spec = build_queue_spec("renamed", cpu="32", base=base)
    assert (spec.name, spec.quota.gpu, spec.quota.cpu) == ("renamed", 4, 32.0)


@pytest.mark.parametrize(("kwargs", "flag"), [
    pytest.param({"name": None}, "NAME", id="a queue needs a name"),
    pytest.param({"name": "q", "gpu": ["4", "T4=2"]}, "--gpu", id="total and per model mixed"),
    pytest.param({"name": "q", "gpu": ["T4=many"]}, "--gpu", id="a GPU amount not a number"),
    pytest.param({"name": "q", "cohort": "Research!"}, "--cohort", id="a bad cohort name"),
])
def test_bad_queue_flags_name_the_flag(kwargs: dict[str, Any], flag: str) -> None:
    name = kwargs.pop("name")
    with pytest.raises(InvalidFlags) as caught:
        build_queue_spec(name, **kwargs)
    assert flag in caught.value.fields
