"""A loop of steps that survives being killed: it checkpoints after every step and resumes
from the checkpoint, so after a restart the step counter continues where it stopped.

    STEPS=30 SLEEP=0.2 python resume_counter.py

Checkpoint: ``$AIP_CHECKPOINT_DIR/state.json`` = {"step": k}, the last step done, replaced
atomically. Every step run is appended to ``$AIP_OUTPUT_DIR/steps-rank{AIP_RANK}.txt`` and
printed as ``step k``. Stdlib only.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def main() -> None:
    steps = int(os.environ.get("STEPS", "30"))
    pause = float(os.environ.get("SLEEP", "0.2"))
    checkpoint = Path(os.environ.get("AIP_CHECKPOINT_DIR", ".")) / "state.json"
    output = Path(os.environ.get("AIP_OUTPUT_DIR", "."))
    log = output / f"steps-rank{os.environ.get('AIP_RANK', '0')}.txt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    output.mkdir(parents=True, exist_ok=True)

    start = load_step(checkpoint) + 1
    if start > 1:
        print(f"resuming after step {start - 1}", flush=True)
    for step in range(start, steps + 1):
        time.sleep(pause)  # the "work"
        print(f"step {step}", flush=True)
        with log.open("a", encoding="utf-8") as record:
            record.write(f"{step}\n")
        save_step(checkpoint, step)
    print("done", flush=True)


def load_step(path: Path) -> int:
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def save_step(path: Path, step: int) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="utf-8") as out:
        json.dump({"step": step}, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


if __name__ == "__main__":
    main()
