"""The model registry through a real ``aip up``: register ONNX and sklearn models from local
files (SDK and CLI), list and get them, alias and resolve, download byte-identical; register
a job's logged artifact with its lineage and metrics; a restart loses nothing; the admin token
is required (a job's token is not enough); the same on an S3 store (moto's server)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aip.client import Client
from aip.errors import InvalidSpec, NotFound
from aip.registry import fetch
from aip.testing.server import AipServer, job_spec
from tests.unit.registry import builders

TRAIN = textwrap.dedent("""
    import os, pathlib, urllib.request, urllib.error
    import aip
    from tests.unit.registry import builders

    for step in range(5):
        aip.log_metrics(step=step, loss=1.0 / (step + 1), auc=0.5 + step / 10)
    builders.onnx_model(pathlib.Path("model.onnx"))
    print("KEY", aip.log_artifact("model.onnx", "export/model.onnx"))
    aip.flush()
    request = urllib.request.Request(
        os.environ["AIP_SERVER"] + "/api/v1/models/stolen/versions?filename=m.onnx",
        data=b"x", method="POST", headers={
            "Authorization": "Bearer " + os.environ["AIP_JOB_TOKEN"],
            "Content-Type": "application/octet-stream"})
    try:
        urllib.request.urlopen(request)
        print("JOB TOKEN REGISTERED")
    except urllib.error.HTTPError as exc:
        print("JOB TOKEN STATUS", exc.code)
