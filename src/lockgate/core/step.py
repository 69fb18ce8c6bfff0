"""Steps: pre-hooks, execute, post-hooks, rollback, error handler, retry, timeout."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from lockgate.core.codec import check_serialisable, type_name
from lockgate.core.functions import UserFn, arity, fingerprint, hints
from lockgate.core.retry import Retry
from lockgate.errors import DefinitionError

#: ``"ignore"`` records the error and passes the step's input on.
ErrorHandler = UserFn | Literal["ignore"]


@dataclass
class Step:
    """One unit of a pipeline.

    A step runs ``pre_hooks`` (each may transform the value), then ``execute``, then
    ``post_hooks``; any of them raising fails the step. Functions take ``(ctx)`` or
    ``(ctx, value)`` and may be sync (run in a thread) or async.
    """

    name: str
    execute: UserFn
    pre_hooks: tuple[UserFn, ...] = ()
    post_hooks: tuple[UserFn, ...] = ()
    rollback_fn: UserFn | None = None
    on_error: ErrorHandler | None = None
    retry: Retry = field(default_factory=Retry)
    timeout: float | None = None
    idempotent: bool = True
    input_type: Any = None
    output_type: Any = None
    #: Extra configuration of declarative step kinds; part of the version hash.
    config: Mapping[str, Any] = field(default_factory=dict)
    #: When the step has failed for good (its retries used up): ``"rollback"`` the run at
    #: once, or ``"ask"`` people to retry it, skip it or roll back (``None``: the pipeline's).
    on_failure: Literal["rollback", "ask"] | None = None
    #: Whether a person may skip the step after it failed (its output is then absent).
    skippable: bool = False
    #: The lowest level of the step's log lines that are kept (``debug`` keeps them all).
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: Checks that need the pipeline around the step: ``(param names, names of the steps
    #: before it)`` -> problems (a built-in kind's placeholders, when made in Python).
    checks: Callable[[Sequence[str], Sequence[str]], list[str]] | None = None
    #: When the step runs (its ``if:``): an expression over ``params``, ``steps`` and
    #: ``run`` (:mod:`lockgate.core.conditions`); false, the step is SKIPPED with the reason.
    condition: str | None = None

    def __post_init__(self) -> None:
        where = f"step {self.name!r}"
        if not self.name or not isinstance(self.name, str):
            raise DefinitionError("a step needs a non-empty name")
        if not callable(self.execute):
            raise DefinitionError(f"{where}: execute must be callable")
        for fn in (self.execute, *self.pre_hooks, *self.post_hooks):
            arity(fn, where)
        if self.rollback_fn is not None:
            arity(self.rollback_fn, f"{where} rollback")
        if self.on_error is not None and self.on_error != "ignore" and not callable(self.on_error):
            raise DefinitionError(f"{where}: on_error must be 'ignore' or a callable")
        if self.timeout is not None and self.timeout <= 0:
            raise DefinitionError(f"{where}: timeout must be positive")
        check_serialisable(self.input_type, f"{where} input")
        check_serialisable(self.output_type, f"{where} output")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the execute function directly (handy in unit tests)."""
        return self.execute(*args, **kwargs)

    def rollback(self, fn: UserFn) -> UserFn:
        """Decorator: set this step's rollback, ``fn(ctx, value)`` with ``ctx.load()``."""
        arity(fn, f"step {self.name!r} rollback")
        self.rollback_fn = fn
        return fn

    def extend(
        self,
        *,
        pre_hooks: Sequence[UserFn] = (),
        post_hooks: Sequence[UserFn] = (),
        rollback: UserFn | None = None,
        on_error: ErrorHandler | None = None,
    ) -> Step:
        """A copy fitted for one application: more hooks, a rollback or an error handler.

        The execute function cannot be replaced; write a new step for that.
        """
        return dataclasses.replace(
            self,
            pre_hooks=(*self.pre_hooks, *pre_hooks),
            post_hooks=(*self.post_hooks, *post_hooks),
            rollback_fn=rollback if rollback is not None else self.rollback_fn,
            on_error=on_error if on_error is not None else self.on_error,
        )

    def rename(self, name: str) -> Step:
        """A copy under another name, to use the same step twice in one pipeline."""
        return dataclasses.replace(self, name=name)

    def describe(self) -> dict[str, Any]:
        """The step as plain data: what a pipeline's version hash is computed from."""
        handler = self.on_error if isinstance(self.on_error, str) else fingerprint(self.on_error)
        return {
            "name": self.name,
            "execute": fingerprint(self.execute),
            "pre_hooks": [fingerprint(f) for f in self.pre_hooks],
            "post_hooks": [fingerprint(f) for f in self.post_hooks],
            "rollback": fingerprint(self.rollback_fn),
            "on_error": handler,
            "retry": self.retry.describe(),
            "timeout": self.timeout,
            "idempotent": self.idempotent,
            "input": type_name(self.input_type),
            "output": type_name(self.output_type),
            "config": dict(self.config),
            **({"on_failure": self.on_failure} if self.on_failure else {}),
            **({"skippable": True} if self.skippable else {}),
            **({"log_level": self.log_level} if self.log_level != "info" else {}),
            **({"if": self.condition} if self.condition else {}),
        }


@overload
def step(fn: UserFn, /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    retry: Retry | None = None,
    timeout: float | None = None,
    idempotent: bool = True,
    on_error: ErrorHandler | None = None,
    rollback: UserFn | None = None,
    pre_hooks: Sequence[UserFn] = (),
    post_hooks: Sequence[UserFn] = (),
    input: Any = ...,
    output: Any = ...,
    on_failure: Literal["rollback", "ask"] | None = None,
    skippable: bool = False,
    log_level: Literal["debug", "info", "warning", "error"] = "info",
    when: str | None = None,
) -> Callable[[UserFn], Step]: ...


def step(
    fn: UserFn | None = None,
    /,
    *,
    name: str | None = None,
    retry: Retry | None = None,
    timeout: float | None = None,
    idempotent: bool = True,
    on_error: ErrorHandler | None = None,
    rollback: UserFn | None = None,
    pre_hooks: Sequence[UserFn] = (),
    post_hooks: Sequence[UserFn] = (),
    input: Any = ...,
    output: Any = ...,
    on_failure: Literal["rollback", "ask"] | None = None,
    skippable: bool = False,
    log_level: Literal["debug", "info", "warning", "error"] = "info",
    when: str | None = None,
) -> Step | Callable[[UserFn], Step]:
    """Make a :class:`Step` from a function ``(ctx, value) -> output``.

    Input and output types come from the annotations unless given; a step with no output
    type passes its input on to the next step. ``when``: the step's condition (a file's
    ``if:``), e.g. ``"params.env == 'prod'"``; false, the step is skipped.
    """

    def build(f: UserFn) -> Step:
        typed = input is ... or output is ...
        value_t, return_t = hints(f) if typed else (None, None)
        return Step(
            name=name or f.__name__,
            execute=f,
            pre_hooks=tuple(pre_hooks),
            post_hooks=tuple(post_hooks),
            rollback_fn=rollback,
            on_error=on_error,
            retry=retry or Retry(),
            timeout=timeout,
            idempotent=idempotent,
            input_type=value_t if input is ... else input,
            output_type=return_t if output is ... else output,
            on_failure=on_failure,
            skippable=skippable,
            log_level=log_level,
            condition=when,
        )

    return build(fn) if fn is not None else build
