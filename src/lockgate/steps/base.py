"""The one-method protocol every built-in step kind implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from lockgate.core.context import StepContext


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
    #: How placeholder values are written inside longer strings, per top-level field
    #: (for example percent-encoding in a URL); other fields get plain text.
    encoders: ClassVar[dict[str, Callable[[Any], str]]] = {}

    def check(self, config: Any) -> None:  # noqa: B027 - optional for a kind
        """Load-time checks beyond the config's types; raise ``ValueError`` to refuse."""

    @abstractmethod
    async def execute(self, ctx: StepContext, config: Any, value: Any) -> Any:
        """Do the step's work."""
