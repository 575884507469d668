"""The in-job SDK (``aip.tracking``): buffering, delivery, spill and replay, offline mode and
validation, with a fake sink and injected clocks (no thread, no network, no sleeps)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import aip
from aip import tracking
from aip.tracking import (
    HttpSink,
    InvalidTrackingData,
    Point,
    Rejected,
    Tracker,
    Unavailable,
)


class FakeSink:
    """Records what arrives; ``down`` makes every call fail as an unreachable server does,
    ``fail_after`` lets that many calls through first, ``refuse`` rejects every call."""

    def __init__(self) -> None:
        self.metrics: list[tuple[Point, int]] = []
        self.params: dict[str, str] = {}
        self.uploads: list[tuple[str, bytes]] = []
        self.calls = 0
        self.down = False
        self.fail_after: int | None = None
        self.refuse = False
        self.closed = False

    def _gate(self) -> None:
        self.calls += 1
        if self.down or (self.fail_after is not None and self.calls > self.fail_after):
            raise Unavailable("connection refused")
        if self.refuse:
            raise Rejected("no job 'x'")

    def send_metrics(self, points: list[Point], rank: int) -> None:
        self._gate()
        self.metrics.extend((point, rank) for point in points)

    def send_params(self, params: dict[str, str]) -> None:
        self._gate()
        self.params.update(params)

    def upload(self, path: Path, name: str) -> None:
        self._gate()
        self.uploads.append((name, path.read_bytes()))

    def close(self) -> None:
        self.closed = True

    def steps(self, key: str) -> list[int]:
        return [point[1] for point, _rank in self.metrics if point[0] == key]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
def tracker(tmp_path: Path, sink: FakeSink, clock: Clock) -> Tracker:
    return Tracker(sink, tmp_path / ".aip-tracking", job_id="train-1", rank=0, clock=clock,
                   monotonic=clock, background=False, max_pending=50)


def spilled(directory: Path) -> list[dict[str, object]]:
    records = []
    for path in sorted(directory.glob("*.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines()]
    return records


# -- buffering ----------------------------------------------------------------------------


def test_points_wait_in_memory_until_the_next_round(tracker: Tracker, sink: FakeSink) -> None:
    tracker.log_metrics(0, {"loss": 1.0, "acc": 0.1})
    tracker.log_metrics(1, {"loss": 0.5})
    assert sink.calls == 0, "the hot path never talks to the server"
    tracker.tick()
    assert [(p[0], p[1], p[2]) for p, _ in sink.metrics] == [
        ("loss", 0, 1.0), ("acc", 0, 0.1), ("loss", 1, 0.5)]
    assert sink.calls == 1, "one round sends one batch"


def test_steps_default_to_one_more_than_the_last(tracker: Tracker, sink: FakeSink) -> None:
    tracker.log_metrics(None, {"loss": 3.0})
    tracker.log_metrics(None, {"loss": 2.0})
    tracker.log_metrics(10, {"loss": 1.0})
    tracker.log_metrics(None, {"loss": 0.5})
    tracker.flush()
    assert sink.steps("loss") == [0, 1, 10, 11]


def test_each_point_carries_the_time_it_was_logged_and_the_rank(
        tmp_path: Path, sink: FakeSink, clock: Clock) -> None:
    tracker = Tracker(sink, tmp_path, rank=3, clock=clock, background=False)
    tracker.log_metrics(0, {"loss": 1.0})
    clock.now += 5
    tracker.log_metrics(1, {"loss": 0.5})
    tracker.flush()
    assert [(p[3], rank) for p, rank in sink.metrics] == [(1000.0, 3), (1005.0, 3)]


def test_a_full_batch_wakes_the_sender_early(tmp_path: Path, sink: FakeSink) -> None:
    tracker = Tracker(sink, tmp_path, background=False, batch_size=3)
    tracker.log_metrics(0, {"a": 1.0, "b": 2.0})
    assert not tracker._wake.is_set()
    tracker.log_metrics(1, {"a": 1.0})
    assert tracker._wake.is_set()


def test_a_round_sends_at_most_the_servers_batch_limit_per_request(
        tracker: Tracker, sink: FakeSink) -> None:
    for step in range(tracking.MAX_BATCH + 5):
        tracker.log_metrics(step, {"loss": 1.0})
    tracker.tick()
    assert sink.calls == 2 and len(sink.metrics) == tracking.MAX_BATCH + 5


def test_params_are_text_and_the_last_value_wins(tracker: Tracker, sink: FakeSink) -> None:
    tracker.log_params({"lr": 0.1, "layers": [64, 64]}, {"model": "mlp"})
    tracker.log_params(None, {"lr": 0.01})
    tracker.tick()
    assert sink.params == {"lr": "0.01", "layers": "[64, 64]", "model": "mlp"}


def test_numpy_and_integer_values_become_floats(tracker: Tracker, sink: FakeSink) -> None:
    np = pytest.importorskip("numpy")
    tracker.log_metrics(np.int64(4), {"a": np.float32(0.5), "b": 3, "c": True})
    tracker.flush()
    assert [(p[0], p[1], p[2]) for p, _ in sink.metrics] == [
        ("a", 4, 0.5), ("b", 4, 3.0), ("c", 4, 1.0)]
    assert all(type(p[2]) is float for p, _ in sink.metrics)


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(("step", "metrics", "message"), [
    pytest.param(0, {"bad*key": 1.0}, "metric key 'bad\\*key'", id="a key with a star"),
    pytest.param(0, {"": 1.0}, "metric key ''", id="an empty key"),
    pytest.param(0, {"k" * 251: 1.0}, "must be 1-250", id="a key too long"),
    pytest.param(0, {"loss": "0.5"}, "'0.5' is not a number", id="a number as text"),
    pytest.param(0, {"loss": None}, "None is not a number", id="None"),
    pytest.param(0, {"loss": [1.0]}, "is not a number", id="a list"),
    pytest.param(-1, {"loss": 1.0}, "step -1 must be between", id="a negative step"),
    pytest.param(1.5, {"loss": 1.0}, "step 1.5 must be an integer", id="a fractional step"),
    pytest.param(True, {"loss": 1.0}, "step True must be an integer", id="a boolean step"),
    pytest.param(2**63, {"loss": 1.0}, "between 0 and 2\\*\\*63-1", id="a step too large"),
])
def test_bad_metrics_are_refused_at_the_call(tracker: Tracker, step: object,
                                             metrics: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidTrackingData, match=message):
        tracker.log_metrics(step, metrics)  # type: ignore[arg-type]


def test_nan_and_infinity_are_logged_and_sent_as_null(tmp_path: Path) -> None:
    sent: list[object] = []

    class Recording(HttpSink):
        def _call(self, action: object) -> None:
            class Client:
                def log_metrics(self, job_id: str, body: list[dict[str, object]]) -> None:
                    sent.extend(point["value"] for point in body)
            action(Client())  # type: ignore[operator]

    tracker = Tracker(Recording("http://aip", "t", "job"), tmp_path, background=False)
    tracker.log_metrics(0, {"loss": math.nan, "grad": math.inf, "lr": 0.1})
    tracker.flush()
    assert sent == [None, None, 0.1]


@pytest.mark.parametrize(("params", "message"), [
    pytest.param({"bad key!": 1}, "param key 'bad key!'", id="a bad key"),
    pytest.param({"notes": "x" * 6001}, "6001 characters long", id="a value too long"),
])
def test_bad_params_are_refused_at_the_call(tracker: Tracker, params: dict[str, object],
                                            message: str) -> None:
    with pytest.raises(InvalidTrackingData, match=message):
        tracker.log_params(params)


@pytest.mark.parametrize("name", ["../up", "/abs", "a//b", "a/./b", ".aip/x", "a*", "a\\b"])
def test_artifact_names_must_stay_inside_the_job(tracker: Tracker, tmp_path: Path,
                                                 name: str) -> None:
    file = tmp_path / "model.bin"
    file.write_bytes(b"weights")
    with pytest.raises(InvalidTrackingData, match="artifact name"):
        tracker.log_artifact(file, name)


def test_a_missing_artifact_file_is_an_error(tracker: Tracker, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no-such\.bin"):
        tracker.log_artifact(tmp_path / "no-such.bin")


# -- the server away: keep, spill, replay -------------------------------------------------


def test_points_are_kept_while_the_server_is_away_and_sent_when_it_returns(
        tracker: Tracker, sink: FakeSink, clock: Clock) -> None:
    sink.down = True
    tracker.log_metrics(0, {"loss": 1.0})
    tracker.tick()
    assert tracker._pending, "kept in memory"
    calls = sink.calls
    tracker.log_metrics(1, {"loss": 0.5})
    tracker.tick()
    assert sink.calls == calls, "backing off: no try before the retry time"
    sink.down = False
    clock.now += tracking.RETRY_MAX
    tracker.tick()
    assert sink.steps("loss") == [0, 1]
    assert not tracker._pending and not list(tracker.spill_dir.glob("*.jsonl"))


def test_beyond_the_memory_bound_points_spill_to_a_file_and_are_replayed(
        tracker: Tracker, sink: FakeSink, clock: Clock) -> None:
    sink.down = True
    for step in range(60):  # max_pending is 50
        tracker.log_metrics(step, {"loss": float(step)})
    tracker.log_params({"lr": 0.1})
    tracker.tick()
    records = spilled(tracker.spill_dir)
    assert len(records) == 61 and not tracker._pending
    assert records[0] == {"kind": "params", "params": {"lr": "0.1"}, "time": 1000.0}
    assert records[1] == {"kind": "metric", "key": "loss", "step": 0, "value": 0.0,
                          "time": 1000.0, "rank": 0}
    sink.down = False
    clock.now += tracking.RETRY_MAX
    tracker.log_metrics(60, {"loss": 60.0})
    tracker.tick()
    assert sorted(sink.steps("loss")) == list(range(61))
    assert sink.params == {"lr": "0.1"}
    assert not list(tracker.spill_dir.glob("*.jsonl")), "a replayed file is removed"


def test_flush_spills_everything_the_server_did_not_take(tracker: Tracker,
                                                         sink: FakeSink) -> None:
    sink.down = True
    tracker.log_metrics(0, {"loss": 1.0})
    tracker.flush()
    assert [r["key"] for r in spilled(tracker.spill_dir)] == ["loss"]
    assert not tracker._pending


def test_a_replay_cut_short_keeps_the_unsent_rest(tracker: Tracker, sink: FakeSink) -> None:
    sink.down = True
    for step in range(tracking.MAX_BATCH + 10):
        tracker.log_metrics(step, {"loss": 1.0})
    tracker.flush()
    sink.down, sink.calls, sink.fail_after = False, 0, 1  # one request through, then down
    tracker.flush()  # the file's first window goes, the second fails
    assert len(sink.metrics) == tracking.MAX_BATCH
    left = [r["step"] for r in spilled(tracker.spill_dir)]
    assert left == list(range(tracking.MAX_BATCH, tracking.MAX_BATCH + 10))
    sink.fail_after = None
    tracker.flush()
    assert sorted(sink.steps("loss")) == list(range(tracking.MAX_BATCH + 10))
    assert not list(tracker.spill_dir.glob("*.jsonl"))


def test_what_the_server_refuses_is_dropped_not_retried(tracker: Tracker, sink: FakeSink,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    sink.refuse = True
    tracker.log_metrics(0, {"loss": 1.0})
    tracker.tick()
    assert not tracker._pending and not list(tracker.spill_dir.glob("*.jsonl"))
    assert "refused 1 metric point(s): no job 'x'" in caplog.text
    sink.refuse = False
    tracker.tick()
    assert sink.calls == 1, "nothing left to send"


def test_spill_files_of_dead_processes_on_this_host_are_claimed_and_sent(
        tracker: Tracker, sink: FakeSink) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    alive = str(os.getppid())
    tracker.spill_dir.mkdir(parents=True)
    host = tracking._host()
    record = {"kind": "metric", "key": "loss", "step": 7, "value": 0.5, "time": 1.0,
              "rank": 2}
    (tracker.spill_dir / f"{host}_{dead}_0.jsonl").write_text(json.dumps(record) + "\n")
    (tracker.spill_dir / f"{host}_{alive}_0.jsonl").write_text(json.dumps(record) + "\n")
    (tracker.spill_dir / f"other-host_{dead}_0.jsonl").write_text(json.dumps(record) + "\n")
    tracker.log_metrics(0, {"loss": 1.0})
    tracker.tick()
    assert [(point[1], rank) for point, rank in sink.metrics] == [(0, 0), (7, 2)]
    left = sorted(path.name for path in tracker.spill_dir.iterdir())
    assert left == sorted([f"{host}_{alive}_0.jsonl", f"other-host_{dead}_0.jsonl"]), (
        "a live process's file and another host's stay")


def test_a_broken_line_of_a_spill_file_is_skipped(tracker: Tracker, sink: FakeSink) -> None:
    tracker.spill_dir.mkdir(parents=True)
    good = json.dumps({"kind": "metric", "key": "loss", "step": 1, "value": None,
                       "time": 1.0, "rank": 0})
    tracker.spill_path.write_text(f"{good}\nnot json\n{good[:10]}")  # the last cut short
    tracker.flush()
    [(point, _rank)] = sink.metrics
    assert point[1] == 1 and math.isnan(point[2])
    assert not tracker.spill_path.exists()


# -- artifacts ----------------------------------------------------------------------------


def test_an_artifact_file_uploads_at_once_and_its_key_is_returned(
        tracker: Tracker, sink: FakeSink, tmp_path: Path) -> None:
    file = tmp_path / "model.bin"
    file.write_bytes(b"weights")
    assert tracker.log_artifact(file) == "jobs/train-1/model.bin"
    assert tracker.log_artifact(file, "best/model.bin") == "jobs/train-1/best/model.bin"
    assert sink.uploads == [("model.bin", b"weights"), ("best/model.bin", b"weights")]


def test_a_directory_uploads_each_of_its_files(tracker: Tracker, sink: FakeSink,
                                               tmp_path: Path) -> None:
    root = tmp_path / "ckpt"
    (root / "shards").mkdir(parents=True)
    (root / "config.json").write_text("{}")
    (root / "shards" / "0.bin").write_bytes(b"0")
    assert tracker.log_artifact(root) == "jobs/train-1/ckpt"
    assert [name for name, _ in sink.uploads] == ["ckpt/config.json", "ckpt/shards/0.bin"]


def test_an_artifact_is_recorded_while_the_server_is_away_and_uploaded_later(
        tracker: Tracker, sink: FakeSink, tmp_path: Path, clock: Clock) -> None:
    file = tmp_path / "model.bin"
    file.write_bytes(b"v1")
    sink.down = True
    assert tracker.log_artifact(file) == "jobs/train-1/model.bin"
    assert spilled(tracker.spill_dir) == [
        {"kind": "artifact", "path": str(file), "name": "model.bin", "time": 1000.0}]
    file.write_bytes(b"v2")
    sink.down = False
    tracker.flush()
    assert sink.uploads == [("model.bin", b"v2")], "the file as it is at upload time"


def test_a_refused_artifact_raises(tracker: Tracker, sink: FakeSink, tmp_path: Path) -> None:
    file = tmp_path / "model.bin"
    file.write_bytes(b"w")
    sink.refuse = True
    with pytest.raises(InvalidTrackingData, match=r"refused artifact 'model\.bin'"):
        tracker.log_artifact(file)


# -- offline: outside a job ---------------------------------------------------------------


def test_outside_a_job_everything_goes_to_the_jsonl_file(tmp_path: Path, clock: Clock) -> None:
    tracker = Tracker.from_environment({"AIP_OUTPUT_DIR": str(tmp_path)})
    assert tracker.sink is None and tracker.spill_dir == tmp_path / ".aip-tracking"
    tracker._clock = clock
    tracker._background = False
    tracker.log_metrics(0, {"loss": 1.0})
    tracker.log_params({"lr": 0.1})
    file = tmp_path / "model.bin"
    file.write_bytes(b"w")
    assert tracker.log_artifact(file) == "model.bin"
    tracker.tick()
    kinds = [r["kind"] for r in spilled(tracker.spill_dir)]
    assert sorted(kinds) == ["artifact", "metric", "params"]


def test_in_a_job_the_tracker_reports_to_the_server_with_the_job_token(tmp_path: Path) -> None:
    tracker = Tracker.from_environment({
        "AIP_SERVER": "http://127.0.0.1:8470", "AIP_JOB_ID": "train-1",
        "AIP_JOB_TOKEN": "job-secret", "AIP_RANK": "3", "AIP_OUTPUT_DIR": str(tmp_path)})
    assert isinstance(tracker.sink, HttpSink)
    assert (tracker.sink.server, tracker.sink.token, tracker.sink.job_id) == (
        "http://127.0.0.1:8470", "job-secret", "train-1")
    assert tracker.rank == 3 and tracker.job_id == "train-1"


def test_processes_of_a_torchrun_replica_log_under_their_own_rank(tmp_path: Path) -> None:
    tracker = Tracker.from_environment({
        "AIP_RANK": "1", "AIP_NPROC_PER_REPLICA": "4", "RANK": "6",
        "AIP_OUTPUT_DIR": str(tmp_path)})
    assert tracker.rank == 6


def test_a_job_without_a_token_logs_offline(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    tracker = Tracker.from_environment({
        "AIP_SERVER": "http://127.0.0.1:8470", "AIP_JOB_ID": "train-1",
        "AIP_OUTPUT_DIR": str(tmp_path)})
    assert tracker.sink is None
    assert "AIP_JOB_TOKEN is not set" in caplog.text


def test_the_module_functions_work_in_any_script(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AIP_SERVER", "AIP_JOB_ID", "AIP_JOB_TOKEN", "AIP_TOKEN", "AIP_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIP_OUTPUT_DIR", str(tmp_path))
    tracking.reset()
    try:
        aip.log_metrics(step=1, loss=0.5)
        aip.log_metrics({"val/loss": 0.7}, step=1)
        aip.log_params(lr=0.1)
        aip.flush()
        records = spilled(tmp_path / ".aip-tracking")
        assert {(r["kind"], r.get("key")) for r in records} == {
            ("metric", "loss"), ("metric", "val/loss"), ("params", None)}
    finally:
        tracking.reset()


def test_close_stops_the_thread_flushes_and_closes_the_sink(tmp_path: Path,
                                                            sink: FakeSink) -> None:
    tracker = Tracker(sink, tmp_path, flush_interval=3600)
    tracker.log_metrics(0, {"loss": 1.0})
    assert tracker._thread is not None and tracker._thread.is_alive()
    tracker.close()
    assert not tracker._thread.is_alive()
    assert len(sink.metrics) == 1 and sink.closed
