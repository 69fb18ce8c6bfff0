"""``${...}`` placeholders: substitution only, never evaluation.

Grammar: ``${name}`` (a run param), ``${steps.<step>.<field>...}`` (an earlier step's
output), ``${run.id}``, ``${run.requested_by}``, ``${run.pipeline}``, ``${run.workspace}``,
``${secrets.NAME}``;
``$${`` writes a literal ``${``. A value that is exactly one placeholder keeps the type of
what it refers to; inside a longer string the value is written as text (JSON for lists and
objects). Substituted values are never scanned again, so a param holding ``${secrets.X}``
stays that literal text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
RUN_FIELDS = ("id", "requested_by", "pipeline", "workspace")


class TemplateError(ValueError):
    """A placeholder that is malformed or refers to nothing."""


@dataclass(frozen=True)
class Ref:
    """One placeholder: its dotted path split into parts."""

    parts: tuple[str, ...]

    @property
    def text(self) -> str:
        """The placeholder as written, ``${a.b}``."""
        return "${" + ".".join(self.parts) + "}"


def refs(value: str) -> Iterator[Ref]:
    """Every placeholder in ``value``; :class:`TemplateError` for a malformed one."""
    for match in _TOKEN.finditer(value):
        inner = match.group(1)
        if match.group(0) == "$${":
            continue  # escape
        if inner is None:
            raise TemplateError(f"unclosed placeholder in {value!r}: add '}}' or write $${{")
        path = inner.strip()
        if not _PATH.fullmatch(path):
            start = match.start()
            fixed = value[:start] + "$" + value[start:]
            raise TemplateError(
                f"bad placeholder ${{{inner}}}: use ${{param}}, ${{steps.STEP.FIELD}}, "
                "${run.id}, ${run.requested_by}, ${run.pipeline}, ${run.workspace} or "
                "${secrets.NAME}; if it is meant for the shell or the program, escape it as "
                f"$${{...}}: {fixed!r}"
            )
        yield Ref(tuple(path.split(".")))


def check(
    value: Any,
    *,
    params: Sequence[str],
    earlier_steps: Sequence[str],
    secrets: Callable[[str], bool],
    extra: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Problems with the placeholders anywhere in ``value`` (strings in lists and maps).

    ``extra`` adds roots and their fields (``{"hook": ["status"]}`` allows ``${hook.status}``).
    """
    problems: list[str] = []
    for text in _strings(value):
        try:
            found = list(refs(text))
        except TemplateError as exc:
            problems.append(str(exc))
            continue
        for ref in found:
            problem = _check_ref(ref, params, earlier_steps, secrets, extra or {})
            if problem:
                problems.append(problem)
    return problems


def _check_ref(
    ref: Ref,
    params: Sequence[str],
    earlier: Sequence[str],
    secrets: Callable[[str], bool],
    extra: Mapping[str, Sequence[str]],
) -> str | None:
    head, rest = ref.parts[0], ref.parts[1:]
    if head in extra:
        if len(rest) != 1 or rest[0] not in extra[head]:
            return f"{ref.text}: {head} has {', '.join(extra[head])}"
        return None
    if head == "steps":
        if not rest:
            return f"{ref.text}: name a step, as in ${{steps.STEP.FIELD}}"
        if rest[0] not in earlier:
            return f"{ref.text}: no earlier step is called {rest[0]!r}"
        return None
    if head == "run":
        if len(rest) != 1 or rest[0] not in RUN_FIELDS:
            return f"{ref.text}: run has {', '.join(RUN_FIELDS)}"
        return None
    if head == "secrets":
        if len(rest) != 1:
            return f"{ref.text}: use ${{secrets.NAME}}"
        if secrets(rest[0]):
            return None
        return (
            f"{ref.text}: no secret is called {rest[0]!r} here: set LOCKGATE_SECRET_{rest[0]}, "
            f"or put a file named {rest[0]} in LOCKGATE_SECRETS_DIR"
        )
    if head not in params:
        known = ", ".join(sorted(params)) or "none"
        return f"{ref.text}: no param is called {head!r} (params: {known})"
    return None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def lookup(ref: Ref, scope: Mapping[str, Any]) -> Any:
    """The value ``ref`` names in ``scope`` (params at the top, plus steps, run, secrets)."""
    current: Any = scope
    for i, part in enumerate(ref.parts):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            where = ".".join(ref.parts[: i + 1])
            raise TemplateError(f"{ref.text}: {where} is not set")
    return current


def render(value: Any, scope: Mapping[str, Any], encode: Callable[[Any], str] | None = None) -> Any:
    """``value`` with every placeholder replaced from ``scope``, recursively.

    ``encode`` turns a value into text where it lands inside a longer string (for example
    URL-quoting); by default strings stay as they are and other values become JSON.
    """
    if isinstance(value, str):
        return _render_str(value, scope, encode or _as_text)
    if isinstance(value, Mapping):
        return {k: render(v, scope, encode) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render(v, scope, encode) for v in value]
    return value


def _render_str(value: str, scope: Mapping[str, Any], encode: Callable[[Any], str]) -> Any:
    whole = _TOKEN.fullmatch(value)
    if whole is not None and whole.group(1) is not None:
        return lookup(next(refs(value)), scope)  # one placeholder: keep the type

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        return encode(lookup(next(refs(match.group(0))), scope))

    return _TOKEN.sub(replace, value)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), default=str)
