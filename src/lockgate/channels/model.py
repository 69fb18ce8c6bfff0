"""A channel's definition: request schema, merge, validation, generate, ordered stages."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema
from pydantic import BaseModel, TypeAdapter, ValidationError

from lockgate.core.context import StepContext, StepLogger
from lockgate.core.functions import fingerprint
from lockgate.core.step import Step
from lockgate.errors import DefinitionError
from lockgate.steps.approval import ApprovalConfig

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
#: What a tenant may be called.
TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$")
#: Names a stage cannot take: they are the channel's own steps.
_RESERVED = frozenset({"queue", "validate_request", "merge", "validate_manifest", "generate"})

#: A hook is a function of the deployment (sync or async) or a step of any kind.
Hook = Callable[["Deployment"], Any] | Step


@dataclass(frozen=True)
class PushRequest:
    """What a merge receives next to the manifest: who pushed what."""

    tenant: str
    content: Any
    command: str


@dataclass
class Deployment:
    """What a channel's hooks receive: the push, and the manifest once merged."""

    channel: str
    id: str
    seq: int
    tenant: str
    command: str
    content: Any
    ctx: StepContext
    #: The merged manifest (JSON), its version, its parent and its SHA-256 (the ETag
    #: readers see); ``None`` before the merge.
    manifest: Any = None
    version: int | None = None
    parent: int | None = None
    hash: str | None = None
    #: The stage being prepared or tested.
    stage: str | None = None

    @property
    def log(self) -> StepLogger:
        """The current step's log."""
        return self.ctx.log


@dataclass
class Stage:
    """One stage: ``prepare``, then an optional approval, the flip, then ``test``."""

    name: str
    prepare: Hook | None = None
    test: Hook | None = None
    approval: ApprovalConfig | Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise DefinitionError(
                f"stage name {self.name!r} is invalid: use letters, digits, '_', '-' "
                "(at most 100 characters)"
            )
        if self.name in _RESERVED:
            raise DefinitionError(f"a stage cannot be called {self.name!r}")
        if self.approval is not None and not isinstance(self.approval, ApprovalConfig):
            try:
                self.approval = ApprovalConfig.model_validate(dict(self.approval))
            except ValidationError as exc:
                raise DefinitionError(f"stage {self.name!r} approval: {exc}") from exc
        for label, hook in (("prepare", self.prepare), ("test", self.test)):
            _check_hook(hook, f"stage {self.name!r} {label}")


def _check_hook(hook: Any, where: str) -> None:
    if hook is not None and not isinstance(hook, Step) and not callable(hook):
        raise DefinitionError(f"{where} must be a function or a Step")


