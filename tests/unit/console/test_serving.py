"""The serving pages' pure pieces: the try form's starting request and the router sampler's
series."""

from __future__ import annotations

import json

import pytest

from aip.console.serving import EndpointSampler, Sample, example_request
from aip.spec.model import Signature, TensorSpec


@pytest.mark.parametrize(("inputs", "instances"), [
    pytest.param([TensorSpec(name="x", dtype="float32", shape=[-1, 4])],
                 [[0.0, 0.0, 0.0, 0.0]], id="one-row-of-four-floats"),
    pytest.param([TensorSpec(name="image", dtype="uint8", shape=[-1, 2, -1])],
                 [[[0], [0]]], id="any-size-dimensions-become-one"),
    pytest.param([TensorSpec(name="age", dtype="int64", shape=[-1]),
                  TensorSpec(name="city", dtype="str", shape=[-1]),
                  TensorSpec(name="member", dtype="bool", shape=[-1])],
                 [{"age": 0, "city": "", "member": False}], id="several-inputs-by-name"),
])
def test_the_try_form_starts_from_a_request_that_fits_the_signature(
        inputs: list[TensorSpec], instances: list[object]) -> None:
    body = json.loads(example_request(Signature(inputs=inputs)))
    assert body == {"instances": instances}


def test_without_a_signature_the_try_form_still_offers_json() -> None:
    assert json.loads(example_request(None)) == {"instances": [[0.0]]}


def test_qps_and_latency_are_the_differences_between_samples() -> None:
    sampler = EndpointSampler()
    assert sampler.latest("api") is None and sampler.series("api") == ([], [])
    sampler.record("api", Sample(100.0, requests=10, errors=0, latency_sum=0.05,
                                 latency_count=10))
    sampler.record("api", Sample(102.0, requests=30, errors=1, latency_sum=0.45,
                                 latency_count=30))
    sampler.record("api", Sample(103.0, requests=30, errors=1, latency_sum=0.45,
                                 latency_count=30))
    qps, latency = sampler.series("api")
    assert [value for _, value in qps] == [10.0, 0.0]
    assert [value for _, value in latency] == pytest.approx([20.0])  # 0.4 s over 20
    latest = sampler.latest("api")
    assert latest is not None and latest.requests == 30
    assert latest.mean_latency_ms == pytest.approx(15.0)


def test_a_sampler_keeps_only_its_last_samples() -> None:
    sampler = EndpointSampler(keep=3)
    for second in range(10):
        sampler.record("api", Sample(float(second), second, 0, 0.0, 0))
    qps, _ = sampler.series("api")
    assert len(qps) == 2
