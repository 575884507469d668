"""In-job tracking: the metrics, params and artifacts a training script logs to AIP.

    import aip

    aip.log_params(lr=3e-4, batch_size=64, model="resnet50")
    for step in range(1000):
        loss = train_step()
        aip.log_metrics(step=step, loss=loss, lr=lr)
    aip.log_artifact("model.pt")            # uploads now; returns "jobs/<job id>/model.pt"
    aip.flush()                             # optional: an exit hook sends what is left

``log_metrics`` is made for the training loop's hot path: it checks each key once, appends
to an in-memory buffer and returns (a microsecond or two). A daemon thread sends the buffer
every second, or as soon as 1,000 points wait. ``log_params`` is buffered the same way.
``log_artifact`` uploads a file or a directory at once (streamed, never whole in memory).

Where the data goes:

- In a job (the launcher sets ``AIP_SERVER``, ``AIP_JOB_ID``, ``AIP_JOB_TOKEN`` and
  ``AIP_RANK``): to the server, with the job's own token. Points carry the replica's rank
  (``AIP_RANK``; in a replica of several processes, torchrun's ``RANK``), so each replica
  has its own series. While the server cannot be
  reached, points wait in memory (up to 10,000), then go to a JSONL file under
  ``$AIP_OUTPUT_DIR/.aip-tracking/``; once the server answers again, the file is sent and
  removed. Files left by a process that died before it could send them are sent by the next
  process of the job on that host (a retried attempt). ``flush()`` and the exit hook push
  what remains, or spill it to the file if the server is away.
- Outside a job (no ``AIP_SERVER``): only to that JSONL file (``./.aip-tracking/`` when
  ``AIP_OUTPUT_DIR`` is unset), one JSON object a line (``{"kind": "metric", "key", "step",
  "value", "time", "rank"}``, ``{"kind": "params", ...}``, ``{"kind": "artifact", ...}``),
  so a script runs anywhere and ``pandas.read_json(path, lines=True)`` reads its log back.

Rules: keys are 1-250 letters, digits, spaces or ``_-./:``; a step is an integer >= 0
(default: one more than this process's last step, 0 at first); values are numbers (NaN and
±inf are stored as null); param values are text of at most 6,000 characters (others are
``str()``-ed); artifact names are relative paths without ``.``/``..`` parts.

This module holds the functions jobs call and the process's one tracker; the parts live in
``common`` (limits, checks, errors, the ``Sink`` contract), ``delivery`` (the ``Tracker``:
buffering, sending, backing off), ``spill`` (the JSONL files and their replay) and
``http_sink`` (the server as a sink). The names the rest of AIP uses (the client, the
server's routes, the tests) are re-exported here.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Mapping
from typing import Any

from aip.tracking.common import (
    ARTIFACT_CHUNK,
    ARTIFACT_SHA256_HEADER,
    MAX_BATCH,
    MAX_PARAM_VALUE_LENGTH,
    MAX_STEP,
    InvalidTrackingData,
    Point,
    Rejected,
    Unavailable,
    check_key,
)
from aip.tracking.delivery import RETRY_MAX, Tracker
from aip.tracking.http_sink import HttpSink
from aip.tracking.spill import host_name as _host  # noqa: F401  (its name before the split)

__all__ = [
    "ARTIFACT_CHUNK",
    "ARTIFACT_SHA256_HEADER",
    "MAX_BATCH",
    "MAX_PARAM_VALUE_LENGTH",
    "MAX_STEP",
    "RETRY_MAX",
    "HttpSink",
    "InvalidTrackingData",
    "Point",
    "Rejected",
    "Tracker",
    "Unavailable",
    "check_key",
    "flush",
    "log_artifact",
    "log_metrics",
    "log_params",
    "reset",
    "tracker",
]


# -- the functions jobs call --------------------------------------------------------------


def log_metrics(metrics: Mapping[str, Any] | None = None, /, *, step: int | None = None,
                **values: Any) -> None:
    """Log numbers at ``step``: ``log_metrics(step=10, loss=0.3)`` or, for keys that are not
    Python names, ``log_metrics({"val/loss": 0.4}, step=10)``. Buffered: returns at once."""
    (_tracker or tracker()).log_metrics(step, metrics, values)


def log_params(params: Mapping[str, Any] | None = None, /, **values: Any) -> None:
    """Log the run's parameters (hyperparameters, data paths): ``log_params(lr=3e-4)``.
    Values are stored as text; a key logged again takes the new value. Buffered."""
    (_tracker or tracker()).log_params(params, values)


def log_artifact(path: str | os.PathLike[str], name: str | None = None) -> str:
    """Upload a file, or a directory's files, as the job's artifact ``name`` (default: the
    file or directory name); return its key in the artifact store (``jobs/<job id>/<name>``).

    Blocks until uploaded. With the server away (or outside a job) the path is recorded in
    the tracking file and uploaded later: the file as it is then."""
    return (_tracker or tracker()).log_artifact(path, name)


def flush() -> None:
    """Send everything buffered now; what the server does not take goes to the spill file."""
    if _tracker is not None:
        _tracker.flush()


# -- the process's tracker ----------------------------------------------------------------

_tracker: Tracker | None = None
_tracker_lock = threading.Lock()
_hooks_installed = False


def tracker() -> Tracker:
    """This process's tracker, made from the environment on first use."""
    global _tracker, _hooks_installed
    with _tracker_lock:
        if _tracker is None:
            _tracker = Tracker.from_environment()
            if not _hooks_installed:
                _hooks_installed = True
                atexit.register(_close_at_exit)
                os.register_at_fork(after_in_child=_forget_in_child)
        return _tracker


def reset() -> None:
    """Close this process's tracker (flushing it); the next call makes a new one from the
    environment."""
    global _tracker
    with _tracker_lock:
        current, _tracker = _tracker, None
    if current is not None:
        current.close()


def _close_at_exit() -> None:
    if _tracker is not None:
        _tracker.close()


def _forget_in_child() -> None:
    """A forked child (a DataLoader worker) starts clean: the parent sends its own buffer."""
    global _tracker, _tracker_lock
    _tracker = None
    _tracker_lock = threading.Lock()
