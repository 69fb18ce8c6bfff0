"""JSON encoding of step values by their declared types (pydantic; never pickle)."""

from __future__ import annotations

import functools
import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from lockgate.errors import DefinitionError, StepError


@functools.lru_cache(maxsize=1024)
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


def type_name(tp: Any) -> str:
    """A readable name for a declared type."""
    if tp is None:
        return "any"
    return getattr(tp, "__qualname__", None) or repr(tp)


def check_serialisable(tp: Any, where: str) -> None:
    """Refuse a declared type that cannot round-trip through JSON."""
    if tp is None:
        return
    try:
        _adapter(tp).json_schema(mode="serialization")
    except Exception as exc:
        raise DefinitionError(
            f"{where}: type {type_name(tp)} cannot be stored as JSON ({exc.__class__.__name__}); "
            "use a pydantic model, a dataclass, or plain JSON types"
        ) from exc


def encode(tp: Any, value: Any, where: str) -> Any:
    """``value`` as JSON-ready data, checked against ``tp`` when one is declared."""
    try:
        if tp is None:
            return _adapter(Any).dump_python(value, mode="json")
        checked = _adapter(tp).validate_python(value)
        return _adapter(tp).dump_python(checked, mode="json")
    except (ValidationError, TypeError, ValueError) as exc:
        raise StepError(f"{where}: cannot encode value as {type_name(tp)}: {exc}") from exc


def decode(tp: Any, data: Any, where: str) -> Any:
    """Data read back from the store as an instance of ``tp``."""
    if tp is None:
        return data
    try:
        return _adapter(tp).validate_python(data)
    except ValidationError as exc:
        raise StepError(f"{where}: stored value does not decode as {type_name(tp)}: {exc}") from exc


def json_schema(tp: Any) -> dict[str, Any] | None:
    """The JSON schema of a declared type, or ``None`` for untyped."""
    if tp is None:
        return None
    schema: dict[str, Any] = _adapter(tp).json_schema()
    return schema


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def loads(text: str | bytes) -> Any:
    """Parse JSON strictly: ``NaN`` and ``Infinity``, which Python's parser takes and no
    database's JSON type stores, are refused as not JSON (``ValueError``)."""
    return json.loads(text, parse_constant=_not_json)
