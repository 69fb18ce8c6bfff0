"""Typed inputs declared as data: the params of a pipeline file, an approval's input."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model


class ParamSpec(BaseModel):
    """One declared input: its type and constraints (a JSON-Schema-like block)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["string", "integer", "number", "boolean", "array", "object"] = "string"
    required: bool = False
    default: Any = None
    enum: list[Any] | None = Field(None, min_length=1)
    pattern: str | None = Field(None, description="Regular expression a string must match.")
    format: Literal["url"] | None = Field(
        None, description="``url``: an http(s) URL (it may then open an api step's url)."
    )
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""
    example: Any = Field(None, description="A value to show people (help, banners, forms).")


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials (use a secret in a header)")
    return value


#: A param declared ``format: url``: kept as written, checked to be an http(s) URL.
HttpUrlText = Annotated[str, AfterValidator(_http_url)]

_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list[Any],
    "object": dict[str, Any],
}


def params_model(name: str, specs: dict[str, ParamSpec]) -> type[BaseModel] | None:
    """A pydantic model that validates a run's params as the file declares them."""
    if not specs:
        return None
    fields: dict[str, Any] = {}
    for field_name, spec in specs.items():
        tp: Any = _TYPES[spec.type]
        if spec.format == "url":
            tp = HttpUrlText
        if spec.enum:
            tp = Literal[tuple(spec.enum)]
        constraints: dict[str, Any] = {"description": spec.description or None}
        if spec.example is not None:
            constraints["examples"] = [spec.example]
        if spec.pattern is not None:
            constraints["pattern"] = spec.pattern
        if spec.minimum is not None:
            constraints["ge"] = spec.minimum
        if spec.maximum is not None:
            constraints["le"] = spec.maximum
        if spec.required:
            fields[field_name] = (tp, Field(..., **constraints))
        else:
            fields[field_name] = (tp | None, Field(spec.default, **constraints))
    model: type[BaseModel] = create_model(
        f"{name.replace('-', '_').replace('.', '_')}_params",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )
    return model


def pydantic_problems(exc: ValidationError, skip: set[str] | None = None) -> list[str]:
    """Every problem pydantic found, as ``path: message`` lines (``skip``: error types)."""
    out = []
    for err in exc.errors():
        if skip and err["type"] in skip:
            continue
        loc = ".".join(str(x) for x in err["loc"]) or "(params)"
        out.append(f"{loc}: {err['msg']}")
    return out
