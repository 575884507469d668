"""Serving benchmark: AIP, Ray Serve and BentoML side by side, loaded by the same client.

    pip install -e '.[serving,bench]' rapidocr-onnxruntime   # Ray Serve; the CNN
    python bench/serve.py                                    # every server, model, batching
    python bench/serve.py --seconds 3 --rounds 3             # as in docs/benchmarks.md
    python bench/serve.py --servers aip,ray --models cnn --concurrency 64 --output json

Models (one row per request, the same JSON body ``{"instances": [row]}`` to every server):
- **mlp**: ONNX, 64 -> 256 -> 256 -> 10 (``replica_overhead.write_mlp``);
- **cnn**: ONNX, PaddleOCR's text-direction classifier shipped in the ``rapidocr-onnxruntime``
  wheel (``ch_ppocr_mobile_v2.0_cls_infer.onnx``), one [3, 48, 192] image per request;
- **lgbm**: a LightGBM booster, 100 trees trained here on 28 synthetic features.
Each runs unbatched and with dynamic batching (up to 32 rows, waiting up to 2 ms).

Servers, started one after the other in this process's session, each with one worker
process and the same intra-op threads (``--threads``, default 1):
- **aip**: a real ``aip up``; the model is registered, an endpoint deployed, and requests go
  to its URL (the router, with the endpoint's token) -> one replica: what users get;
- **aip-replica**: the same replica server called directly, to show the router's cost;
- **ray**: Ray Serve (``serve.run`` on a local Ray): its HTTP proxy -> one replica actor,
  ``@serve.batch`` for batching;
- **bentoml**: ``bentoml serve`` from its own virtual environment (``--bentoml-venv``, made
  with pip when missing), one worker, ``@bentoml.api(batchable=True)`` for batching.

The client is one asyncio load generator (aiohttp, keep-alive, ``concurrency`` connections
each sending its next request as soon as the last one is answered) run for ``--seconds`` per
cell after ``--warmup``; ``--rounds N`` makes N passes over the servers and reports each
cell's median (every round stays in the JSON, under ``runs``). In-process: the same predict
call in this process; overhead = a server's p50 at concurrency 1 minus the in-process p50.
Every server's answer is checked against the in-process one before its cells run. This
machine is shared and noisy: quote the medians and the ratios.

This script runs the rounds; the models, the server adapters, the client and the report are
in ``bench/serving_bench/`` (its package docstring lists them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from control_plane import _machine
from replica_overhead import timed
from serving_bench.base import SERVERS, Server, Variant, handle_signals
from serving_bench.load import check_answer, load
from serving_bench.models import MODELS, Model, build_models, load_predictor
from serving_bench.report import check_targets, median_cells, report
from serving_bench.servers_aip import AipPlatform, AipReplica
from serving_bench.servers_bentoml import BentoML
from serving_bench.servers_ray import RayServe


@dataclass
class Cell:
    server: str
    variant: str
    concurrency: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    first_error: str = ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batching", default="off,on", help="off, on or both")
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured, per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="not measured, per cell")
    parser.add_argument("--rounds", type=int, default=1, help="passes over all the servers, "
                        "one after the other; a cell reports the median of its rounds")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads, every server")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--bentoml-venv", type=Path, default=Path("/tmp/bench-bentoml"))
    parser.add_argument("--output", choices=["table", "json"], default="table")
    args = parser.parse_args()
    handle_signals()
    # Ray and the servers print to stdout; keep it for the report alone.
    report_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        results = run(args)
    finally:
        sys.stdout.flush()
        os.dup2(report_fd, 1)
        os.close(report_fd)
    report(results, args.output)


def run(args: argparse.Namespace) -> dict[str, Any]:
    servers = _choices(args.servers, SERVERS, "--servers")
    concurrencies = [int(value) for value in args.concurrency.split(",")]
    batching = [value == "on" for value in _choices(args.batching, ("off", "on"), "--batching")]
    results: dict[str, Any] = {
        "machine": _machine(), "date": time.strftime("%Y-%m-%d"), "seconds": args.seconds,
        "rounds": args.rounds, "threads": args.threads,
        "batching": {"max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms},
        "ran": {}, "skipped": {}, "in_process": {}, "runs": []}
    with tempfile.TemporaryDirectory(prefix="aip-bench-serve-") as tmp:
        models = build_models(Path(tmp), _choices(args.models, MODELS, "--models"),
                              args.threads, results["skipped"])
        for model in models.values():
            predict = load_predictor(str(model.file), model.flavor, args.threads)
            results["in_process"][model.name] = timed(lambda m=model, p=predict: p(m.rows),
                                                      300 if model.name == "cnn" else 2000)
        variants = [Variant(name, batched) for name in models for batched in batching]
        for round_number in range(1, args.rounds + 1):
            for server_name in servers:
                if server_name in results["skipped"]:
                    continue
                server = make_server(server_name, Path(tmp) / f"round-{round_number}", models,
                                     args)
                try:
                    results["ran"][server_name] = server.start()
                except Exception as exc:  # a peer that cannot start is skipped, with the reason
                    results["skipped"][server_name] = f"{type(exc).__name__}: {exc}"[:500]
                    server.stop()
                    continue
                try:
                    for variant in variants:
                        results["runs"] += [
                            {**cell, "round": round_number} for cell in bench_variant(
                                server, server_name, variant, models[variant.model],
                                concurrencies, args, results["skipped"])]
                finally:
                    server.stop()
    results["cells"] = median_cells(results["runs"])
    results["targets"] = check_targets(results, concurrencies)
    return results


def make_server(name: str, directory: Path, models: dict[str, Model],
                args: argparse.Namespace) -> Server:
    batching = (args.max_batch_size, args.max_wait_ms)
    if name == "aip":
        return AipPlatform(directory / "aip-home", models, args.threads, batching)
    if name == "aip-replica":
        return AipReplica(models, args.threads, batching)
    if name == "ray":
        return RayServe(models, args.threads, batching)
    return BentoML(directory / "bentoml", args.bentoml_venv, models, args.threads, batching)


def bench_variant(server: Server, server_name: str, variant: Variant, model: Model,
                  concurrencies: list[int], args: argparse.Namespace,
                  skipped: dict[str, str]) -> list[dict[str, Any]]:
    cells = []
    try:
        with server.serve(variant) as target:
            check_answer(target, model)
            for concurrency in concurrencies:
                cell = asyncio.run(load(target, model.body, concurrency, args.seconds,
                                        args.warmup))
                cells.append(asdict(Cell(server_name, variant.name, concurrency, **cell)))
                print(f"  {server_name:12} {variant.name:12} c={concurrency:<3} "
                      f"{cell['requests_per_s']:8.1f} req/s  p50 {cell['p50_ms']:7.2f} ms  "
                      f"p99 {cell['p99_ms']:7.2f} ms  errors {cell['errors']}",
                      file=sys.stderr, flush=True)
    except Exception as exc:
        skipped[f"{server_name}/{variant.name}"] = f"{type(exc).__name__}: {exc}"[:500]
    return cells


# -- helpers -------------------------------------------------------------------------------

def _choices(value: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    chosen = [item.strip() for item in value.split(",") if item.strip()]
    unknown = [item for item in chosen if item not in allowed]
    if unknown:
        raise SystemExit(f"{flag}: {', '.join(unknown)} not in {', '.join(allowed)}")
    return chosen


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: every server this run started is stopped", file=sys.stderr)
        sys.exit(130)
