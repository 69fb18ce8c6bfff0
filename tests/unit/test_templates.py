"""``${...}`` placeholders: substitution only, checked when a file is loaded."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from lockgate.core.templates import TemplateError, check, render

SCOPE: dict[str, Any] = {
    "env": "prod",
    "replicas": 3,
    "tags": ["a", "b"],
    "steps": {"build": {"image": "app:1.2", "layers": [1, 2]}},
    "run": {"id": "r1", "requested_by": "alice", "pipeline": "deploy"},
    "secrets": {"TOKEN": "s3cr3t"},
}


def problems(value: Any) -> list[str]:
    return check(
        value,
        params=["env", "replicas", "tags"],
        earlier_steps=["build"],
        secrets=lambda name: name == "TOKEN",
    )


def test_a_lone_placeholder_keeps_its_type() -> None:
    """``${replicas}`` alone is the int 3; inside text it becomes '3'."""
    assert render("${replicas}", SCOPE) == 3
    assert render("${tags}", SCOPE) == ["a", "b"]
    assert render("n=${replicas}", SCOPE) == "n=3"
    assert render("t=${tags}", SCOPE) == 't=["a","b"]'


def test_every_source_resolves_recursively_through_structures() -> None:
    """Params, step outputs, run fields and secrets, inside lists and maps."""
    value = {
        "args": ["deploy", "${steps.build.image}", "--env=${env}"],
        "meta": {"by": "${run.requested_by}", "id": "${run.id}", "auth": "Bearer ${secrets.TOKEN}"},
        "first_layer": "${steps.build.layers.0}",
    }
    assert render(value, SCOPE) == {
        "args": ["deploy", "app:1.2", "--env=prod"],
        "meta": {"by": "alice", "id": "r1", "auth": "Bearer s3cr3t"},
        "first_layer": 1,
    }


def test_double_dollar_escapes() -> None:
    """``$${x}`` is the literal text ``${x}``."""
    assert render("cost: $${env} and ${env}", SCOPE) == "cost: ${env} and prod"


@pytest.mark.parametrize(
    "attempt",
    ["{0.__class__}", "{{7*7}}", "%(env)s", "`id`", "$(id)", "${secrets.TOKEN}"],
)
def test_substituted_values_are_never_evaluated_or_expanded_again(attempt: str) -> None:
    """A param's value comes out literally, even if it looks like a template of any kind."""
    scope = {**SCOPE, "env": attempt}
    assert render("x ${env} y", scope) == f"x {attempt} y"
    assert render("${env}", scope) == attempt


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${__import__('os')}", "bad placeholder"),
        ("${env + 1}", "bad placeholder"),
        ("${}", "bad placeholder"),
        ("${{env}}", "bad placeholder ${{env}"),
        ("cost ${env", "unclosed placeholder"),
        ("${nope}", "no param is called 'nope'"),
        ("${steps.deploy.url}", "no earlier step is called 'deploy'"),
        ("${steps}", "name a step"),
        ("${run.secret}", "run has id, requested_by, pipeline"),
        ("${secrets.MISSING}", "no secret is called 'MISSING'"),
    ],
)
def test_bad_placeholders_are_refused_at_load_time(text: str, message: str) -> None:
    """Malformed placeholders and unknown names are reported, each with its text."""
    found = problems({"k": [text]})
    assert len(found) == 1 and message in found[0]


def test_all_problems_are_listed() -> None:
    """Every bad placeholder in a value is reported, not just the first."""
    assert len(problems(["${a}", "${b}", "${env}", {"x": "${c}"}])) == 3


def test_a_missing_value_at_run_time_is_a_clear_error() -> None:
    """A field an earlier step did not produce is named."""
    with pytest.raises(TemplateError, match=r"steps\.build\.digest is not set"):
        render("${steps.build.digest}", SCOPE)


def test_values_can_be_encoded_for_where_they_land() -> None:
    """An encoder (here URL quoting) applies to values inside longer strings."""
    scope = {**SCOPE, "env": "a b/c?d"}
    url = render("https://x/api/${env}?q=${env}", scope, encode=lambda v: quote(str(v), safe=""))
    assert url == "https://x/api/a%20b%2Fc%3Fd?q=a%20b%2Fc%3Fd"
