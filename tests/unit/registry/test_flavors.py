"""Flavor detection, signature inference per flavor (tiny models built here), and the
manifest written into the uploaded tree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aip.errors import InvalidSpec
from aip.registry.flavors import (
    detect_flavor,
    prepare_model,
    read_manifest,
    signature_from_json,
    write_manifest,
)
from aip.registry.signatures import SignatureUnavailable, infer_signature
from aip.spec.model import MANIFEST_FILE, ModelManifest, Signature, TensorSpec
from tests.unit.registry import builders

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def spec(name: str, dtype: str, shape: list[int]) -> TensorSpec:
    return TensorSpec(name=name, dtype=dtype, shape=shape)


# -- detection ----------------------------------------------------------------------------


@pytest.mark.parametrize(("filename", "flavor"), [
    ("model.onnx", "onnx"), ("model.pt", "pytorch"), ("model.pt2", "pytorch"),
    ("model.joblib", "sklearn"), ("model.pkl", "sklearn"), ("model.skops", "sklearn"),
    ("model.ubj", "xgboost"),
])
def test_a_file_suffix_names_the_flavor(tmp_path: Path, filename: str, flavor: str) -> None:
    path = tmp_path / filename
    path.write_bytes(b"\0")
    assert detect_flavor(path) == flavor


def test_json_and_text_files_are_told_apart_by_their_first_bytes(tmp_path: Path) -> None:
    assert detect_flavor(builders.xgboost_model(tmp_path / "booster.json")) == "xgboost"
    assert detect_flavor(builders.lightgbm_model(tmp_path / "booster.txt")) == "lightgbm"
    other = tmp_path / "config.json"
    other.write_text('{"lr": 0.1}')
    with pytest.raises(InvalidSpec, match="--flavor") as caught:
        detect_flavor(other)
    assert caught.value.fields == {"flavor": "cannot detect"}


def test_a_directory_is_detected_from_the_model_file_inside(tmp_path: Path) -> None:
    builders.onnx_model(tmp_path / "model.onnx")
    (tmp_path / "README.md").write_text("notes")
    assert detect_flavor(tmp_path) == "onnx"


def test_a_directory_with_models_of_two_flavors_needs_the_flag(tmp_path: Path) -> None:
    builders.onnx_model(tmp_path / "model.onnx")
    (tmp_path / "model.pt").write_bytes(b"\0")
    with pytest.raises(InvalidSpec, match=r"several flavors \(onnx, pytorch\)"):
        detect_flavor(tmp_path)


def test_a_directory_with_saved_model_pb_is_tensorflow(tmp_path: Path) -> None:
    (tmp_path / "export" / "variables").mkdir(parents=True)
    (tmp_path / "export" / "saved_model.pb").write_bytes(b"")
    assert detect_flavor(tmp_path) == "tensorflow"


def test_an_unknown_flavor_suggests_the_close_one(tmp_path: Path) -> None:
    model = builders.onnx_model(tmp_path / "model.onnx")
    with pytest.raises(InvalidSpec, match="did you mean 'pytorch'") as caught:
        prepare_model(model, "pytorc")
    assert "flavor" in caught.value.fields


def test_a_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match="no such file") as caught:
        prepare_model(tmp_path / "nope.onnx")
    assert caught.value.fields == {"path": "not found"}


# -- signatures per flavor ----------------------------------------------------------------


def test_onnx_signature_comes_from_the_graph_with_the_batch_as_minus_one(tmp_path: Path) -> None:
    inferred = infer_signature("onnx", builders.onnx_model(tmp_path / "m.onnx"))
    assert inferred.signature == Signature(inputs=[spec("x", "float32", [-1, 4])],
                                           outputs=[spec("y", "float32", [-1, 2])])
    assert inferred.metadata["opset"] == {"ai.onnx": 17}
    assert inferred.metadata["producer"] == "aip-tests"


def test_onnx_fixed_dimensions_stay_fixed(tmp_path: Path) -> None:
    inferred = infer_signature("onnx", builders.onnx_model(tmp_path / "m.onnx", batch=8))
    assert inferred.signature is not None
    assert inferred.signature.inputs[0].shape == [8, 4]


def test_a_file_that_is_not_onnx_is_refused_naming_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"this is not protobuf at all \xff\xff")
    with pytest.raises(InvalidSpec, match="not a valid onnx model") as caught:
        infer_signature("onnx", bad)
    assert caught.value.fields == {"path": "not a onnx model"}


def test_sklearn_classifier_gives_features_labels_and_probabilities(tmp_path: Path) -> None:
    path = builders.sklearn_classifier(tmp_path / "clf.joblib")
    inferred = infer_signature("sklearn", path, allow_code=True)
    assert inferred.signature == Signature(
        inputs=[spec("input", "float64", [-1, 4])],
        outputs=[spec("predictions", "int64", [-1]), spec("probabilities", "float64", [-1, 2])])
    assert inferred.metadata["classes"] == [0, 1]
    assert inferred.metadata["estimator"].endswith("LogisticRegression")
    assert inferred.metadata["serialization"] == "pickle"


def test_sklearn_fitted_on_a_dataframe_takes_one_input_per_column(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    path = builders.sklearn_classifier(tmp_path / "clf.pkl", frame=True)
    inferred = infer_signature("sklearn", path, allow_code=True)
    assert inferred.metadata["feature_names"] == ["age", "income", "debt", "score"]
    assert inferred.signature is not None
    assert [(s.name, s.shape) for s in inferred.signature.inputs] == [
        ("age", [-1]), ("income", [-1]), ("debt", [-1]), ("score", [-1])]


def test_a_pickle_is_never_loaded_without_allow_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    payload = tmp_path / "evil.pkl"
    import pickle

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (str(marker),))  # type: ignore[return-value]

    payload.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(SignatureUnavailable, match="unpickling runs code"):
        infer_signature("sklearn", payload, allow_code=False)
    assert not marker.exists()


def test_skops_files_of_trusted_types_are_read_without_allow_code(tmp_path: Path) -> None:
    path = builders.sklearn_regressor_skops(tmp_path / "reg.skops")
    inferred = infer_signature("sklearn", path, allow_code=False)
    assert inferred.signature == Signature(inputs=[spec("input", "float64", [-1, 4])],
                                           outputs=[spec("predictions", "float64", [-1])])
    assert inferred.metadata["serialization"] == "skops"


def test_xgboost_reads_features_and_classes_from_the_model_file(tmp_path: Path) -> None:
    binary = infer_signature("xgboost", builders.xgboost_model(tmp_path / "b.json"))
    assert binary.signature == Signature(inputs=[spec("input", "float32", [-1, 4])],
                                         outputs=[spec("predictions", "float32", [-1])])
    assert binary.metadata["objective"] == "binary:logistic"
    multi = infer_signature("xgboost", builders.xgboost_model(tmp_path / "m.ubj", classes=3))
    assert multi.signature is not None
    assert multi.signature.outputs == [spec("predictions", "float32", [-1, 3])]
    assert multi.metadata["num_class"] == 3


def test_lightgbm_reads_its_text_header_without_the_library(tmp_path: Path) -> None:
    inferred = infer_signature("lightgbm", builders.lightgbm_model(tmp_path / "b.txt"))
    assert inferred.signature == Signature(inputs=[spec("input", "float64", [-1, 4])],
                                           outputs=[spec("predictions", "float64", [-1])])
    assert inferred.metadata["objective"] == "binary"
    assert inferred.metadata["feature_names"] == ["Column_0", "Column_1", "Column_2",
                                                  "Column_3"]


def test_torchscript_needs_an_example_input_for_its_signature(tmp_path: Path) -> None:
    path = builders.torchscript_model(tmp_path / "m.pt")
    with pytest.raises(SignatureUnavailable, match="example input"):
        infer_signature("pytorch", path, allow_code=True)
    example = np.zeros((5, 4), dtype=np.float32)
    inferred = infer_signature("pytorch", path, example_input=example, allow_code=True)
    assert inferred.signature == Signature(inputs=[spec("features", "float32", [-1, 4])],
                                           outputs=[spec("output", "float32", [-1, 3])])
    assert inferred.metadata["format"] == "torchscript"


def test_torch_export_programs_carry_their_own_signature(tmp_path: Path) -> None:
    inferred = infer_signature("pytorch", builders.exported_torch_model(tmp_path / "m.pt2"),
                               allow_code=True)
    assert inferred.signature == Signature(inputs=[spec("features", "float32", [-1, 4])],
                                           outputs=[spec("output", "float32", [-1, 3])])


def test_torch_files_are_not_loaded_without_allow_code(tmp_path: Path) -> None:
    with pytest.raises(SignatureUnavailable, match="runs code"):
        infer_signature("pytorch", tmp_path / "m.pt", allow_code=False)


def test_a_state_dict_is_refused_as_a_pytorch_model(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, str(path))
    with pytest.raises(InvalidSpec, match="a state_dict cannot be served"):
        infer_signature("pytorch", path, allow_code=True)


def test_the_python_flavor_has_no_automatic_signature(tmp_path: Path) -> None:
    with pytest.raises(SignatureUnavailable, match="--signature"):
        infer_signature("python", tmp_path)


# -- prepare_model: the tree and its manifest ---------------------------------------------


def test_a_single_file_becomes_a_directory_with_its_manifest(tmp_path: Path) -> None:
    prepared = prepare_model(builders.onnx_model(tmp_path / "fraud.onnx"))
    assert prepared.manifest.flavor == "onnx"
    assert prepared.manifest.path == "fraud.onnx"
    assert [file.path for file in prepared.files] == ["fraud.onnx"]
    written = json.loads(prepared.manifest_bytes())
    assert written["format"] == 1 and written["signature"]["inputs"][0]["name"] == "x"
    assert ModelManifest.model_validate(written) == prepared.manifest


def test_a_directory_keeps_its_layout_and_the_manifest_names_the_model(tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    (root / "weights").mkdir(parents=True)
    builders.onnx_model(root / "weights" / "model.onnx")
    (root / "labels.txt").write_text("cat\ndog\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "x.pyc").write_bytes(b"")
    prepared = prepare_model(root)
    assert prepared.manifest.path == "weights/model.onnx"
    assert [file.path for file in prepared.files] == ["labels.txt", "weights/model.onnx"]


def test_a_directory_with_a_manifest_keeps_it_and_flags_override(tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    root.mkdir()
    builders.onnx_model(root / "a.onnx")
    builders.onnx_model(root / "b.onnx")
    given = Signature(inputs=[spec("features", "float32", [-1, 4])])
    write_manifest(root, ModelManifest(flavor="onnx", path="b.onnx", signature=given,
                                       metadata={"team": "risk"}))
    prepared = prepare_model(root, metadata={"run": "7"})
    assert prepared.manifest.path == "b.onnx"
    assert prepared.manifest.signature == given  # not re-inferred
    assert prepared.manifest.metadata == {"team": "risk", "run": "7"}
    assert MANIFEST_FILE not in [file.path for file in prepared.files]  # sent fresh instead
    assert read_manifest(root).path == "b.onnx"


def test_two_model_files_without_a_manifest_are_ambiguous(tmp_path: Path) -> None:
    builders.onnx_model(tmp_path / "a.onnx")
    builders.onnx_model(tmp_path / "b.onnx")
    with pytest.raises(InvalidSpec, match=r"several onnx model files \(a.onnx, b.onnx\)"):
        prepare_model(tmp_path)


def test_a_link_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    root.mkdir()
    builders.onnx_model(root / "model.onnx")
    secret = tmp_path / "token"
    secret.write_text("s3cr3t")
    (root / "token").symlink_to(secret)
    with pytest.raises(InvalidSpec, match="outside"):
        prepare_model(root)


def test_the_python_flavor_needs_an_importable_class(tmp_path: Path) -> None:
    root = builders.python_model(tmp_path / "pkg")
    with pytest.raises(InvalidSpec, match="needs python_class"):
        prepare_model(root, "python")
    with pytest.raises(InvalidSpec, match=r"no missing\.py") as caught:
        prepare_model(root, "python", python_class="missing:Model")
    assert caught.value.fields == {"python_class": "missing.py not found"}
    with pytest.raises(InvalidSpec, match="module:Class"):
        prepare_model(root, "python", python_class="predictor.Model")
    prepared = prepare_model(root, "python", python_class="predictor:Model",
                             signature={"inputs": [{"name": "x", "dtype": "float64"}]})
    assert prepared.manifest.path == "."
    assert prepared.manifest.python_class == "predictor:Model"
    assert prepared.manifest.signature is not None


def test_python_class_on_another_flavor_is_refused(tmp_path: Path) -> None:
    model = builders.onnx_model(tmp_path / "m.onnx")
    with pytest.raises(InvalidSpec, match="only for the python flavor"):
        prepare_model(model, python_class="x:Y")


def test_when_no_signature_can_be_inferred_a_note_says_why(tmp_path: Path) -> None:
    prepared = prepare_model(builders.torchscript_model(tmp_path / "m.pt"))
    assert prepared.manifest.signature is None
    assert any("example input" in note for note in prepared.notes)


def test_a_signature_given_as_json_is_checked(tmp_path: Path) -> None:
    good = signature_from_json('{"inputs": [{"name": "x", "dtype": "float32", "shape": [-1]}]}')
    assert good.inputs[0].shape == [-1]
    with pytest.raises(InvalidSpec) as caught:
        signature_from_json('{"inputs": [{"name": "x", "dtype": "float128"}]}')
    assert "signature.inputs.0.dtype" in caught.value.fields
    with pytest.raises(InvalidSpec, match="not JSON"):
        signature_from_json("{inputs")
