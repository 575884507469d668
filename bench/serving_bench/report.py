"""The serving benchmark's results: one cell per (server, variant, concurrency) as the median
of its rounds, the targets judged on those cells, and the table (or JSON) printed."""

from __future__ import annotations

import json
import statistics
from typing import Any

from serving_bench.base import SERVERS

TARGETS = {"vs_ray": 1.5, "vs_bentoml": 1.0, "overhead_ms": 1.0, "batching_gain": 2.0}


def median_cells(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One cell per (server, variant, concurrency): the median of its rounds."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for cell in runs:
        groups.setdefault((cell["server"], cell["variant"], cell["concurrency"]), []).append(cell)
    return [{"server": server, "variant": variant, "concurrency": concurrency,
             **{key: statistics.median(cell[key] for cell in cells)
                for key in ("requests_per_s", "p50_ms", "p99_ms")},
             "requests": sum(cell["requests"] for cell in cells),
             "errors": sum(cell["errors"] for cell in cells),
             "first_error": next((cell["first_error"] for cell in cells if cell["first_error"]),
                                 ""), "rounds": len(cells)}
            for (server, variant, concurrency), cells in groups.items()]


def check_targets(results: dict[str, Any], concurrencies: list[int]) -> dict[str, Any]:
    """Each target with the cells it was judged on; None where the inputs were not measured."""
    cells = {(c["server"], c["variant"], c["concurrency"]): c for c in results["cells"]}
    targets: dict[str, Any] = {}
    for peer, key in (("ray", "vs_ray"), ("bentoml", "vs_bentoml")):
        judged = []
        for (server, variant, concurrency), ours in cells.items():
            theirs = cells.get((peer, variant, concurrency))
            if server != "aip" or theirs is None or not theirs["requests_per_s"]:
                continue
            ratio = ours["requests_per_s"] / theirs["requests_per_s"]
            judged.append({"variant": variant, "concurrency": concurrency, "ratio": ratio,
                           "p99_ms": ours["p99_ms"], "peer_p99_ms": theirs["p99_ms"],
                           "met": ratio >= TARGETS[key] and ours["p99_ms"] <= theirs["p99_ms"]})
        targets[key] = judged or None
    overhead = []
    for model, base in results["in_process"].items():
        for server in SERVERS:
            cell = cells.get((server, model, 1))
            if cell and cell["requests"]:
                extra = cell["p50_ms"] - base["median_ms"]
                overhead.append({"server": server, "model": model, "overhead_ms": extra,
                                 "met": extra < TARGETS["overhead_ms"]})
    targets["overhead_ms"] = overhead or None
    top = max(concurrencies)
    gains = []
    for server in SERVERS:
        plain, batched = cells.get((server, "cnn", top)), cells.get((server, "cnn-batched", top))
        if plain and batched and plain["requests_per_s"]:
            gain = batched["requests_per_s"] / plain["requests_per_s"]
            gains.append({"server": server, "concurrency": top, "gain": gain,
                          "met": gain >= TARGETS["batching_gain"]})
    targets["batching_gain"] = gains or None
    return targets


def report(results: dict[str, Any], output: str) -> None:
    if output == "json":
        print(json.dumps(results, indent=2))
        return
    print(f"machine: {results['machine']}; {results['seconds']:g} s per cell, median of "
          f"{results['rounds']} round(s)")
    for server, ran in results["ran"].items():
        print(f"  {server:12} {ran}")
    for what, why in results["skipped"].items():
        print(f"  skipped {what}: {why}")
    print("in-process: " + ", ".join(f"{model} p50 {numbers['median_ms']:.3f} ms"
                                     for model, numbers in results["in_process"].items()))
    cells = {(c["server"], c["variant"], c["concurrency"]): c for c in results["cells"]}
    print(f"\n{'model':12} {'conc':>4}  {'server':12} {'req/s':>8} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'errors':>6} {'vs ray':>7} {'vs bentoml':>10}")
    for variant, concurrency in dict.fromkeys((c["variant"], c["concurrency"])
                                              for c in results["cells"]):
        ray, bento = cells.get(("ray", variant, concurrency)), cells.get(
            ("bentoml", variant, concurrency))
        for server in SERVERS:
            cell = cells.get((server, variant, concurrency))
            if cell is None:
                continue
            print(f"{variant:12} {concurrency:>4}  {server:12} {cell['requests_per_s']:8.1f} "
                  f"{cell['p50_ms']:8.2f} {cell['p99_ms']:8.2f} {cell['errors']:>6} "
                  f"{_ratio(cell, ray):>7} {_ratio(cell, bento):>10}")
    print("\ntargets:")
    targets = results["targets"]
    for key, label in (("vs_ray", "AIP req/s >= 1.5x Ray Serve's at equal or better p99"),
                       ("vs_bentoml", "AIP req/s >= BentoML's at equal or better p99")):
        judged = targets[key]
        if not judged:
            print(f"  {label}: not measured")
            continue
        missed = [f"{j['variant']}@{j['concurrency']} ({j['ratio']:.2f}x, p99 "
                  f"{j['p99_ms']:.1f}/{j['peer_p99_ms']:.1f} ms)" for j in judged if not j["met"]]
        print(f"  {label}: met in {len(judged) - len(missed)}/{len(judged)} cells"
              + (f"; missed: {', '.join(missed)}" if missed else ""))
    for item in targets["overhead_ms"] or []:
        print(f"  overhead at concurrency 1 < 1 ms, {item['server']} {item['model']}: "
              f"{item['overhead_ms']:.2f} ms — {'met' if item['met'] else 'not met'}")
    for item in targets["batching_gain"] or []:
        print(f"  CNN batching gain >= 2x at concurrency {item['concurrency']}, "
              f"{item['server']}: {item['gain']:.2f}x — {'met' if item['met'] else 'not met'}")


def _ratio(cell: dict[str, Any], peer: dict[str, Any] | None) -> str:
    if peer is None or not peer["requests_per_s"]:
        return "—"
    return f"{cell['requests_per_s'] / peer['requests_per_s']:.2f}x"
