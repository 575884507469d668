"""Inputs as the optimizer sees them: named numpy arrays checked against the model's inputs.

Users hand over example inputs, calibration data and validation data in whatever shape is
natural to them (one array, a tuple, a dict, torch tensors). Everything is turned into
``Feeds`` (an ordered ``{input name: array}``) once, here, and checked against the model's
``InputSpec`` list so a wrong shape fails before any export or calibration starts, with an
error naming the argument (``calib_data``) and the shape that was expected.

    specs = [InputSpec("x", np.dtype("float32"), (None, 1, 8, 8))]
    feeds = to_feeds(calib_data, specs, field="calib_data")     # checked, cast, named
    first_32 = take(feeds, 0, 32)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aip.optimize.errors import invalid

Feeds = dict[str, np.ndarray]

LABEL_KEYS = ("labels", "label", "y")


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name, numpy dtype and shape, ``None`` where an axis is dynamic."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]

    def describe(self) -> str:
        dims = ", ".join("N" if index == 0 else ("?" if dim is None else str(dim))
                         for index, dim in enumerate(self.shape))
        return f"{self.name}: {self.dtype.name}[{dims}]"


def to_feeds(value: Any, specs: Sequence[InputSpec], *, field: str) -> Feeds:
    """Name, cast and check ``value`` (an array, a sequence or a mapping of arrays) against
    ``specs``. Every array must have the same number of rows (axis 0 is the batch)."""
    arrays = _named_arrays(value, specs, field)
    feeds: Feeds = {}
    for spec in specs:
        feeds[spec.name] = _checked(arrays[spec.name], spec, field)
    counts = {name: array.shape[0] for name, array in feeds.items()}
    if len(set(counts.values())) > 1:
        raise invalid(field, f"inputs have different numbers of rows {counts}",
                      "give every input the same batch size (axis 0)")
    if not feeds or next(iter(counts.values())) == 0:
        raise invalid(field, "no rows", "give at least one row of data")
    return feeds


def split_labeled(value: Any, specs: Sequence[InputSpec], *,
                  field: str = "val_data") -> tuple[Feeds, np.ndarray | None]:
    """``(inputs, labels)`` or a mapping with a ``labels`` key -> checked feeds and labels.
    A bare array, or a tuple of arrays, is taken as inputs without labels."""
    labels: Any = None
    inputs: Any = value
    if isinstance(value, Mapping):
        label_key = next((key for key in LABEL_KEYS if key in value), None)
        if label_key is not None:
            labels = value[label_key]
            inputs = {key: array for key, array in value.items() if key != label_key}
    elif isinstance(value, tuple) and len(value) == 2 and not _looks_like_inputs(value, specs):
        inputs, labels = value
    feeds = to_feeds(inputs, specs, field=field)
    if labels is None:
        return feeds, None
    label_array = np.asarray(as_numpy(labels))
    if label_array.shape[:1] != (rows(feeds),):
        raise invalid(field, f"{rows(feeds)} rows of inputs but labels of shape "
                      f"{label_array.shape}", "give one label per row")
    return feeds, label_array


def as_numpy(value: Any) -> Any:
    """A torch tensor (without importing torch) or array-like as a numpy array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def rows(feeds: Mapping[str, np.ndarray]) -> int:
    return int(next(iter(feeds.values())).shape[0])


def take(feeds: Mapping[str, np.ndarray], start: int, stop: int) -> Feeds:
    return {name: array[start:stop] for name, array in feeds.items()}


def batches(feeds: Mapping[str, np.ndarray], size: int) -> Iterator[Feeds]:
    """Consecutive slices of at most ``size`` rows."""
    total = rows(feeds)
    for start in range(0, total, size):
        yield take(feeds, start, min(start + size, total))


def tile(feeds: Mapping[str, np.ndarray], batch: int) -> Feeds:
    """Exactly ``batch`` rows, repeating the given rows as often as needed, so timings at
    batch 1 and 32 can be taken from a single example."""
    count = rows(feeds)
    index = np.arange(batch) % count
    return {name: np.ascontiguousarray(array[index]) for name, array in feeds.items()}


def concat(parts: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
    """Join per-batch output lists (one list per batch) along the batch axis."""
    return [np.concatenate([part[index] for part in parts]) for index in range(len(parts[0]))]


def expected_shapes(specs: Sequence[InputSpec]) -> str:
    return ", ".join(spec.describe() for spec in specs)


# -- helpers --------------------------------------------------------------------------------


def _named_arrays(value: Any, specs: Sequence[InputSpec], field: str) -> dict[str, Any]:
    names = [spec.name for spec in specs]
    if isinstance(value, Mapping):
        named = dict(value)
        if set(named) != set(names):
            if len(named) == len(names) and all(key.startswith("arr_") for key in named):
                return dict(zip(names, (named[f"arr_{i}"] for i in range(len(names))),
                                strict=True))  # np.savez without names: by position
            raise invalid(field, f"got inputs {sorted(named)}",
                          f"expected {expected_shapes(specs)}")
        return named
    items = list(value) if isinstance(value, list | tuple) else [value]
    if len(items) != len(names):
        raise invalid(field, f"got {len(items)} arrays for {len(names)} model inputs",
                      f"expected {expected_shapes(specs)}")
    return dict(zip(names, items, strict=True))


def _checked(value: Any, spec: InputSpec, field: str) -> np.ndarray:
    array = np.asarray(as_numpy(value))
    if array.ndim != len(spec.shape) or any(
            want is not None and index > 0 and want != got
            for index, (want, got) in enumerate(zip(spec.shape, array.shape, strict=False))):
        raise invalid(field, f"input {spec.name!r} has shape {tuple(array.shape)}",
                      f"expected {spec.describe()} (N: any number of rows)")
    if array.dtype == spec.dtype:
        return np.ascontiguousarray(array)
    same_kind = (np.issubdtype(array.dtype, np.floating) and np.issubdtype(spec.dtype, np.floating)
                 ) or (np.issubdtype(array.dtype, np.integer)
                       and np.issubdtype(spec.dtype, np.integer)) or array.dtype == np.bool_
    if not same_kind:
        raise invalid(field, f"input {spec.name!r} has dtype {array.dtype.name}",
                      f"expected {spec.describe()}")
    return np.ascontiguousarray(array.astype(spec.dtype))


def _looks_like_inputs(value: tuple[Any, ...], specs: Sequence[InputSpec]) -> bool:
    """A 2-tuple is (inputs, labels) unless the model has two inputs and both items are
    arrays whose ranks match those inputs."""
    if len(specs) != 2:
        return False
    try:
        ranks = [np.ndim(as_numpy(item)) for item in value]
    except (TypeError, ValueError):
        return False
    return ranks == [len(spec.shape) for spec in specs]
