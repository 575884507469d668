"""When the object store cannot be used, the error names the URL and says what to do: a
missing bucket, an endpoint that does not answer, credentials the store refuses. Against
real HTTP servers (moto's) and a closed loopback port; nothing of s3fs is mocked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aip.errors import InvalidSpec
from aip.storage import ArtifactStore, StorageError
from aip.storage.errors import translate
from aip.testing.s3 import MotoS3
from aip.testing.server import free_port


@pytest.fixture(scope="module")
def strict_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    """A server that checks credentials (IAM) once its bucket exists."""
    problem = MotoS3.unavailable()
    if problem:
        pytest.skip(problem)
    server = MotoS3(tmp_path_factory.mktemp("moto-auth"), require_auth=True)
    try:
        server.start()
    except RuntimeError as exc:
        pytest.skip(f"moto's S3 server did not start: {str(exc).splitlines()[0]}")
    yield server
    server.stop()


def test_a_missing_bucket_says_to_create_it(moto_s3: MotoS3, tmp_path: Path) -> None:
    store = ArtifactStore("s3://no-such-bucket/aip", options=moto_s3.options)

    for attempt in (store.check, lambda: store.put_bytes(b"x", "k"), store.list,
                    lambda: store.get_file("k", tmp_path / "k")):
        with pytest.raises(StorageError) as caught:
            attempt()
        message = caught.value.message
        assert "s3://no-such-bucket/aip" in message and moto_s3.endpoint_url in message
        assert "bucket 'no-such-bucket' does not exist" in message
        assert "aws s3 mb s3://no-such-bucket" in message
        assert "Traceback" not in str(caught.value) and "botocore" not in message


def test_an_endpoint_that_does_not_answer_fails_fast_and_says_so() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = ArtifactStore("s3://bucket/aip", options={
        "endpoint_url": endpoint, "key": "k", "secret": "s",
        "config_kwargs": {"retries": {"max_attempts": 1}}})

    with pytest.raises(StorageError) as caught:
        store.list()

    message = caught.value.message
    assert f"cannot list s3://bucket/aip (endpoint {endpoint})" in message
    assert "does not answer" in message and "storage.endpoint_url" in message
    assert caught.value.http_status == 503 and caught.value.code == "storage_unavailable"


def test_wrong_credentials_say_where_credentials_come_from(strict_s3: MotoS3) -> None:
    store = strict_s3.store()

    for attempt in (store.check, lambda: store.put_bytes(b"x", "k"), store.list):
        with pytest.raises(StorageError) as caught:
            attempt()
        message = caught.value.message
        assert strict_s3.url in message and "access denied" in message
        assert "AWS_ACCESS_KEY_ID" in message and "AWS_SECRET_ACCESS_KEY" in message


def test_a_local_permission_problem_does_not_talk_about_credentials() -> None:
    error = translate(PermissionError(13, "Permission denied"), "file:///data/aip", "write",
                      "k")
    assert isinstance(error, StorageError)
    assert "permission denied" in error.message and "writable" in error.message
    assert "AWS" not in error.message


def test_missing_credentials_say_how_to_give_them() -> None:
    from botocore.exceptions import NoCredentialsError

    error = translate(NoCredentialsError(), "s3://b/p", "read", "k")
    assert "no credentials found" in error.message and "AWS_ACCESS_KEY_ID" in error.message


def test_a_client_that_goes_away_mid_upload_is_not_blamed_on_the_store(tmp_path: Path) -> None:
    class Broken:
        def read(self, n: int) -> bytes:
            raise ConnectionResetError("peer reset")

    store = ArtifactStore(str(tmp_path / "store"))
    with pytest.raises(ConnectionResetError, match="peer reset"):
        store.put_stream(Broken(), "uploads/x")  # type: ignore[arg-type]


def test_an_unknown_protocol_is_refused_with_the_url() -> None:
    with pytest.raises((InvalidSpec, StorageError), match="nosuch://bucket"):
        ArtifactStore("nosuch://bucket/x")
