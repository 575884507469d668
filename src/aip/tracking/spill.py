"""The tracking SDK's spill files: the JSONL files under ``<output dir>/.aip-tracking/`` that
hold what the server did not take (outside a job: everything), and reading them back.

One JSON object a line: ``{"kind": "metric", "key", "step", "value", "time", "rank"}``,
``{"kind": "params", "params", "time"}`` or ``{"kind": "artifact", "path", "name", "time"}``.
A file is named ``<host>_<pid>_<seq>.jsonl`` after the process that owns it. A process sends
only its own files; the files of a dead process on the same host are claimed first, by an
atomic rename, so two processes never send one file. The tracker (``delivery``) decides when
to write and when to replay; this module knows the files.
"""

from __future__ import annotations

import json
import math
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aip.tracking.common import MAX_BATCH, Point, Unavailable

SPILL_DIRNAME = ".aip-tracking"


@dataclass
class SpilledRecords:
    """What a batch of spilled lines holds, ready to send again."""

    points: dict[int, list[Point]] = field(default_factory=dict)  # by rank
    params: dict[str, str] = field(default_factory=dict)
    uploads: list[tuple[Path, str]] = field(default_factory=list)  # (path, artifact name)


def spill_name(pid: int, seq: int) -> str:
    """The name of the ``seq``-th spill file of process ``pid`` on this host."""
    return f"{host_name()}_{pid}_{seq}.jsonl"


def metric_record(point: Point, rank: int) -> dict[str, Any]:
    key, step, value, at = point
    return {"kind": "metric", "key": key, "step": step, "value": value, "time": at,
            "rank": rank}


def params_record(params: dict[str, str], at: float) -> dict[str, Any]:
    return {"kind": "params", "params": params, "time": at}


def append_records(path: Path, records: list[dict[str, Any]]) -> None:
    """Append ``records`` to the spill file ``path``, one JSON object a line."""
    if not records:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(record) + "\n" for record in records))


def claim_orphans(directory: Path) -> None:
    """Rename to this process's names the spill files of dead processes of this host (a
    rename another process won first is skipped)."""
    host, me = host_name(), os.getpid()
    taken = {_spill_seq(path) for path in own_spill_files(directory)}
    seq = max(taken | {1}) + 1
    for path in sorted(_spill_files(directory)):
        owner = _spill_owner(path)
        if owner is None or owner[0] != host or owner[1] == me or _alive(owner[1]):
            continue
        try:
            os.rename(path, directory / spill_name(me, seq))
        except OSError:
            continue  # another process claimed it first
        seq += 1


def own_spill_files(directory: Path) -> Iterator[Path]:
    """The spill files of this process."""
    pid, host = os.getpid(), host_name()
    for path in _spill_files(directory):
        owner = _spill_owner(path)
        if owner is not None and owner == (host, pid):
            yield path


def replay_file(path: Path, send: Callable[[list[bytes]], None]) -> bool:
    """Hand the spill file ``path`` to ``send`` in batches of whole lines, then remove it.
    When ``send`` raises ``Unavailable``, keep the unsent rest in the file and return False."""
    sent = 0  # bytes of whole lines sent
    with open(path, "rb") as handle:
        while True:
            lines = _read_lines(handle, MAX_BATCH)
            if not lines:
                break
            try:
                send(lines)
            except Unavailable:
                _keep_rest(path, sent)
                return False
            sent += sum(len(line) for line in lines)
    path.unlink(missing_ok=True)
    return True


def parse_records(lines: list[bytes], on_broken_line: Callable[[], None]) -> SpilledRecords:
    """The records of ``lines``; each line that does not parse is skipped, after a call to
    ``on_broken_line``."""
    records = SpilledRecords()
    for line in lines:
        try:
            record = json.loads(line)
            kind = record["kind"]
            if kind == "metric":
                records.points.setdefault(int(record["rank"]), []).append((
                    record["key"], int(record["step"]), _nan_if_none(record["value"]),
                    float(record["time"])))
            elif kind == "params":
                records.params.update(record["params"])
            elif kind == "artifact":
                records.uploads.append((Path(record["path"]), record["name"]))
        except (ValueError, KeyError, TypeError):
            on_broken_line()
    return records


def host_name() -> str:
    """This host, as spill file names carry it (no ``_``, which separates their parts)."""
    return socket.gethostname().replace("_", "-").replace("/", "-") or "host"


# -- helpers ------------------------------------------------------------------------------


def _spill_seq(path: Path) -> int:
    return int(path.stem.rsplit("_", 1)[1])


def _spill_files(directory: Path) -> list[Path]:
    try:
        return [path for path in directory.iterdir() if path.suffix == ".jsonl"]
    except OSError:
        return []


def _spill_owner(path: Path) -> tuple[str, int] | None:
    parts = path.stem.rsplit("_", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1])


def _alive(pid: int) -> bool:
    import psutil

    return bool(psutil.pid_exists(pid))


def _read_lines(handle: Any, count: int) -> list[bytes]:
    lines: list[bytes] = []
    while len(lines) < count:
        line = handle.readline()
        if not line:
            break
        if line.endswith(b"\n"):
            lines.append(line)
        else:  # a line cut short by a crash: skip it
            break
    return lines


def _keep_rest(path: Path, sent: int) -> None:
    if sent == 0:
        return
    rest = path.with_suffix(".rest")
    with open(path, "rb") as source, open(rest, "wb") as target:
        source.seek(sent)
        while chunk := source.read(1 << 20):
            target.write(chunk)
    os.replace(rest, path)


def _nan_if_none(value: object) -> float:
    return math.nan if value is None else float(value)  # type: ignore[arg-type]
