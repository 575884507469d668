"""Model URIs: the three forms, the short CLI forms, and errors that show the right form."""

from __future__ import annotations

import pytest

from aip.errors import InvalidSpec
from aip.registry.uris import ModelRef, check_alias, check_model_name, parse_model_uri


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("models:/fraud@production", ModelRef("fraud", alias="production"),
                 id="an-alias"),
    pytest.param("models:/fraud/3", ModelRef("fraud", version=3), id="a-version-number"),
    pytest.param("models:/fraud", ModelRef("fraud"), id="no-version-means-the-newest"),
    pytest.param("models:/fraud/latest", ModelRef("fraud"), id="latest-is-the-newest-too"),
    pytest.param("  models:/fraud.v2_x-1/12  ", ModelRef("fraud.v2_x-1", version=12),
                 id="surrounding-spaces-and-name-punctuation"),
])
def test_the_three_forms_parse(text: str, expected: ModelRef) -> None:
    assert parse_model_uri(text) == expected


@pytest.mark.parametrize("ref", [ModelRef("m", alias="staging"), ModelRef("m", version=7),
                                 ModelRef("m")])
def test_a_reference_prints_as_the_uri_that_parses_back(ref: ModelRef) -> None:
    assert parse_model_uri(str(ref)) == ref


def test_the_cli_may_leave_the_scheme_out() -> None:
    assert parse_model_uri("fraud@production", scheme_required=False) == ModelRef(
        "fraud", alias="production")
    assert parse_model_uri("fraud/2", scheme_required=False) == ModelRef("fraud", version=2)
    with pytest.raises(InvalidSpec, match="must start with 'models:/'"):
        parse_model_uri("fraud/2")


@pytest.mark.parametrize(("text", "problem"), [
    pytest.param("model:/fraud", "must start with 'models:/'", id="scheme-misspelt"),
    pytest.param("models:fraud", "must start with 'models:/'", id="slash-missing"),
    pytest.param("models:/Fraud/1", "model name 'Fraud'", id="upper-case-name"),
    pytest.param("models:/fraud/0", "version '0' must be a number >= 1", id="version-zero"),
    pytest.param("models:/fraud/v3", "version 'v3'", id="version-not-a-number"),
    pytest.param("models:/fraud/3/x", "version '3/x'", id="trailing-path"),
    pytest.param("models:/fraud@", "alias ''", id="empty-alias"),
    pytest.param("models:/fraud@latest", "reserved", id="latest-is-no-alias"),
    pytest.param("models:/fraud@3", "reserved", id="numbers-are-no-alias"),
    pytest.param("models:/", "model name ''", id="no-name"),
])
def test_bad_uris_say_what_is_wrong_and_show_the_forms(text: str, problem: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_model_uri(text, field="uri")
    assert problem in caught.value.message
    assert "models:/NAME@ALIAS" in caught.value.message
    assert list(caught.value.fields) == ["uri"]


def test_names_follow_the_job_rules_and_resolve_is_reserved() -> None:
    assert check_model_name("iris-v2") == "iris-v2"
    with pytest.raises(InvalidSpec, match="lower-case"):
        check_model_name("../etc")
    with pytest.raises(InvalidSpec, match="reserved"):
        check_model_name("resolve")


def test_aliases_follow_the_name_rules() -> None:
    assert check_alias("production") == "production"
    for bad in ("Prod", "a/b", "latest", "12", ""):
        with pytest.raises(InvalidSpec):
            check_alias(bad)
