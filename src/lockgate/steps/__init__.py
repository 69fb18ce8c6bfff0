"""Built-in step kinds, registered by name. Adding a kind: one file, one line below."""

from __future__ import annotations

from lockgate.errors import DefinitionError
from lockgate.steps.api import ApiKind
from lockgate.steps.approval import ApprovalKind
from lockgate.steps.base import KindConfig, StepKind
from lockgate.steps.python import PythonKind
from lockgate.steps.shell import ShellKind
from lockgate.steps.sleep import SleepKind

KINDS: dict[str, StepKind] = {}


def register(kind: StepKind) -> None:
    """Make ``kind`` available to pipeline files as ``kind: <name>``."""
    if kind.name in KINDS:
        raise DefinitionError(f"step kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind


def get(name: str) -> StepKind:
    """The kind called ``name``."""
    try:
        return KINDS[name]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise DefinitionError(f"unknown step kind {name!r} (known: {known})") from None


register(ApiKind())
register(ApprovalKind())
register(ShellKind())
register(PythonKind())
register(SleepKind())

__all__ = ["KINDS", "KindConfig", "StepKind", "get", "register"]
