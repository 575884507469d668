"""Arrays the CLI reads from files for the SDK (example inputs, calibration and validation
data): a ``.npy`` file is one array, a ``.npz`` file a dict of arrays. Nothing is unpickled."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_arrays(path: Path | None, flag: str) -> Any:
    """``path`` as an array (``.npy``) or a dict of arrays (``.npz``); ``None`` passes through.
    A file numpy cannot read is an ``InvalidSpec`` naming ``flag``."""
    if path is None:
        return None
    import numpy as np

    from aip.errors import InvalidSpec

    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InvalidSpec(f"{flag}: cannot read {path} as .npy/.npz: {exc}",
                          fields={flag: "not a .npy or .npz file"}) from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        return {key: loaded[key] for key in loaded.files}
