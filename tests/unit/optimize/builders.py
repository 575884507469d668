"""Tiny models for the optimizer's tests, made in the test so nothing is downloaded.

    path = mlp_onnx(tmp_path / "mlp.onnx")               # ONNX made with onnx.helper: no export
    model = torch_mlp(); x, y = labelled_rows(model, 256)  # a PyTorch classifier and its data
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

FEATURES, HIDDEN, CLASSES = 16, 32, 3
VOCAB, WIDTH = 50, 16


def mlp_onnx(path: Path, *, seed: int = 0) -> Path:
    """A two-layer ReLU classifier with a dynamic batch axis, written as ONNX directly."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    generator = np.random.default_rng(seed)
    weights = {
        "w1": generator.standard_normal((FEATURES, HIDDEN)).astype(np.float32) * 0.5,
        "b1": generator.standard_normal(HIDDEN).astype(np.float32) * 0.1,
        "w2": generator.standard_normal((HIDDEN, CLASSES)).astype(np.float32) * 0.5,
        "b2": generator.standard_normal(CLASSES).astype(np.float32) * 0.1,
    }
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
        helper.make_node("Add", ["h3", "b2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES])],
        [numpy_helper.from_array(value, name) for name, value in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def onnx_rows(path: Path, count: int, *, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Inputs for ``mlp_onnx`` and the classes the model itself predicts for them."""
    import onnxruntime

    x = np.random.default_rng(seed).standard_normal((count, FEATURES)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return x, session.run(None, {"x": x})[0].argmax(axis=1)


def torch_mlp() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(FEATURES, HIDDEN), torch.nn.ReLU(),
                               torch.nn.Linear(HIDDEN, CLASSES)).eval()


def torch_cnn() -> Any:
    """8x8 single-channel images to 10 classes, like scikit-learn's digits."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(16 * 4 * 4, 10)).eval()


def torch_encoder() -> Any:
    """One self-attention block over token ids with a padding mask, mean-pooled."""
    import torch

    class TinyEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(VOCAB, WIDTH)
            self.query = torch.nn.Linear(WIDTH, WIDTH)
            self.key = torch.nn.Linear(WIDTH, WIDTH)
            self.value = torch.nn.Linear(WIDTH, WIDTH)
            self.norm = torch.nn.LayerNorm(WIDTH)
            self.head = torch.nn.Linear(WIDTH, 4)

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.embedding(input_ids)
            scores = self.query(hidden) @ self.key(hidden).transpose(1, 2) / WIDTH ** 0.5
            scores = scores.masked_fill(attention_mask[:, None, :] == 0, -1e4).softmax(-1)
            hidden = self.norm(hidden + scores @ self.value(hidden))
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return self.head((hidden * mask).sum(1) / mask.sum(1))

    torch.manual_seed(0)
    return TinyEncoder().eval()


def tokens(batch: int, length: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and a mask whose last rows are padded."""
    generator = np.random.default_rng(seed)
    ids = generator.integers(1, VOCAB, (batch, length)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[batch // 2:, length // 2:] = 0
    return ids, mask


def labelled_rows(model: Any, shape: tuple[int, ...], *, seed: int = 1
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs and the classes ``model`` predicts for them (accuracy 1.0 at fp32)."""
    import torch

    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    with torch.inference_mode():
        labels = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    return x, labels
