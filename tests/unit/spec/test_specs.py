"""Specs: the string grammars, resource rules, and errors a person can act on."""

from __future__ import annotations

import json

import pytest

from aip.errors import InvalidSpec
from aip.spec import JobSpec, QueueSpec, Resources, load_yaml
from aip.spec.quantities import format_memory, parse_cpu, parse_duration, parse_memory


@pytest.mark.parametrize(("text", "expected"), [
    ("512Mi", 512 * 2**20), ("16Gi", 16 * 2**30), ("2G", 2 * 10**9), ("1.5Gi", 3 * 2**29),
    ("100", 100), (1024, 1024), ("64kib", 65536),
])
def test_memory_sizes_parse_in_binary_and_decimal_units(text: object, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["lots", "12 parsecs", "", True, None])
def test_unreadable_memory_sizes_say_what_to_write(text: object) -> None:
    with pytest.raises(ValueError, match="512Mi"):
        parse_memory(text)


def test_memory_formats_back_to_the_shortest_exact_form() -> None:
    assert [format_memory(v) for v in (512 * 2**20, 16 * 2**30, 1000)] == ["512Mi", "16Gi", "1000"]


@pytest.mark.parametrize(("text", "cores"), [("500m", 0.5), (2, 2.0), ("1.5", 1.5)])
def test_cpu_accepts_cores_and_millicores(text: object, cores: float) -> None:
    assert parse_cpu(text) == cores


@pytest.mark.parametrize(("text", "seconds"), [
    (90, 90.0), ("90s", 90.0), ("30m", 1800.0), ("1h30m", 5400.0), ("2d", 172800.0),
    ("250ms", 0.25)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "5x", "1h fortnight"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="30m"):
        parse_duration(text)


@pytest.mark.parametrize(("gpu", "milli", "shared", "devices"), [
    (0, 0, False, 0), (0.25, 250, True, 1), (0.5, 500, True, 1), (1, 1000, False, 1),
    (4, 4000, False, 4)])
def test_gpus_are_whole_counts_or_shares_counted_in_milli_gpu(
        gpu: float, milli: int, shared: bool, devices: int) -> None:
    resources = Resources(gpu=gpu)
    assert (resources.gpu_milli, resources.gpu_shared, resources.gpu_count) == (
        milli, shared, devices)


def test_gpu_type_accepts_a_list_or_a_pipe_separated_string() -> None:
    assert Resources(gpu_type="V100M16|V100M32").gpu_type == ("V100M16", "V100M32")
    assert Resources(gpu_type=["T4"]).gpu_type == ("T4",)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("gpu", 1.5, "neither a whole count nor a share"),
    ("gpu", -1, "greater than or equal to 0"),
    ("cpu", 0, "greater than 0"),
    ("memory", "-1Gi", "greater than 0"),
    ("accelerators", {"tpu": 0}, "count > 0"),
])
def test_bad_resources_are_rejected_with_the_field_named(
        field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        load_yaml(json.dumps({"name": "j", "command": ["x"], "resources": {field: value}}),
                  JobSpec)
    path = f"replicas.worker.resources.{field}"
    assert path in caught.value.fields and message in caught.value.fields[path]


def test_resources_are_immutable_and_copied_with_changes() -> None:
    base = Resources(cpu=2, memory="4Gi")
    changed = base.copy_with(gpu=1)
    assert (base.gpu, changed.gpu, changed.memory) == (0, 1, 4 * 2**30)
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error
        base.cpu = 3  # type: ignore[misc]


def test_single_role_shorthand_becomes_one_worker() -> None:
    spec = load_yaml("name: quick\ncommand: [python, train.py]\nresources: {gpu: 1}\n", JobSpec)
    assert list(spec.replicas) == ["worker"]
    assert spec.replicas["worker"].resources.gpu == 1 and spec.total_replicas == 1


def test_a_full_job_round_trips_through_json() -> None:
    spec = load_yaml("""
name: train
queue: team-a
priority: 10
labels: {team: a}
max_retries: 2
timeout: 1h
env: {SEED: 1}
replicas:
  ps: {count: 1, command: [python, ps.py]}
  worker:
    count: 4
    command: [python, train.py]
    resources: {cpu: 500m, memory: 2Gi, gpu: 0.25, gpu_type: [T4], accelerators: {tpu: 1}}
""", JobSpec)
    assert spec.env == {"SEED": "1"} and spec.timeout == 3600 and spec.total_replicas == 5
    assert JobSpec.model_validate_json(spec.model_dump_json()) == spec


@pytest.mark.parametrize(("yaml_text", "field", "message"), [
    pytest.param("name: j\ncommand: [x]\nresorces: {}\n", "resorces",
                 "did you mean 'resources'? (line 3)", id="top-level-typo"),
    pytest.param("name: j\nreplicas:\n  worker:\n    command: [x]\n    cont: 2\n",
                 "replicas.worker.cont", "did you mean 'count'? (line 5)", id="group-typo"),
    pytest.param("name: j\ncommand: [x]\nresources: {gpus: 1}\n",
                 "replicas.worker.resources.gpus", "did you mean 'gpu'?", id="resource-typo"),
    pytest.param("name: Bad Name\ncommand: [x]\n", "name", "lower-case", id="bad-name"),
    pytest.param("name: j\n", "replicas", "is required", id="no-replicas"),
    pytest.param("name: j\ncommand: []\n", "replicas.worker.command", "at least 1",
                 id="empty-command"),
    pytest.param("name: j\ncommand: [x]\nenv: {1BAD: x}\n", "env", "must match",
                 id="bad-env-name"),
])
def test_spec_errors_name_the_field_and_suggest_the_known_key(
        yaml_text: str, field: str, message: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        load_yaml(yaml_text, JobSpec, source="job.yaml")
    assert field in caught.value.fields, caught.value.fields
    assert message in caught.value.fields[field]
    assert caught.value.message.startswith("invalid job.yaml: ")


def test_malformed_yaml_reports_line_and_column() -> None:
    expected = r"job.yaml is not valid YAML at line 4.*started at line 3, column 12"
    with pytest.raises(InvalidSpec, match=expected):
        load_yaml("name: j\ncommand: [x]\nresources: {cpu: 1\n", JobSpec, source="job.yaml")


def test_a_yaml_list_at_the_top_is_rejected_plainly() -> None:
    with pytest.raises(InvalidSpec, match="expected a mapping"):
        load_yaml("- a\n- b\n", JobSpec)


def test_queue_quota_flattens_to_scheduler_keys() -> None:
    per_type = QueueSpec.model_validate(
        {"name": "q", "quota": {"cpu": 8, "memory": "32Gi", "gpu": {"T4": 4, "V100M32": 0.5},
                                "accelerators": {"TPU": 2}}})
    assert per_type.quota.flat() == {"cpu": 8000, "memory": 32 * 2**30, "gpu/T4": 4000,
                                     "gpu/V100M32": 500, "gpu/*": 0, "acc/tpu": 2}
    assert QueueSpec(name="q", quota={"gpu": 2}).quota.flat() == {"gpu": 2000}
    assert QueueSpec(name="q").quota.flat() == {}


def test_job_and_queue_json_schemas_are_published() -> None:
    schema = JobSpec.model_json_schema()
    assert "replicas" in schema["required"] and "name" in schema["required"]
    assert "quota" in QueueSpec.model_json_schema()["properties"]
