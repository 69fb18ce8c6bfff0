"""Command-line options made from a trigger kind's spec (:mod:`lockgate.triggers.spec`).

``create`` takes the spec's :attr:`~Spec.arguments` as arguments and every other field as an
option; ``update`` takes the id and every field that may change. Each option is named by
the spec (``--every`` for ``interval_seconds``) or after its field (``--dead-letter``), with
the field's description as its help. A list is a repeatable option; ``params`` is
``-p key=value`` (repeatable) over ``--params-file``; a mapping of globs (``match``) is
``--match path=glob``; a secret is read from the environment variable ``--secret-env``
names, never from the command line. What is wrong with the values is said by the spec's own
checks, naming the options.
"""

from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic.fields import FieldInfo

from lockgate.cli.context import parse_params
from lockgate.cli.output import Output
from lockgate.errors import ParamsError
from lockgate.triggers.spec import Spec

#: What a generated command does with the values given: ``(ctx, values, output)``.
Run = Callable[[typer.Context, dict[str, Any], Output], None]


def flag(spec: type[Spec], name: str) -> str:
    """The option that sets field ``name``."""
    return spec.flags.get(name, "--" + name.replace("_", "-"))


def _secret(info: FieldInfo) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, dict) and extra.get("format") == "password"


def _shape(name: str, info: FieldInfo) -> str:
    """How a field reads on the command line: text, number, integer, list, globs (any
    mapping but the run's params), params."""
    base = info.annotation
    if typing.get_origin(base) in (typing.Union, types.UnionType):  # X | None: X
        base = next(a for a in typing.get_args(base) if a is not type(None))
    origin = typing.get_origin(base)
    if origin is list:
        return "list"
    if origin is dict:
        return "params" if name == "params" else "globs"
    if base is int:
        return "integer"
    if base is float:
        return "number"
    return "text"


_TYPES: dict[str, Any] = {
    "text": str | None,
    "number": float | None,
    "integer": int | None,
    "list": list[str] | None,
    "globs": list[str] | None,
}


def _help(name: str, info: FieldInfo, creating: bool) -> str:
    if _shape(name, info) == "globs":
        return "path=glob a value must match, e.g. headers.env=prod (repeatable)."
    text = info.description or info.title or ""
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    choices = extra.get("enum") or [
        a for a in typing.get_args(info.annotation) if isinstance(a, str)
    ]
    if isinstance(choices, list) and not all(str(c) in text for c in choices):
        text += f" ({', '.join(str(c) for c in choices)})"
    default = None if info.is_required() else info.get_default(call_default_factory=True)
    if creating and default not in (None, "", [], {}):
        shown = (
            ", ".join(default)
            if isinstance(default, list)
            else f"{default:g}"
            if isinstance(default, float)
            else default
        )
        text += f" (default: {shown})"
    return text + (" (repeatable)" if _shape(name, info) in ("list", "globs") else "")


def _parameters(spec: type[Spec], fields: Mapping[str, FieldInfo], creating: bool) -> list[Any]:
    params = []
    for name, info in fields.items():
        shape, help_ = _shape(name, info), _help(name, info, creating)
        if creating and name in spec.arguments:
            option: Any = Annotated[str, typer.Argument(help=help_)]
            params.append(
                inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=option)
            )
            continue
        if shape == "params":
            params += [
                _option(
                    "param",
                    list[str] | None,
                    "--param",
                    "-p",
                    help="key=value for the run; "
                    "values may use placeholders, e.g. ${event.commit} (repeatable).",
                ),
                _option(
                    "params_file",
                    Path | None,
                    "--params-file",
                    help="A JSON file of params (-p values win over it).",
                ),
            ]
        elif _secret(info):
            params.append(
                _option(
                    f"{name}_env",
                    str | None,
                    f"--{name}-env",
                    help=(
                        f"Read the {name} from this environment variable (not from the command "
                        "line, where other users can see it)."
                    ),
                )
            )
        else:
            params.append(_option(name, _TYPES[shape], flag(spec, name), help=help_))
    return params


def _option(name: str, kind: Any, *flags: str, help: str, default: Any = None) -> inspect.Parameter:
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=default,
        annotation=Annotated[kind, typer.Option(*flags, help=help)],
    )


def _globs(pairs: list[str], option: str) -> dict[str, list[str]]:
    """``path=glob`` pairs (repeatable per path) as a mapping of globs."""
    found: dict[str, list[str]] = {}
    problems = []
    for pair in pairs:
        path, sep, glob = pair.partition("=")
        if not sep or not path or not glob:
            problems.append(f"{option} {pair!r}: path=glob, e.g. headers.env=prod")
            continue
        found.setdefault(path, []).append(glob)
    if problems:
        raise ParamsError(problems)
    return found


def _values(
    spec: type[Spec], fields: Mapping[str, FieldInfo], given: dict[str, Any]
) -> dict[str, Any]:
    """The spec's fields from the command line's values (those not given left out)."""
    values: dict[str, Any] = {}
    for name, info in fields.items():
        shape = _shape(name, info)
        if shape == "params":
            pairs, file = given.pop("param", None), given.pop("params_file", None)
            if pairs or file:
                values[name] = parse_params(pairs or [], file)
        elif _secret(info):
            variable = given.pop(f"{name}_env", None)
            if variable:
                secret = os.environ.get(variable)
                if not secret:
                    raise ParamsError([f"--{name}-env: environment variable {variable} is not set"])
                values[name] = secret
        elif given.get(name) is not None:
            raw = given.pop(name)
            values[name] = _globs(raw, flag(spec, name)) if shape == "globs" else raw
    return values


def _named(spec: type[Spec], problems: list[str]) -> list[str]:
    """Problems with a field's name at their start say the option instead."""
    named = []
    for problem in problems:
        field, sep, rest = problem.partition(":")
        known = field in spec.model_fields and field not in spec.arguments
        named.append(f"{flag(spec, field)}:{rest}" if sep and known else problem)
    return named


def command(spec: type[Spec], creating: bool, run: Run, doc: str) -> Callable[..., None]:
    """A Typer command that reads the spec's fields (for ``creating``, or for a change of
    the row named by its first argument) and hands them to ``run``."""
    fields = {
        name: info for name, info in spec.model_fields.items() if creating or name not in spec.fixed
    }
    if creating:  # the arguments first, in their order
        order = [*spec.arguments, *(n for n in fields if n not in spec.arguments)]
        fields = {n: fields[n] for n in order}

    def body(ctx: typer.Context, **given: Any) -> None:
        output = given.pop("output")
        row = None if creating else given.pop("row_id")
        values = _values(spec, fields, given)
        if row is not None:
            values["row_id"] = row
        try:
            run(ctx, values, output)
        except ParamsError as exc:
            raise ParamsError(_named(spec, exc.problems)) from None

    context = inspect.Parameter(
        "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
    )
    head = [context]
    if not creating:
        head.append(
            inspect.Parameter(
                "row_id",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=Annotated[str, typer.Argument(help="Its id.")],
            )
        )
    tail = [
        _option("output", Output, "--output", "-o", help="table or json.", default=Output.table)
    ]
    parameters = [*head, *_parameters(spec, fields, creating), *tail]
    body.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    body.__annotations__ = {p.name: p.annotation for p in parameters}
    body.__doc__ = doc
    return body
