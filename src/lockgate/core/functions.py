"""Calling user functions: sync or async, with or without the value argument."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import inspect
import typing
from collections.abc import Callable
from typing import Any

from lockgate.errors import DefinitionError

UserFn = Callable[..., Any]


def arity(fn: UserFn, where: str) -> int:
    """How many positional arguments ``fn`` takes (1: ctx only, 2: ctx and value)."""
    try:
        return _arity_cache[fn]
    except (KeyError, TypeError):
        pass
    found = _arity(fn, where)
    with contextlib.suppress(TypeError):  # unhashable callables are inspected every time
        _arity_cache[fn] = found
    return found


_arity_cache: dict[UserFn, int] = {}


def _arity(fn: UserFn, where: str) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError) as exc:
        raise DefinitionError(f"{where}: cannot inspect {fn!r}") from exc
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    if len(positional) not in (1, 2):
        raise DefinitionError(
            f"{where}: {qualname(fn)} must take (ctx) or (ctx, value), "
            f"it takes {len(positional)} required positional arguments"
        )
    return len(positional)


def hints(fn: UserFn) -> tuple[Any, Any]:
    """The annotated (value type, return type) of a step function; ``None`` when absent.

    :class:`DefinitionError` when the annotations cannot be resolved (a name imported only
    for type checking, a typo): the step would otherwise be untyped and its return value
    silently dropped."""
    try:
        found = typing.get_type_hints(fn)
    except NameError:
        # A type defined where the step is (inside a function): look in the scopes that
        # are defining it, innermost first.
        try:
            found = typing.get_type_hints(fn, localns=_callers_names())
        except Exception as exc:
            raise _unresolved(fn, exc) from exc
    except Exception as exc:
        raise _unresolved(fn, exc) from exc
    names = [n for n, p in inspect.signature(fn).parameters.items() if p.kind is not p.VAR_KEYWORD]
    value_t = found.get(names[1]) if len(names) > 1 else None
    ret = found.get("return")
    return value_t, (None if ret is type(None) else ret)


def _callers_names(depth: int = 8) -> dict[str, Any]:
    """The local names of the calling frames, the innermost first."""
    found: dict[str, Any] = {}
    frame = inspect.currentframe()
    for _ in range(depth):
        frame = frame.f_back if frame is not None else None
        if frame is None:
            break
        for name, value in frame.f_locals.items():
            found.setdefault(name, value)
    return found


def _unresolved(fn: UserFn, exc: Exception) -> DefinitionError:
    return DefinitionError(
        f"{qualname(fn)}: its annotations cannot be resolved ({type(exc).__name__}: {exc}); "
        "import the types it names at module level (not only under TYPE_CHECKING), or "
        "annotate with types that exist"
    )


def qualname(fn: UserFn) -> str:
    """``module.qualname`` of a callable."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def fingerprint(fn: UserFn | None) -> str | None:
    """Name plus a hash of the source, so a changed body changes the pipeline version."""
    if fn is None:
        return None
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        source = ""
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    # The module name is left out: the same file imported under another name (a path
    # versus a dotted module) must give the same pipeline version.
    return f"{getattr(fn, '__qualname__', repr(fn))}@{digest}"


async def call(fn: UserFn, *args: Any, before: Callable[[], None] | None = None) -> Any:
    """Await ``fn(*args)``: coroutines on the loop, plain functions in a thread. ``before``
    runs right before ``fn`` (in its thread, for a plain function): a last check that may
    raise instead of letting ``fn`` start."""
    if inspect.iscoroutinefunction(fn):
        if before is not None:
            before()
        return await fn(*args)
    if before is not None:
        check = before

        def guarded() -> Any:
            check()
            return fn(*args)

        result = await asyncio.to_thread(guarded)
    else:
        result = await asyncio.to_thread(functools.partial(fn, *args))
    if inspect.isawaitable(result):
        return await result
    return result
