"""Forms generated from a JSON schema: a pipeline's params, an approval's input.

Each property becomes one field (a select for an enum, a checkbox for a boolean, a number
box, a text box with its pattern, comma-separated text for a list of strings, a password box
for ``format: password``, JSON for other objects and lists); posted values are turned back
into the schema's types, with every problem listed. The server checks them again, as for
REST: the form only helps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lockgate.core.codec import loads
from lockgate.errors import ParamsError


@dataclass(frozen=True)
class Field:
    """One input of a generated form."""

    name: str
    kind: str  # text, secret, number, integer, boolean, enum, list, json
    label: str
    description: str
    required: bool
    default: Any
    example: Any
    choices: list[Any]
    pattern: str | None

    @property
    def shown_default(self) -> str:
        """The default as the field shows it."""
        if self.default is None:
            return ""
        if self.kind == "json":
            return json.dumps(self.default)
        if self.kind == "list":
            return ", ".join(str(item) for item in self.default)
        return str(self.default)


def _plain(prop: Mapping[str, Any]) -> Mapping[str, Any]:
    """A property without its ``anyOf [..., null]`` wrapper (an optional value)."""
    options = [o for o in prop.get("anyOf", []) if o.get("type") != "null"]
    if len(options) == 1:
        return {**options[0], **{k: v for k, v in prop.items() if k != "anyOf"}}
    return prop


def fields_of(schema: Mapping[str, Any] | None) -> list[Field]:
    """The fields of an object schema's properties, in their order."""
    if not schema:
        return []
    required = set(schema.get("required", []))
    found = []
    for name, raw in (schema.get("properties") or {}).items():
        prop = _plain(raw)
        kind = {
            "boolean": "boolean",
            "integer": "integer",
            "number": "number",
            "object": "json",
            "array": "json",
        }.get(str(prop.get("type")), "text")
        if prop.get("enum"):
            kind = "enum"
        elif kind == "json" and (prop.get("items") or {}).get("type") == "string":
            kind = "list"  # comma-separated, or a JSON array
        elif kind == "text" and prop.get("format") == "password":
            kind = "secret"
        examples = prop.get("examples") or []
        found.append(
            Field(
                name=name,
                kind=kind,
                label=str(prop.get("title") or name),
                description=str(prop.get("description") or ""),
                required=name in required,
                default=prop.get("default"),
                example=examples[0] if examples else prop.get("example"),
                choices=list(prop.get("enum") or []),
                pattern=prop.get("pattern"),
            )
        )
    return found


def values_from(fields: list[Field], form: Mapping[str, str], prefix: str = "") -> dict[str, Any]:
    """The posted values in their types (empty fields left out); :class:`ParamsError`
    listing every value that is not of its field's type."""
    values: dict[str, Any] = {}
    problems = []
    for f in fields:
        raw = form.get(prefix + f.name)
        if f.kind == "boolean":
            values[f.name] = raw in ("true", "on", "1")
            continue
        if raw is None or raw == "":
            continue
        try:
            if f.kind == "integer":
                values[f.name] = int(raw)
            elif f.kind == "number":
                values[f.name] = float(raw)
            elif f.kind == "json" or (f.kind == "list" and raw.lstrip().startswith("[")):
                values[f.name] = loads(raw)
            elif f.kind == "list":
                values[f.name] = [item.strip() for item in raw.split(",") if item.strip()]
            else:
                values[f.name] = raw
        except ValueError:
            what = {"integer": "a whole number", "number": "a number"}.get(f.kind, "JSON")
            problems.append(f"{f.name}: {raw!r} is not {what}")
    if problems:
        raise ParamsError(problems)
    return values
