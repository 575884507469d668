"""The gateway as a real process in front of real HTTP upstreams on loopback: auth, canary
split, least-outstanding, retries on a dead replica, draining, shadows, cold-start waits,
body limits. The upstreams stand in for replicas: each answers with its own id."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from aip.serving.router import token_hash
from aip.testing.server import free_port, wait_for

ADMIN, TOKEN = "admin-secret", "endpoint-secret"


# How long a held request waits for its gate at most: a test that fails before opening the
# gate leaves no request hanging for ever.
GATE_LIMIT = 30.0


class Upstream:
    """A replica stand-in: /v2/health/ready answers 200 (or 503 when ``ready`` is False);
    anything else answers {"replica": id} once ``gate`` is open. ``held=True`` starts with the
    gate closed, so requests stay in flight until the test calls ``release()``: no timing."""

    def __init__(self, name: str, held: bool = False) -> None:
        self.name, self.ready, self.hits = name, True, 0
        self.gate = threading.Event()
        if not held:
            self.gate.set()
        hits_lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer(200 if upstream.ready else 503, {"ready": upstream.ready})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                with hits_lock:
                    upstream.hits += 1
                upstream.gate.wait(timeout=GATE_LIMIT)
                self._answer(200, {"replica": upstream.name, "path": self.path,
                                   "echo": body.decode()})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def release(self) -> None:
        """Open the gate: held requests answer, later ones answer at once."""
        self.gate.set()

    def stop(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    token_file = tmp_path_factory.mktemp("router") / "token"
    token_file.write_text(ADMIN)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "aip.serving.router", "--port", str(port),
                                "--admin-token-file", str(token_file),
                                "--health-interval", "0.2"])
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _up(url), timeout=20, message="the router")
    yield url
    process.terminate()
    process.wait(timeout=10)


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/-/health", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def push(url: str, *versions: dict[str, Any], **endpoint: Any) -> None:
    table = {"version": str(time.time()), "endpoints": [{
        "name": "iris", "token_hashes": [token_hash(TOKEN)], "versions": list(versions),
        **endpoint}]}
    response = httpx.put(url + "/-/routes", json=table,
                         headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 200, response.text


def version(name: str, *upstreams: Upstream, **fields: Any) -> dict[str, Any]:
    return {"name": name, "replicas": [{"id": u.name, "url": u.url} for u in upstreams],
            **fields}


def infer(client: httpx.Client, url: str, token: str | None = TOKEN,
          body: bytes = b'{"instances": [[1, 2]]}') -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(url + "/endpoints/iris/v1/models/iris:predict", content=body,
                       headers=headers)


def test_requests_need_the_endpoint_token(router: str) -> None:
    a = Upstream("a")
    push(router, version("1", a))
    with httpx.Client() as client:
        assert infer(client, router, token=None).status_code == 401
        assert infer(client, router, token="wrong").status_code == 401
        ok = infer(client, router)
    assert ok.status_code == 200
    assert ok.json()["path"] == "/v1/models/iris:predict"  # the endpoint prefix is stripped
    assert httpx.get(router + "/-/stats").status_code == 401  # the admin API needs its token
    a.stop()


def test_a_canary_gets_its_weight_of_the_traffic(router: str) -> None:
    stable, canary = Upstream("stable"), Upstream("canary")
    push(router, version("1", stable, weight=90), version("2", canary, weight=10))
    with httpx.Client() as client:
        seen = Counter(infer(client, router).json()["replica"] for _ in range(1000))
    assert abs(seen["canary"] / 1000 - 0.10) <= 0.05, seen
    stable.stop()
    canary.stop()


def test_a_dead_replica_costs_no_request_and_gets_no_more_traffic(router: str) -> None:
    live, dead = Upstream("live"), Upstream("dead")
    push(router, version("1", live, dead))
    dead.stop()
    with httpx.Client() as client:
        answers = [infer(client, router) for _ in range(50)]
    assert all(a.status_code == 200 and a.json()["replica"] == "live" for a in answers)
    live.stop()


def test_draining_replicas_get_no_new_requests(router: str) -> None:
    old, new = Upstream("old"), Upstream("new")
    push(router, {"name": "1", "replicas": [{"id": "old", "url": old.url, "state": "draining"},
                                            {"id": "new", "url": new.url}]})
    with httpx.Client() as client:
        assert {infer(client, router).json()["replica"] for _ in range(30)} == {"new"}
    old.stop()
    new.stop()


def test_a_shadow_gets_copies_whose_answers_are_not_returned(router: str) -> None:
    main, shadow = Upstream("main"), Upstream("shadow")
    push(router, version("1", main), version("2", shadow, weight=0, shadow_percent=50))
    with httpx.Client() as client:
        answers = {infer(client, router).json()["replica"] for _ in range(200)}
    assert answers == {"main"}
    wait_for(lambda: 60 <= shadow.hits <= 140, timeout=5, message="about half mirrored")
    main.stop()
    shadow.stop()


def test_least_outstanding_prefers_the_idle_replica(router: str) -> None:
    slow, fast = Upstream("slow", held=True), Upstream("fast")
    push(router, version("1", slow))
    held = threading.Thread(target=lambda: infer(httpx.Client(timeout=GATE_LIMIT), router))
    held.start()  # one request outstanding on the slow replica until it is released
    try:
        wait_for(lambda: slow.hits == 1, timeout=5, message="the slow replica busy")
        push(router, version("1", slow, fast))  # the router keeps slow's outstanding count
        with httpx.Client() as client:
            assert {infer(client, router).json()["replica"] for _ in range(10)} == {"fast"}
    finally:
        slow.release()
        held.join()
        slow.stop()
        fast.stop()


def test_with_no_replica_a_request_waits_for_a_cold_start(router: str) -> None:
    push(router, version("1"), cold_start_timeout=10)
    answer: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answer.append(
        infer(httpx.Client(timeout=15), router)))
    thread.start()
    stats = lambda: httpx.get(router + "/-/stats", headers={  # noqa: E731
        "Authorization": f"Bearer {ADMIN}"}).json()["endpoints"]["iris"]
    wait_for(lambda: stats()["waiting"] == 1, timeout=5, message="the request waiting")
    assert stats()["in_flight"] == 1  # what the autoscaler sees
    time.sleep(0.5)
    late = Upstream("late")
    push(router, version("1", late), cold_start_timeout=10)
    thread.join(timeout=10)
    assert answer and answer[0].status_code == 200 and answer[0].json()["replica"] == "late"
    assert stats()["cold_starts"][-1] >= 0.5
    late.stop()


def test_a_body_over_the_limit_is_refused(router: str) -> None:
    a = Upstream("a")
    push(router, version("1", a), max_body_bytes=1000)
    with httpx.Client() as client:
        response = infer(client, router, body=b"x" * 2000)
    assert response.status_code == 413 and "1000 bytes" in response.json()["error"]
    assert a.hits == 0
    a.stop()


def test_beyond_max_in_flight_per_replica_requests_are_shed_with_retry_after(
        router: str) -> None:
    slow_a, slow_b = Upstream("shed-a", held=True), Upstream("shed-b", held=True)
    push(router, version("1", slow_a, slow_b), max_in_flight_per_replica=2)
    with httpx.Client(timeout=GATE_LIMIT) as client, ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(infer, client, router) for _ in range(8)]
        try:  # the admitted 4 are held upstream, so the other 4 meet a full endpoint
            wait_for(lambda: sum(future.done() for future in futures) >= 4, timeout=10,
                     message="4 requests shed")
            wait_for(lambda: slow_a.hits + slow_b.hits >= 4, timeout=10,
                     message="4 requests held upstream")
        finally:
            slow_a.release()
            slow_b.release()
        answers = [future.result() for future in futures]

    codes = Counter(answer.status_code for answer in answers)
    assert codes == {200: 4, 503: 4}  # 2 per ready replica, 2 ready replicas
    shed = next(answer for answer in answers if answer.status_code == 503)
    assert shed.headers["retry-after"] == "1"
    assert "max_in_flight_per_replica" in shed.json()["error"]
    assert slow_a.hits + slow_b.hits == 4
    slow_a.stop()
    slow_b.stop()


def test_metrics_are_prometheus_text(router: str) -> None:
    a = Upstream("a")
    push(router, version("1", a))
    with httpx.Client() as client:
        infer(client, router)
        text = client.get(router + "/metrics").text
    assert "aip_router_requests_total" in text and "aip_router_request_seconds_bucket" in text
    assert 'aip_endpoint_replicas{endpoint="iris",version="1"} 1' in text
    a.stop()
