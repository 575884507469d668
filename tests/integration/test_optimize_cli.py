"""``aip optimize`` as a user runs it: a real subprocess on an ONNX file, the table, the
JSON, a bad input's message, and a registered model optimized into a new version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aip.testing.server import AipServer
from tests.unit.optimize.builders import mlp_onnx, onnx_rows

pytest.importorskip("onnxruntime")

FAST = ("--measure-seconds", "0", "--calibration-methods", "minmax")


def run_aip(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIP_HOME": str(home), "COLUMNS": "200"}
    env.pop("AIP_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "aip", *args], env=env, capture_output=True,
                          text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("optimize-cli")
    model = mlp_onnx(directory / "mlp.onnx")
    x, labels = onnx_rows(model, 300)
    np.savez(directory / "val.npz", x=x, labels=labels)
    np.savez(directory / "calib.npz", x=x[:96])
    np.savez(directory / "bad_calib.npz", x=np.zeros((8, 4, 4), np.float32))
    return {"model": model, "val": directory / "val.npz", "calib": directory / "calib.npz",
            "bad_calib": directory / "bad_calib.npz"}


def test_optimize_prints_a_table_and_writes_the_model_and_report(
        model_files: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "out"
    done = run_aip("optimize", str(model_files["model"]), "--val", str(model_files["val"]),
                   "--calib", str(model_files["calib"]), "--metric", "accuracy",
                   "--tolerance", "0.05", "--dest", str(dest), *FAST, home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    for text in ("PASS", "STATUS", "ACCURACY", "source", "graph", "quantize_dynamic",
                 "quantize_static", "reference", "faster at batch 1"):
        assert text in done.stdout
    assert "Traceback" not in done.stderr
    assert (dest / "model.onnx").is_file()
    report = json.loads((dest / "report.json").read_text())
    assert report["metric"] == "accuracy" and report["path"] == str(dest / "model.onnx")


def test_output_json_is_pure_json_on_stdout(model_files: dict[str, Path],
                                            tmp_path: Path) -> None:
    done = run_aip("optimize", str(model_files["model"]), "--level", "o1", "--dest",
                   str(tmp_path / "out"), "-o", "json", *FAST, home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [row["name"] for row in report["passes"]] == ["source", "export", "graph"]
    assert report["level"] == "o1" and report["metric"] == "cosine"


def test_calibration_data_of_the_wrong_shape_is_one_clear_line(
        model_files: dict[str, Path], tmp_path: Path) -> None:
    done = run_aip("optimize", str(model_files["model"]), "--calib",
                   str(model_files["bad_calib"]), "--dest", str(tmp_path / "out"), *FAST,
                   home=tmp_path / "home")
    assert done.returncode == 1
    assert "error: --calib: input 'x' has shape (8, 4, 4)" in done.stderr
    assert "expected x: float32[N, 16]" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unknown_metric_suggests_the_right_one(model_files: dict[str, Path],
                                                  tmp_path: Path) -> None:
    done = run_aip("optimize", str(model_files["model"]), "--val", str(model_files["val"]),
                   "--metric", "acuracy", "--dest", str(tmp_path / "out"), *FAST,
                   home=tmp_path / "home")
    assert done.returncode == 1
    assert "--metric" in done.stderr and "did you mean 'accuracy'" in done.stderr


def test_a_registered_model_is_optimized_into_a_new_onnx_version(
        server: AipServer, model_files: dict[str, Path], tmp_path: Path) -> None:
    registered = server.cli("model", "register", "mlp-opt", "--path",
                            str(model_files["model"]))
    assert registered.returncode == 0, registered.stderr
    assert server.cli("model", "alias", "mlp-opt", "production", "1").returncode == 0
    done = server.cli("optimize", "models:/mlp-opt@production", "--val",
                      str(model_files["val"]), "--metric", "accuracy", "--tolerance", "0.05",
                      "--dest", str(tmp_path / "out"), "-o", "json", *FAST, timeout=180)
    assert done.returncode == 0, done.stderr
    version = json.loads(done.stdout)["registered"]
    assert version["version"] == 2 and version["flavor"] == "onnx"
    detail = server.client.get_model_version("mlp-opt", 2)
    assert {item["path"] for item in detail["files"]} >= {"model.onnx", "report.json",
                                                           "report.md"}
    assert detail["manifest"]["metadata"]["optimized_from"] == "models:/mlp-opt/1"


def test_a_registered_model_of_another_flavor_is_refused_by_name(
        server: AipServer, tmp_path: Path) -> None:
    xgboost = pytest.importorskip("xgboost")
    rows = np.random.default_rng(0).standard_normal((32, 4))
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(rows, label=rows[:, 0] > 0),
                            num_boost_round=2)
    booster.save_model(tmp_path / "booster.ubj")
    registered = server.cli("model", "register", "trees", "--path", str(tmp_path / "booster.ubj"))
    assert registered.returncode == 0, registered.stderr
    done = server.cli("optimize", "models:/trees/1", "--dest", str(tmp_path / "out"), *FAST)
    assert done.returncode != 0
    assert "models:/trees/1 has flavor xgboost" in done.stderr
    assert "aip optimize reads onnx and pytorch (TorchScript) versions" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
