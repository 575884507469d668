"""Multi-worker TensorFlow: MultiWorkerMirroredStrategy from TF_CONFIG, a tiny Keras model
trained for 2 epochs on synthetic data by a custom loop (Keras 3's ``fit`` does not take a
MultiWorkerMirroredStrategy), on CPU with collectives over gRPC.

AIP sets TF_CONFIG (framework: tensorflow, roles worker or chief + worker); by hand:

    TF_CONFIG='{"cluster":{"worker":["127.0.0.1:12345","127.0.0.1:12346"]},
                "task":{"type":"worker","index":0}}' python tf_mwms.py   # and index 1

Each task writes ``$AIP_OUTPUT_DIR/done-{task index}`` (the chief ``done-chief-0``) with its
final loss.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before tensorflow is imported

import numpy as np
import tensorflow as tf

EPOCHS = 2
STEPS_PER_EPOCH = 8
BATCH_PER_WORKER = 16


def main() -> None:
    task = json.loads(os.environ["TF_CONFIG"])["task"]
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    global_batch = BATCH_PER_WORKER * strategy.num_replicas_in_sync
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.Input(shape=(4,)), tf.keras.layers.Dense(1)])
        optimizer = tf.keras.optimizers.SGD(0.05)

    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(256, 4)).astype("float32")
    targets = inputs @ np.array([[1.0], [-2.0], [3.0], [0.5]], dtype="float32")
    dataset = tf.data.Dataset.from_tensor_slices((inputs, targets)).repeat().batch(global_batch)
    batches = iter(strategy.experimental_distribute_dataset(dataset))  # sharded per worker

    def replica_step(features: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            errors = tf.square(model(features, training=True) - labels)
            loss = tf.nn.compute_average_loss(errors, global_batch_size=global_batch)
        gradients = tape.gradient(loss, model.trainable_variables)  # all-reduced by the strategy
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    @tf.function
    def train_step() -> tf.Tensor:
        losses = strategy.run(replica_step, args=next(batches))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    for epoch in range(EPOCHS):
        loss = float(np.mean([float(train_step()) for _ in range(STEPS_PER_EPOCH)]))
        print(f"{task['type']} {task['index']}: epoch {epoch} loss {loss:.4f}", flush=True)

    name = f"done-{task['index']}" if task["type"] == "worker" else \
        f"done-{task['type']}-{task['index']}"
    output = Path(os.environ.get("AIP_OUTPUT_DIR", "."))
    output.mkdir(parents=True, exist_ok=True)
    (output / name).write_text(f"{loss}\n", encoding="utf-8")


if __name__ == "__main__":
    main()
