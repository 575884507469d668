"""docs/distributed.md stays true: every example block is the file in examples/distributed/
that the integration tests run, and every YAML block is a valid spec or config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from aip.control.platform import PlatformConfig
from aip.errors import InvalidSpec
from aip.spec import EnvironmentSpec, JobSpec, load_yaml

ROOT = Path(__file__).parents[3]
DOC = (ROOT / "docs" / "distributed.md").read_text()
EXAMPLES = ROOT / "examples" / "distributed"
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC, re.DOTALL)


def example_files() -> dict[str, str]:
    return {path.read_text().splitlines()[0]: path.read_text()
            for path in sorted(EXAMPLES.glob("*.yaml"))}


@pytest.mark.parametrize("text", [b for b in BLOCKS if b.startswith("# example:")],
                         ids=lambda t: t.splitlines()[0][len("# example: "):])
def test_each_documented_example_is_the_file_the_tests_run(text: str) -> None:
    files = example_files()
    assert text.splitlines()[0] in files, "add it to examples/distributed/"
    assert files[text.splitlines()[0]] == text
    spec = load_yaml(text, JobSpec)
    for group in spec.replicas.values():
        assert (ROOT / group.command[1]).is_file(), group.command


def test_every_example_file_is_documented() -> None:
    documented = {b.splitlines()[0] for b in BLOCKS}
    assert set(example_files()) <= documented


def test_every_framework_has_an_example() -> None:
    frameworks = {load_yaml(text, JobSpec).framework for text in example_files().values()}
    assert frameworks >= {"pytorch", "tensorflow", "jax", "mindspore", "mxnet", "mpi"}


def test_every_yaml_block_is_a_spec_or_a_config() -> None:
    for text in BLOCKS:
        if text.startswith("environment:"):  # a fragment: the field alone
            EnvironmentSpec.model_validate(yaml.safe_load(text)["environment"])
            continue
        errors = []
        for model in (JobSpec, PlatformConfig):
            try:
                load_yaml(text, model)
                break
            except InvalidSpec as exc:
                errors.append(str(exc))
        else:
            raise AssertionError(f"not a valid job or config:\n{text}\n{errors}")
