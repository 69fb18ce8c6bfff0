"""The one-method protocol every built-in step kind implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from lockgate.core.context import StepContext
from lockgate.core.templates import render


class KindConfig(BaseModel):
    """Base of each kind's configuration: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class StepKind(ABC):
    """A kind of declarative step: its config model and how it executes.

    ``execute`` receives the step's context, its config with every ``${...}`` already
    substituted (and validated again), and the value flowing in; it returns the step's
    output (JSON-ready) or raises. When ``ctx.noop`` is set it must perform no side effect
    and log what it would do.
    """

    name: ClassVar[str]
    config: ClassVar[type[KindConfig]]
    #: Whether the kind produces an output (``${steps.NAME.field}``); else input passes on.
    produces_output: ClassVar[bool] = True
    #: Whether running it twice is harmless (for re-runs after a crash).
    idempotent: ClassVar[bool] = True

    def render_config(
        self, raw_config: Mapping[str, Any], scope: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The config with its placeholders substituted, field by field (override to judge
        a rendered value against the rest of the config, as the ``shell`` kind does)."""
        return {key: self.render(key, value, scope) for key, value in raw_config.items()}

    def render(self, field: str, template: Any, scope: Mapping[str, Any]) -> Any:
        """Substitute the placeholders of one config field (override to encode values for
        where they land, as the ``api`` kind does for URLs)."""
        return render(template, scope)

    def check(self, config: Any) -> None:  # noqa: B027 - optional for a kind
        """Load-time checks beyond the config's types; raise ``ValueError`` to refuse."""

    def check_placeholders(
        self, raw_config: Mapping[str, Any], params: Mapping[str, Any]
    ) -> list[tuple[str, str]]:
        """Load-time checks of where placeholders stand, knowing the declared params
        (name -> spec as written); ``(field, problem)`` pairs."""
        return []

    @abstractmethod
    async def execute(self, ctx: StepContext, config: Any, value: Any) -> Any:
        """Do the step's work."""
