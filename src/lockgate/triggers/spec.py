"""One spec per kind of trigger: the fields it is made of, with their limits, defaults and
help, written once.

A kind's :class:`Spec` is what its service's ``create`` takes, and its :meth:`Spec.change`
twin (every field optional, those that cannot change left out) what ``update`` takes. The
REST routes take them as bodies, the REST client sends them, the console makes its forms
from their JSON schema, and the command line makes its options from their fields
(:mod:`lockgate.cli.specs`). A :class:`Kind` names a spec's service, record and paths; the
kinds lockgate has are listed in :mod:`lockgate.triggers.catalog`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from lockgate.core.params import pydantic_problems
from lockgate.errors import ParamsError

PARAMS_HELP = (
    'The run\'s params as JSON; values may use placeholders, e.g. {"commit": "${event.commit}"}'
)


class Spec(BaseModel):
    """What every trigger has: the pipeline it starts, in its namespace, with params."""

    model_config = ConfigDict(extra="forbid")

    pipeline: str = Field(max_length=401, title="Pipeline", description="The pipeline it starts.")
    namespace: str = Field(
        "default", max_length=200, title="Namespace", description="The pipeline's namespace."
    )
    params: dict[str, Any] = Field(default_factory=dict, title="Params", description=PARAMS_HELP)

    #: Fields a change may not touch (a webhook's provider, a queue's broker).
    fixed: ClassVar[frozenset[str]] = frozenset()
    #: The command line's positional arguments of ``create``, in order.
    arguments: ClassVar[tuple[str, ...]] = ("pipeline",)
    #: The command line's option for a field, where it is not ``--<field-name>``.
    flags: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def change(cls) -> type[BaseModel]:
        """The spec's change: every field but the fixed ones, each optional; a field left
        out stays as it is."""
        return _change_of(cls)

    @classmethod
    def read(cls, data: Spec | Mapping[str, Any]) -> Spec:
        """``data`` as this spec; :class:`ParamsError` with every problem listed."""
        if isinstance(data, cls):
            return data
        if isinstance(data, BaseModel):
            data = data.model_dump(exclude_unset=True)
        return checked(cls, data)

    @classmethod
    def changes(cls, data: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
        """The fields a change gives (those left out, or ``None``, stay as they are);
        :class:`ParamsError` with every problem listed."""
        if not isinstance(data, BaseModel):
            given = {k: v for k, v in data.items() if v is not None}
            data = checked(cls.change(), given)
        return {k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None}


M = TypeVar("M", bound=BaseModel)


def checked(model: type[M], data: Mapping[str, Any]) -> M:
    """``data`` validated as ``model``; :class:`ParamsError` with every problem listed."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ParamsError(pydantic_problems(exc)) from None


@functools.cache
def _change_of(spec: type[Spec]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, info in spec.model_fields.items():
        if name in spec.fixed:
            continue
        optional: Any = info.annotation | None  # type: ignore[operator]
        if info.metadata:  # the limits (max_length...) go with it
            optional = Annotated[optional, *info.metadata]
        fields[name] = (
            optional,
            Field(None, title=info.title, description=info.description),
        )
    return create_model(
        f"{spec.__name__}Change",
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"What to change of a {spec.__name__[:-4].lower()} (fields left out stay "
        "as they are).",
        **fields,
    )


S = TypeVar("S", bound=Spec)
R = TypeVar("R")


@dataclass(frozen=True)
class Kind(Generic[S, R]):
    """A kind of trigger: its spec, its record, and where it lives."""

    #: The noun: ``schedule``.
    name: str
    #: Its REST path and command group: ``schedules``.
    path: str
    #: Its service's attribute on the App: ``schedules``.
    service: str
    spec: type[S]
    record: type[R]
    #: Whether viewers may read it (a webhook trigger's URL and filters are for admins).
    viewers_read: bool
    #: What it is, for help and summaries: "Cron and interval schedules".
    title: str
    #: What a command group's help says of it.
    help: str
