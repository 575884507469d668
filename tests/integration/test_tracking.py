"""Tracking through a real ``aip up``: a job's replicas log metrics, params and an artifact
with the SDK and their job token; the client and the CLI read them back; the artifact
downloads byte-identical, from the local store and from an S3 endpoint (moto's server)."""

from __future__ import annotations

import hashlib
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aip.testing.server import AipServer, job_spec

ARTIFACT = bytes(range(256)) * 4096 + b"end"  # 1 MiB and a bit: more than one chunk
DIGEST = hashlib.sha256(ARTIFACT).hexdigest()
STEPS = 20

TRAIN = textwrap.dedent(f"""
    import os, pathlib
    import aip

    assert "AIP_TOKEN" not in os.environ, "the admin token never reaches a job"
    rank = int(os.environ["AIP_RANK"])
    aip.log_params(lr=0.01, model="mlp", rank=rank)
    for step in range({STEPS}):
        aip.log_metrics(step=step, loss=1.0 / (step + 1) + rank, acc=step / {STEPS})
    if rank == 0:
        path = pathlib.Path("model.bin")
        path.write_bytes(bytes(range(256)) * 4096 + b"end")
        print("KEY", aip.log_artifact(path, "best/model.bin"))
        print("TOKEN", os.environ["AIP_JOB_TOKEN"])
""")


def run_training(server: AipServer, name: str = "train") -> dict[str, Any]:
    job = server.client.submit_job(job_spec(name, TRAIN, count=2))
    final = server.client.wait_job(job["id"], timeout=90)
    assert final["state"] == "SUCCEEDED", server.client.job_logs(job["id"])
    return final


def job_token(server: AipServer, job_id: str) -> str:
    for line in server.client.job_logs(job_id).splitlines():
        if "TOKEN " in line:
            return line.split("TOKEN ", 1)[1].strip()
    raise AssertionError(f"job {job_id} printed no token")


def assert_tracked(server: AipServer, job_id: str, tmp_path: Path) -> None:
    client = server.client
    points = client.job_metrics(job_id, key="loss")
    assert [(p["rank"], p["step"]) for p in points] == [
        (rank, step) for rank in (0, 1) for step in range(STEPS)]
    assert points[STEPS - 1]["value"] == pytest.approx(1 / STEPS)
    assert len(client.job_metrics(job_id, replica=1)) == 2 * STEPS
    assert client.job_params(job_id)["lr"] == "0.01"
    assert f"KEY jobs/{job_id}/best/model.bin" in client.job_logs(job_id)
    [artifact] = client.job_artifacts(job_id)
    assert (artifact["path"], artifact["size"], artifact["sha256"]) == (
        "best/model.bin", len(ARTIFACT), DIGEST)
    target = tmp_path / "downloaded.bin"
    info = client.download_artifact(job_id, "best/model.bin", target)
    assert target.read_bytes() == ARTIFACT and info["sha256"] == DIGEST


@pytest.fixture(scope="module")
def trained(server: AipServer) -> str:
    return str(run_training(server)["id"])


def test_a_job_logs_metrics_params_and_an_artifact(server: AipServer, trained: str,
                                                   tmp_path: Path) -> None:
    assert_tracked(server, trained, tmp_path)
    output = Path(server.client.get_job(trained)["output_dir"])
    assert not list(output.glob(".aip-tracking/*.jsonl")), "all sent, nothing spilled"


def test_the_cli_shows_metrics_and_downloads_the_artifact(server: AipServer, trained: str,
                                                          tmp_path: Path) -> None:
    table = server.cli("job", "metrics", trained)
    assert table.returncode == 0, table.stderr
    assert "loss" in table.stdout and "acc" in table.stdout and "REPLICA" in table.stdout
    as_json = server.cli("job", "metrics", trained, "--key", "acc", "--replica", "0",
                         "-o", "json")
    assert len(json.loads(as_json.stdout)["items"]) == STEPS
    listed = server.cli("job", "artifacts", trained)
    assert "best/model.bin" in listed.stdout and DIGEST[:12] in listed.stdout
    fetched = server.cli("job", "download", trained, "best", "-o", str(tmp_path))
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "best" / "model.bin").read_bytes() == ARTIFACT
    assert fetched.stdout.strip() == str(tmp_path / "best" / "model.bin")


def test_a_job_token_reaches_only_its_own_job(server: AipServer, trained: str) -> None:
    token = job_token(server, trained)
    other = server.client.submit_job(job_spec("other", "pass"))["id"]
    server.client.wait_job(other, timeout=60)

    def get(path: str, secret: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return httpx.get(f"{server.url}/api/v1{path}", headers=headers)

    assert get(f"/jobs/{trained}/metrics", token).status_code == 200
    assert get(f"/jobs/{other}/metrics", token).status_code == 404
    assert get(f"/jobs/{other}/artifacts", token).status_code == 404
    assert get("/jobs", token).status_code == 401
    assert get(f"/jobs/{trained}", token).status_code == 401
    assert get(f"/jobs/{trained}/metrics", None).status_code == 401


# -- the artifact store on S3 -------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AipServer]:
    from aip.testing.s3 import MotoS3

    problem = MotoS3.unavailable()
    if problem:
        pytest.skip(problem)
    root = tmp_path_factory.mktemp("tracking-s3")
    with MotoS3(root / "moto") as s3:
        server = AipServer(root / "aip-home", env=s3.env, storage=s3.storage_config)
        with server:
            server.s3 = s3  # type: ignore[attr-defined]
            yield server


def test_artifacts_go_to_the_s3_store(s3_server: AipServer, tmp_path: Path) -> None:
    job_id = run_training(s3_server, "train-s3")["id"]
    assert_tracked(s3_server, job_id, tmp_path)
    stored = s3_server.s3.store().info(f"jobs/{job_id}/best/model.bin")  # type: ignore[attr-defined]
    assert (stored.size, stored.sha256) == (len(ARTIFACT), DIGEST)
