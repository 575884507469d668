"""Train a small classifier on scikit-learn's iris data (shipped with scikit-learn: nothing
is downloaded), log its parameters and metrics, and log the model as an artifact, ready for
`aip model register iris --from-job JOB --artifact model.skops`.

    aip run --name train-iris --follow -- python examples/serving/train_iris.py

Env: C (inverse regularization, default 1.0), MAX_ITER (default 200).
"""

from __future__ import annotations

import os
from pathlib import Path

import aip


def main() -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from skops.io import dump

    c, max_iter = float(os.environ.get("C", "1.0")), int(os.environ.get("MAX_ITER", "200"))
    aip.log_params(C=c, max_iter=max_iter)
    features, labels = load_iris(return_X_y=True)
    train_x, test_x, train_y, test_y = train_test_split(features, labels, test_size=0.3,
                                                        random_state=0, stratify=labels)
    model = LogisticRegression(C=c, max_iter=max_iter).fit(train_x, train_y)
    accuracy = float(model.score(test_x, test_y))
    aip.log_metrics(step=1, accuracy=accuracy)
    path = Path(os.environ.get("AIP_OUTPUT_DIR", ".")) / "model.skops"
    dump(model, path)
    aip.log_artifact(str(path))
    aip.flush()
    print(f"accuracy {accuracy:.3f}; model logged as {path.name}")


if __name__ == "__main__":
    main()