class Channel:
    """Tenants push content; ``merge`` folds each push into a new immutable manifest, which
    is then promoted through ``stages`` with atomic flips.

    ``request`` is a pydantic model (or any type pydantic validates), a JSON-schema dict, or
    ``None`` for any JSON. ``merge(manifest, request)`` returns the new manifest (JSON data
    or a pydantic model); it may be async. Validators and ``generate`` receive a
    :class:`Deployment`; a validator fails the deployment by raising, by returning ``False``
    or by returning problems (a string or a list of strings).
    """

    def __init__(
        self,
        name: str,
        *,
        merge: Callable[[Any, PushRequest], Any],
        request: Any = None,
        validate_request: Hook | None = None,
        validate_manifest: Hook | None = None,
        generate: Hook | None = None,
        stages: Sequence[Stage] = (),
        initial: Any = None,
        commands: Sequence[str] = ("merge",),
        tenants_key: str | None = "tenants",
        public_read: bool = False,
        max_content_bytes: int = 256 * 1024,
        queue_poll: float = 2.0,
        description: str = "",
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise DefinitionError(
                f"channel name {name!r} is invalid: use letters, digits, '_', '-' "
                "(at most 100 characters)"
            )
        if not callable(merge):
            raise DefinitionError(f"channel {name!r}: merge must be callable")
        for label, hook in (
            ("validate_request", validate_request),
            ("validate_manifest", validate_manifest),
            ("generate", generate),
        ):
            _check_hook(hook, f"channel {name!r} {label}")
        seen: set[str] = set()
        for st in stages:
            if not isinstance(st, Stage):
                raise DefinitionError(f"channel {name!r}: {st!r} is not a Stage")
            if st.name in seen:
                raise DefinitionError(f"channel {name!r}: stage {st.name!r} is defined twice")
            seen.add(st.name)
        if not commands or any(not isinstance(c, str) or not c for c in commands):
            raise DefinitionError(f"channel {name!r}: commands must be non-empty strings")
        if max_content_bytes <= 0 or queue_poll <= 0:
            raise DefinitionError(f"channel {name!r}: limits must be positive")
        self.name = name
        self.merge = merge
        self.request = request
        self.validate_request = validate_request
        self.validate_manifest = validate_manifest
        self.generate = generate
        self.stages: tuple[Stage, ...] = tuple(stages)
        self.initial = {} if initial is None else initial
        self.commands = tuple(commands)
        self.tenants_key = tenants_key
        self.public_read = public_read
        self.max_content_bytes = max_content_bytes
        self.queue_poll = queue_poll
        self.description = description
        self._check_content = _content_checker(name, request)

    def check_content(self, content: Any) -> tuple[Any, list[str]]:
        """``(content as the merge sees it, problems)``: every schema problem listed."""
        return self._check_content(content)

    def tenant_slice(self, manifest: Any, tenant: str) -> Any:
        """A tenant's part of a manifest (``manifest[tenants_key][tenant]``), or ``None``."""
        part = manifest.get(self.tenants_key) if self.tenants_key else manifest
        if isinstance(part, Mapping):
            return part.get(tenant)
        return None

    def request_schema(self) -> dict[str, Any] | None:
        """The JSON schema of a push's content."""
        if self.request is None:
            return None
        if isinstance(self.request, Mapping):
            return dict(self.request)
        return TypeAdapter(self.request).json_schema()

    def describe(self) -> dict[str, Any]:
        """The channel as plain data (stored, shown, and part of its pipeline's version)."""

        def hook(h: Any) -> Any:
            if h is None:
                return None
            return h.describe() if isinstance(h, Step) else fingerprint(h)

        return {
            "name": self.name,
            "description": self.description,
            "request": self.request_schema(),
            "merge": fingerprint(self.merge),
            "validate_request": hook(self.validate_request),
            "validate_manifest": hook(self.validate_manifest),
            "generate": hook(self.generate),
            "stages": [
                {
                    "name": st.name,
                    "prepare": hook(st.prepare),
                    "test": hook(st.test),
                    "approval": (
                        st.approval.model_dump(mode="json")
                        if isinstance(st.approval, ApprovalConfig)
                        else None
                    ),
                }
                for st in self.stages
            ],
            "commands": list(self.commands),
            "tenants_key": self.tenants_key,
            "public_read": self.public_read,
            "max_content_bytes": self.max_content_bytes,
        }

    def __repr__(self) -> str:
        return f"Channel({self.name!r}, stages={[st.name for st in self.stages]})"


def _content_checker(name: str, request: Any) -> Callable[[Any], tuple[Any, list[str]]]:
    if request is None:
        return lambda content: (content, [])
    if isinstance(request, Mapping):
        try:
            jsonschema.Draft202012Validator.check_schema(dict(request))
        except jsonschema.SchemaError as exc:
            raise DefinitionError(f"channel {name!r}: request schema: {exc.message}") from exc
        validator = jsonschema.Draft202012Validator(dict(request))

        def by_schema(content: Any) -> tuple[Any, list[str]]:
            errors = sorted(validator.iter_errors(content), key=lambda e: list(e.path))
            return content, [
                f"{'.'.join(map(str, e.path)) or '(content)'}: {e.message}" for e in errors
            ]

        return by_schema
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(request)
    except Exception as exc:
        raise DefinitionError(f"channel {name!r}: request type: {exc}") from exc

    def by_type(content: Any) -> tuple[Any, list[str]]:
        try:
            return adapter.validate_python(content), []
        except ValidationError as exc:
            return content, [
                f"{'.'.join(str(p) for p in e['loc']) or '(content)'}: {e['msg']}"
                for e in exc.errors()
            ]

    return by_type


def as_json(value: Any) -> Any:
    """A merge's result as JSON data (pydantic models are dumped)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value
