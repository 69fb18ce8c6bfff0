"""The built-in step kinds, for pipelines written in Python.

They mix freely with ``@step`` functions in one :class:`~lockgate.Pipeline`::

    from lockgate import Pipeline, step
    from lockgate.kinds import api, approval, shell

    release = Pipeline(
        "release",
        [
            shell("build", argv=["make", "image", "TAG=${version}"]),
            approval("sign-off", message="Ship ${version}?", approvers={"roles": ["approver"]}),
            api(
                "deploy",
                method="POST",
                url="https://deploy.example.com/releases",
                body={"version": "${version}"},
                rollback=api("undo", method="DELETE", url="https://deploy.example.com/releases/${version}"),
            ),
            announce,  # an @step function
        ],
        params=ReleaseParams,
    )

Each function takes the fields a pipeline file takes for that kind (docs/step-kinds.md), plus
the fields every step has (``description``, ``timeout``, ``retry``, ``on_error``,
``idempotent``, ``rollback``), and makes the same step with the same checks: a field of the
wrong type or a bad placeholder is a :class:`DefinitionError` when the step is made, and a
placeholder naming an unknown param or a later step is one when the pipeline is made. The
stored definition is the same as the file's, so a pipeline moves between YAML and Python
without changing what it records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lockgate.core.step import Step
from lockgate.errors import DefinitionError
from lockgate.specs.document import Problem
from lockgate.specs.loader import Collector, Loc, build_step


class _InPython(Collector):
    """Problems of a step made in Python: named by the step and field, no file position."""

    def __init__(self) -> None:
        super().__init__("<python>", None)

    def add(self, loc: Loc, message: str, *, at_key: bool = False) -> None:
        where = ".".join(str(p) for p in loc)
        self.problems.append(Problem("<python>", 0, 0, f"{where}: {message}" if where else message))


def _raw(value: Any) -> Any:
    """A field as a pipeline file would hold it (a rollback made with these functions is
    its file form again)."""
    if isinstance(value, Step):
        config = dict(value.config)
        if "kind" not in config:
            raise DefinitionError(
                f"rollback {value.name!r}: only a step of a built-in kind can be a rollback "
                "here (give an @step function its own rollback= instead)"
            )
        raw = {"name": value.name.rpartition(".")[2], **config}
        return {k: v for k, v in raw.items() if v not in (None, "") or k == "name"}
    if isinstance(value, Mapping):
        return {k: _raw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_raw(v) for v in value]
    return value


def kind_step(kind: str, name: str, /, **fields: Any) -> Step:
    """A step of built-in kind ``kind`` named ``name``, configured by ``fields`` (the keys of
    the pipeline file; ``when`` is a file's ``if``). Refused with every problem listed."""
    if "when" in fields:
        fields["if"] = fields.pop("when")
    raw = {"name": name, "kind": kind, **{k: _raw(v) for k, v in fields.items() if v is not None}}
    problems = _InPython()
    made = build_step(raw, (), [], [], problems, lambda _: True, deferred=True)
    if problems.problems or made is None:
        listed = "; ".join(p.message for p in problems.problems) or "cannot be made"
        raise DefinitionError(f"step {name!r}: {listed}")
    return made


def shell(name: str, /, *, argv: list[str], **fields: Any) -> Step:
    """A ``shell`` step: runs ``argv`` (no shell string), captures stdout and stderr."""
    return kind_step("shell", name, argv=argv, **fields)


def api(name: str, /, *, method: str = "GET", url: str, **fields: Any) -> Step:
    """An ``api`` step: one HTTP request, its answer checked and captured."""
    return kind_step("api", name, method=method, url=url, **fields)


def approval(name: str, /, *, message: str = "", **fields: Any) -> Step:
    """An ``approval`` step: the run waits (holding no worker) for people's decisions."""
    return kind_step("approval", name, message=message, **fields)


def sleep(name: str, /, **fields: Any) -> Step:
    """A ``sleep`` step: a durable wait (``seconds`` or ``until``) that holds no worker."""
    return kind_step("sleep", name, **fields)


__all__ = ["api", "approval", "kind_step", "shell", "sleep"]