""")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {"onnx": builders.onnx_model(root / "fraud.onnx"),
            "onnx-fixed": builders.onnx_model(root / "fraud-fixed.onnx", batch=8),
            "sklearn": builders.sklearn_classifier(root / "churn.joblib")}


@pytest.fixture(scope="module")
def registered(server: AipServer, models: dict[str, Path]) -> dict[str, dict[str, Any]]:
    client = server.client
    return {
        "fraud-1": client.register_model("fraud", models["onnx"], description="card fraud"),
        "fraud-2": client.register_model("fraud", models["onnx-fixed"], "onnx"),
        "churn-1": client.register_model("churn", models["sklearn"], "sklearn"),
    }


def test_onnx_and_sklearn_models_register_with_their_signatures(
        registered: dict[str, dict[str, Any]]) -> None:
    fraud, fraud2, churn = registered["fraud-1"], registered["fraud-2"], registered["churn-1"]
    assert (fraud["uri"], fraud2["uri"], churn["uri"]) == (
        "models:/fraud/1", "models:/fraud/2", "models:/churn/1")
    assert fraud["flavor"] == "onnx" and fraud["state"] == "ready"
    assert fraud["signature"]["inputs"] == [{"name": "x", "dtype": "float32", "shape": [-1, 4]}]
    assert fraud2["signature"]["inputs"][0]["shape"] == [8, 4]
    assert fraud["storage_prefix"] == "models/fraud/1/"
    assert [f["path"] for f in fraud["files"]] == ["aip-model.json", "fraud.onnx"]
    # sklearn's signature was inferred by the client, which unpickled the file
    assert churn["flavor"] == "sklearn"
    assert [o["name"] for o in churn["signature"]["outputs"]] == ["predictions", "probabilities"]
    assert churn["manifest"]["metadata"]["estimator"].endswith("LogisticRegression")
    assert churn["created_by"] == "admin"


def test_models_list_and_get(server: AipServer, registered: dict[str, Any]) -> None:
    page = server.client.list_models()
    assert [(m["name"], m["latest_version"], m["version_count"]) for m in page["items"]] == [
        ("churn", 1, 1), ("fraud", 2, 2)]
    fraud = server.client.get_model("fraud")
    assert fraud["description"] == "card fraud"
    assert [v["version"] for v in fraud["versions"]] == [2, 1]
    version = server.client.get_model_version("fraud", 1)
    assert version["sha256"] == registered["fraud-1"]["sha256"]


def test_alias_resolve_and_download_byte_identical(
        server: AipServer, registered: dict[str, Any], models: dict[str, Path],
        tmp_path: Path) -> None:
    client = server.client
    alias = client.set_alias("fraud", "production", 1)
    assert alias["uri"] == "models:/fraud@production" and alias["version"] == 1
    resolved = client.resolve_model("models:/fraud@production")
    assert resolved["version"] == 1 and resolved["aliases"] == ["production"]
    assert client.resolve_model("models:/fraud")["version"] == 2
    client.download_model("models:/fraud@production", tmp_path / "prod")
    files = tree(tmp_path / "prod")
    assert files["fraud.onnx"] == models["onnx"].read_bytes()
    manifest = json.loads(files["aip-model.json"])
    assert manifest["flavor"] == "onnx" and manifest["path"] == "fraud.onnx"
    client.download_model("models:/churn/1", tmp_path / "churn")
    assert (tmp_path / "churn" / "churn.joblib").read_bytes() == models["sklearn"].read_bytes()
    # one file, with its sha256 in a header
    response = httpx.get(f"{server.url}/api/v1/models/fraud/versions/1/files/fraud.onnx",
                         headers={"Authorization": f"Bearer {server.token}"})
    assert response.content == models["onnx"].read_bytes()
    assert response.headers["x-aip-sha256"] == sha256(models["onnx"])


def test_the_node_cache_fetches_through_the_api_once(
        server: AipServer, registered: dict[str, Any], tmp_path: Path) -> None:
    client = server.client
    client.set_alias("fraud", "staging", 2)
    path = fetch("models:/fraud@staging", tmp_path / "cache", client=client)
    assert path.name == registered["fraud-2"]["sha256"]
    assert json.loads((path / "aip-model.json").read_text())["signature"]["inputs"][0][
        "shape"] == [8, 4]
    assert fetch(client.resolve_model("models:/fraud/2"), tmp_path / "cache") == path


def test_the_cli_registers_lists_gets_aliases_and_downloads(
        server: AipServer, registered: dict[str, Any], models: dict[str, Path],
        tmp_path: Path) -> None:
    done = server.cli("model", "register", "cli-model", "--path", str(models["onnx"]),
                      "--description", "from the CLI")
    assert done.returncode == 0, done.stderr
    assert "registered models:/cli-model/1 (onnx" in done.stdout
    assert "1 input, 1 output" in done.stdout
    listed = server.cli("model", "list")
    assert listed.returncode == 0 and "cli-model" in listed.stdout and "fraud" in listed.stdout
    aliased = server.cli("model", "alias", "cli-model", "production", "1")
    assert aliased.returncode == 0, aliased.stderr
    assert "models:/cli-model@production -> version 1" in aliased.stdout
    shown = server.cli("model", "get", "cli-model@production")
    assert shown.returncode == 0, shown.stderr
    for text in ("models:/cli-model/1", "production", "float32", "[?, 4]", "fraud.onnx"):
        assert text in shown.stdout
    whole = server.cli("model", "get", "cli-model")
    assert "from the CLI" in whole.stdout and "VERSION" in whole.stdout
    as_json = json.loads(server.cli("model", "get", "cli-model/1", "-o", "json").stdout)
    assert as_json["flavor"] == "onnx"
    fetched = server.cli("model", "download", "models:/cli-model@production", "--dest",
                         str(tmp_path / "out"))
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "out" / "fraud.onnx").read_bytes() == models["onnx"].read_bytes()
    removed = server.cli("model", "alias", "cli-model", "production", "--delete")
    assert removed.returncode == 0, removed.stderr
    missing = server.cli("model", "get", "cli-model@production")
    assert missing.returncode == 1 and "has no alias 'production'" in missing.stderr


def test_the_cli_removes_versions_and_models_but_not_what_an_alias_holds(
        server: AipServer, models: dict[str, Path]) -> None:
    for _ in range(2):
        server.client.register_model("doomed", models["onnx"])
    server.client.set_alias("doomed", "production", 2)

    held = server.cli("model", "delete", "doomed", "--version", "2")
    assert held.returncode == 1 and "aliased 'production'" in held.stderr
    assert "Traceback" not in held.stderr
    gone = server.cli("model", "delete", "doomed", "--version", "1")
    assert gone.returncode == 0, gone.stderr
    assert "removed doomed version 1" in gone.stdout
    with pytest.raises(NotFound):
        server.client.resolve_model("models:/doomed/1")
    unconfirmed = server.cli("model", "delete", "doomed")
    assert unconfirmed.returncode != 0 and "--yes" in unconfirmed.stderr
    whole = server.cli("model", "delete", "doomed", "--yes")
    assert whole.returncode == 0, whole.stderr
    assert "removed model doomed (1 versions)" in whole.stdout
    assert server.cli("model", "get", "doomed").returncode == 1


def test_a_job_artifact_registers_with_lineage_and_metrics(server: AipServer,
                                                           tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    spec = job_spec("train-fraud", TRAIN)
    spec["replicas"]["worker"]["env"] = {"PYTHONPATH": str(repo)}
    job = server.client.submit_job(spec)
    final = server.client.wait_job(job["id"], timeout=120)
    logs = server.client.job_logs(job["id"])
    assert final["state"] == "SUCCEEDED", logs
    assert "JOB TOKEN STATUS 401" in logs  # a job's own token cannot register models
    version = server.client.register_model_from_job("fraud-job", job["id"],
                                                    "export/model.onnx")
    assert version["source_job"] == job["id"]
    assert version["source_artifact"] == "export/model.onnx"
    assert version["metrics"] == {"auc": pytest.approx(0.9), "loss": pytest.approx(0.2)}
    # the server read the ONNX graph itself (no code runs) for the signature
    assert version["signature"]["outputs"] == [{"name": "y", "dtype": "float32",
                                                "shape": [-1, 2]}]
    shown = server.cli("model", "get", "fraud-job/1")
    assert job["id"] in shown.stdout and "auc" in shown.stdout
    cli = server.cli("model", "register", "fraud-job", "--from-job", job["id"], "--artifact",
                     "export/model.onnx", "-o", "json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["version"] == 2
    local = builders.onnx_model(tmp_path / "retrained.onnx")  # trained elsewhere, same lineage
    uploaded = server.client.register_model("fraud-job", local, source_job=job["id"])
    assert (uploaded["version"], uploaded["source_job"]) == (3, job["id"])
    assert uploaded["metrics"]["auc"] == pytest.approx(0.9)


def test_bad_registrations_get_a_4xx_naming_the_field(server: AipServer,
                                                      models: dict[str, Path]) -> None:
    client = server.client
    with pytest.raises(InvalidSpec) as caught:
        client.register_model("fraud", models["onnx"], "keras")
    assert "flavor" in caught.value.fields  # refused by the client before any upload
    headers = {"Authorization": f"Bearer {server.token}"}

    def post(path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(f"{server.url}/api/v1/models/{path}", headers={
            **headers, **kwargs.pop("headers", {})}, **kwargs)

    unknown = post("m/versions?flavor=keras&filename=m.onnx", content=b"x",
                   headers={"Content-Type": "application/octet-stream"})
    assert unknown.status_code == 422 and "flavor" in unknown.json()["fields"]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("../../escape.onnx")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    escaping = post("m/versions", content=buffer.getvalue(),
                    headers={"Content-Type": "application/x-tar"})
    assert escaping.status_code == 422 and "archive" in escaping.json()["fields"]
    bad_name = post("Bad_Name/versions?filename=m.onnx", content=b"x",
                    headers={"Content-Type": "application/octet-stream"})
    assert bad_name.status_code == 422 and "name" in bad_name.json()["fields"]
    no_artifact = post("m/versions", json={"source_job": "ghost-1", "artifact": "m.onnx"})
    assert no_artifact.status_code == 404 and "source_job" in no_artifact.json()["fields"]
    with pytest.raises(NotFound):
        client.get_model("m")  # nothing of the refused uploads was kept
    with pytest.raises(InvalidSpec):
        client.resolve_model("fraud@production")  # the SDK wants the scheme


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="missing-token"),
    pytest.param({"Authorization": "Bearer not-the-token"}, id="wrong-token"),
])
def test_every_model_route_needs_the_admin_token(server: AipServer,
                                                 headers: dict[str, str]) -> None:
    for method, path in [("GET", "/models"), ("GET", "/models/fraud"),
                         ("GET", "/models/resolve?uri=models:/fraud"),
                         ("GET", "/models/fraud/versions/1"),
                         ("GET", "/models/fraud/versions/1/files"),
                         ("POST", "/models/fraud/versions?filename=x.onnx"),
                         ("PUT", "/models/fraud/aliases/production"),
                         ("DELETE", "/models/fraud/aliases/production"),
                         ("DELETE", "/models/fraud/versions/1"), ("DELETE", "/models/fraud")]:
        response = httpx.request(method, f"{server.url}/api/v1{path}", headers=headers,
                                 content=b"{}")
        assert response.status_code == 401, (method, path)
        assert response.json()["code"] == "unauthorized"


def test_versions_and_files_survive_a_restart(fresh_home: Path, models: dict[str, Path],
                                              tmp_path: Path) -> None:
    with AipServer(fresh_home) as server:
        first = server.client.register_model("iris", models["onnx"])
        server.client.set_alias("iris", "production", 1)
    with AipServer(fresh_home) as server:  # a new process on the same home
        client = server.client
        resolved = client.resolve_model("models:/iris@production")
        assert (resolved["version"], resolved["sha256"]) == (1, first["sha256"])
        assert client.register_model("iris", models["onnx"])["version"] == 2
        client.download_model("models:/iris/1", tmp_path / "iris")
        assert (tmp_path / "iris" / "fraud.onnx").read_bytes() == models["onnx"].read_bytes()


# -- the artifact store on S3 -------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AipServer]:
    from aip.testing.s3 import MotoS3

    problem = MotoS3.unavailable()
    if problem:
        pytest.skip(problem)
    root = tmp_path_factory.mktemp("registry-s3")
    with MotoS3(root / "moto") as s3:
        server = AipServer(root / "aip-home", env=s3.env, storage=s3.storage_config)
        server.s3 = s3  # type: ignore[attr-defined]
        yield server
        server.stop()


def test_models_live_in_s3_and_any_node_can_fetch_them(
        s3_server: AipServer, models: dict[str, Path], tmp_path: Path) -> None:
    with s3_server as server:
        version = server.client.register_model("fraud", models["onnx"])
    store = s3_server.s3.store()  # type: ignore[attr-defined]
    assert store.info("models/fraud/1/fraud.onnx").sha256 == sha256(models["onnx"])
    # another node, with the store's credentials and no server: straight from S3
    path = fetch(version, tmp_path / "cache", store=store)
    assert (path / "fraud.onnx").read_bytes() == models["onnx"].read_bytes()
    with s3_server as server:  # restarted: the row and the objects are still there
        client: Client = server.client
        client.download_model("models:/fraud/1", tmp_path / "again")
        assert (tmp_path / "again" / "fraud.onnx").read_bytes() == models[
            "onnx"].read_bytes()
