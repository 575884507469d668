"""The ``Tracker``: buffers what one process logs and delivers it to a ``Sink``.

``aip.tracking`` makes one per process (``Tracker.from_environment``); tests make their own
with a fake sink, injected clocks and ``background=False``, and drive it with ``tick()`` and
``flush()``. The hot path (``log_metrics``) only checks and appends; a daemon thread sends.
While the server is away, points wait in memory (up to ``max_pending``), then go to the
process's spill file (``spill``); once the server answers again, the spill files are sent
back and removed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from aip.tracking.common import (
    MAX_BATCH,
    MAX_STEP,
    InvalidTrackingData,
    Point,
    Rejected,
    Sink,
    Unavailable,
    artifact_files,
    check_artifact_name,
    check_key,
    check_step,
    param_value,
)
from aip.tracking.http_sink import HttpSink
from aip.tracking.spill import (
    SPILL_DIRNAME,
    append_records,
    claim_orphans,
    metric_record,
    own_spill_files,
    params_record,
    parse_records,
    replay_file,
    spill_name,
)

log = logging.getLogger("aip.tracking")

FLUSH_INTERVAL = 1.0  # seconds between sends
BATCH_SIZE = 1000  # points that wake the sender before the interval ends
MAX_PENDING = 10_000  # points kept in memory while the server is away, then spilled
RETRY_MAX = 30.0  # seconds: the longest wait between tries while the server is away
CLOSE_TIMEOUT = 15.0


class Tracker:
    """Buffers what one process logs and delivers it to a ``Sink`` (None: only the spill
    file). ``background=False`` starts no thread: the caller drives it with ``tick()``
    (one periodic round) and ``flush()``, as the unit tests do."""

    def __init__(
        self, sink: Sink | None, spill_dir: Path, *, job_id: str | None = None, rank: int = 0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        flush_interval: float = FLUSH_INTERVAL, batch_size: int = BATCH_SIZE,
        max_pending: int = MAX_PENDING, background: bool = True,
    ) -> None:
        self.sink = sink
        self.spill_dir = spill_dir
        self.job_id = job_id
        self.rank = rank
        self.spill_path = spill_dir / spill_name(os.getpid(), 0)
        self._clock = clock
        self._monotonic = monotonic
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._background = background
        self._lock = threading.Lock()  # guards the params buffer and the thread's start
        self._flush_lock = threading.Lock()  # one delivery at a time; guards what follows
        self._points: deque[Point] = deque()  # appended by the hot path, popped by delivery
        self._params: dict[str, str] = {}
        self._known_keys: set[str] = set()
        self._next_step = 0
        self._pending: list[Point] = []
        self._pending_params: dict[str, str] = {}
        self._failures = 0
        self._retry_at = 0.0
        self._claimed_orphans = False
        self._warned: set[str] = set()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Tracker:
        """The tracker of this process: reporting to ``AIP_SERVER`` in a job, else offline."""
        env = os.environ if environ is None else environ
        server, job_id = env.get("AIP_SERVER"), env.get("AIP_JOB_ID")
        token = env.get("AIP_JOB_TOKEN") or env.get("AIP_TOKEN")
        base = Path(env.get("AIP_OUTPUT_DIR") or Path.cwd())
        sink = HttpSink(server, token, job_id) if server and job_id and token else None
        # a replica running several processes (torchrun) logs by process: torchrun's RANK
        rank_variable = "RANK" if env.get("AIP_NPROC_PER_REPLICA") else "AIP_RANK"
        tracker = cls(sink, base / SPILL_DIRNAME, job_id=job_id,
                      rank=_int(env.get(rank_variable), 0))
        if sink is None and server and job_id:
            tracker._warn("no-token", "aip tracking: AIP_JOB_TOKEN is not set; metrics go "
                          f"to {tracker.spill_dir} only")
        return tracker

    # -- the hot path ---------------------------------------------------------------------

    def log_metrics(self, step: int | None, *groups: Mapping[str, Any] | None) -> None:
        if step is None:
            step = self._next_step
        elif type(step) is not int or not 0 <= step <= MAX_STEP:
            step = check_step(step)
        self._next_step = step + 1
        now = self._clock()
        known = self._known_keys
        append = self._points.append  # a deque: appends need no lock
        for group in groups:
            if not group:
                continue
            for key, value in group.items():
                if key not in known:
                    known.add(check_key(key))
                if type(value) is not float:
                    value = _as_float(key, value)
                append((key, step, value, now))
        if len(self._points) >= self._batch_size and not self._wake.is_set():
            self._wake.set()
        if self._thread is None and self._background:
            self._start()

    def log_params(self, *groups: Mapping[str, Any] | None) -> None:
        params = {check_key(key, "param"): param_value(key, value)
                  for group in groups if group for key, value in group.items()}
        with self._lock:
            self._params.update(params)
        if self._thread is None and self._background:
            self._start()

    # -- artifacts ------------------------------------------------------------------------

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> str:
        source = Path(path).resolve()
        if not source.exists():
            raise FileNotFoundError(f"cannot log artifact {os.fspath(path)!r}: no such file "
                                    "or directory")
        name = check_artifact_name(name or source.name)
        key = f"jobs/{self.job_id}/{name}" if self.job_id else name
        if self.sink is not None:
            try:
                for file, file_name in artifact_files(source, name):
                    self.sink.upload(file, file_name)
                return key
            except Rejected as exc:
                raise InvalidTrackingData(f"the server refused artifact {name!r}: {exc}",
                                          fields={"name": str(exc)}) from None
            except Unavailable as exc:
                self._warn("artifact", f"aip tracking: could not upload {name!r} ({exc}); "
                           "it will be uploaded when the server answers again")
        with self._flush_lock:
            append_records(self.spill_path, [{"kind": "artifact", "path": str(source),
                                              "name": name, "time": self._clock()}])
        return key

    # -- delivery -------------------------------------------------------------------------

    def tick(self) -> None:
        """One periodic round: send what is buffered unless backing off after a failure;
        spill to the file what no longer fits in memory."""
        self._deliver(final=False)

    def flush(self) -> None:
        """Send everything now (even while backing off); spill what the server did not
        take."""
        self._deliver(final=True)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Stop the thread and flush (the exit hook). Never raises."""
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        try:
            if self._flush_lock.acquire(timeout=timeout):
                self._flush_lock.release()
                self.flush()
            else:  # the thread hangs on the server: keep the buffer at least
                self._spill_buffer_apart()
        except Exception as exc:
            log.warning("aip tracking: final flush failed: %s", exc)
        finally:
            if self.sink is not None:
                self.sink.close()

    def _deliver(self, *, final: bool) -> None:
        with self._flush_lock:
            points = self._take_points()
            with self._lock:
                params, self._params = self._params, {}
            self._pending.extend(points)
            self._pending_params.update(params)
            if self.sink is None:
                self._spill_pending()
                return
            if not final and self._monotonic() < self._retry_at:
                self._spill_overflow()
                return
            if self._send_pending():
                self._replay_spilled()
            elif final:
                self._spill_pending()
            else:
                self._spill_overflow()

    def _take_points(self) -> list[Point]:
        """What the hot path appended so far (only this side pops, so no lock is needed)."""
        queue = self._points
        return [queue.popleft() for _ in range(len(queue))]

    def _send_pending(self) -> bool:
        """Send the pending params and points; False if the server is away."""
        assert self.sink is not None
        sink = self.sink
        try:
            if self._pending_params:
                params = dict(self._pending_params)
                self._send(lambda: sink.send_params(params), f"{len(params)} param(s)")
                self._pending_params.clear()
            while self._pending:
                chunk = self._pending[:MAX_BATCH]
                self._send(lambda c=chunk: sink.send_metrics(c, self.rank),  # type: ignore[misc]
                           f"{len(chunk)} metric point(s)")
                del self._pending[:len(chunk)]
        except Unavailable as exc:
            self._failures += 1
            delay = min(RETRY_MAX, self._flush_interval * 2 ** self._failures)
            self._retry_at = self._monotonic() + delay
            self._warn("unavailable", f"aip tracking: the server is away ({exc}); keeping "
                       f"the data and retrying (spilled to {self.spill_dir} beyond "
                       f"{self._max_pending} points)")
            return False
        if self._failures:
            log.warning("aip tracking: the server answers again; sending what was kept")
            self._warned.discard("unavailable")
        self._failures = 0
        self._retry_at = 0.0
        return True

    def _send(self, send: Callable[[], None], what: str) -> None:
        try:
            send()
        except Rejected as exc:
            self._warn(f"rejected:{exc}", f"aip tracking: the server refused {what}: {exc}; "
                       "dropped them")

    # -- spill file (the files themselves: ``spill``) -------------------------------------

    def _spill_overflow(self) -> None:
        if len(self._pending) > self._max_pending:
            self._spill_pending()

    def _spill_pending(self) -> None:
        records: list[dict[str, Any]] = []
        if self._pending_params:
            records.append(params_record(dict(self._pending_params), self._clock()))
        records.extend(metric_record(point, self.rank) for point in self._pending)
        append_records(self.spill_path, records)
        self._pending.clear()
        self._pending_params.clear()

    def _spill_buffer_apart(self) -> None:
        points = self._take_points()
        with self._lock:
            params, self._params = self._params, {}
        records = [params_record(params, self._clock())] if params else []
        records.extend(metric_record(point, self.rank) for point in points)
        append_records(self.spill_dir / spill_name(os.getpid(), 1), records)

    def _replay_spilled(self) -> None:
        """Send the spill files of this process, and those of dead processes of this host
        (claimed by an atomic rename, so two processes never send one file)."""
        if not self._claimed_orphans:
            self._claimed_orphans = True
            claim_orphans(self.spill_dir)
        for path in sorted(own_spill_files(self.spill_dir)):
            if not replay_file(path, partial(self._replay_records, path=path)):
                return

    def _replay_records(self, lines: list[bytes], path: Path) -> None:
        assert self.sink is not None
        sink = self.sink
        records = parse_records(lines, lambda: self._warn(
            f"corrupt:{path}", f"aip tracking: skipped a broken line of {path}"))
        params = records.params
        if params:
            self._send(lambda: sink.send_params(params), f"{len(params)} param(s) of {path}")
        for rank, group in records.points.items():
            self._send(lambda g=group, r=rank: sink.send_metrics(g, r),  # type: ignore[misc]
                       f"{len(group)} metric point(s) of {path}")
        for source, name in records.uploads:
            if not source.exists():
                self._warn(f"gone:{source}", f"aip tracking: artifact {name!r} was not "
                           f"uploaded: {source} no longer exists")
                continue
            for file, file_name in artifact_files(source, name):
                self._send(lambda f=file, n=file_name: sink.upload(f, n),  # type: ignore[misc]
                           f"artifact {file_name!r}")

    # -- thread ---------------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stopping:
                return
            self._thread = threading.Thread(target=self._run, name="aip-tracking",
                                            daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            if self._stopping:
                return
            try:
                self.tick()
            except Exception as exc:  # the sender must outlive any one bad round
                self._warn(f"error:{type(exc).__name__}", f"aip tracking: sending failed: "
                           f"{exc!r}")

    def _warn(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning(message)


# -- helpers ------------------------------------------------------------------------------


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def _as_float(key: str, value: object) -> float:
    if isinstance(value, str | bytes) or value is None:
        raise InvalidTrackingData(f"metric {key!r}: {value!r} is not a number",
                                  fields={key: "not a number"})
    try:
        return float(value)  # type: ignore[arg-type]  # ints, numpy and 0-d torch values
    except (TypeError, ValueError):
        raise InvalidTrackingData(f"metric {key!r}: {value!r} is not a number",
                                  fields={key: "not a number"}) from None
