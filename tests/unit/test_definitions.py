"""Pipeline and step definitions: validation, extend/rename, versions."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pydantic import BaseModel

from lockgate import DefinitionError, Pipeline, Retry, StepContext, step


class A(BaseModel):
    x: int


class B(BaseModel):
    y: str


@step
def make_a(ctx: StepContext) -> A:
    return A(x=1)


@step
def take_a(ctx: StepContext, a: A) -> B:
    return B(y=str(a.x))


@step
def take_b(ctx: StepContext, b: B) -> None:
    pass


def test_types_come_from_annotations() -> None:
    """Input and output types are read from the function's annotations."""
    assert take_a.input_type is A and take_a.output_type is B
    assert take_b.output_type is None
    assert make_a.input_type is None


def test_empty_pipeline_is_refused() -> None:
    """A pipeline needs at least one step."""
    with pytest.raises(DefinitionError, match="at least one step"):
        Pipeline("empty", [])


def test_duplicate_step_names_are_refused_and_rename_fixes_them() -> None:
    """The same step twice needs rename(); the copy keeps the execute function."""
    with pytest.raises(DefinitionError, match=r"'make_a' is used twice; use step\.rename"):
        Pipeline("dup", [make_a, make_a])
    again = make_a.rename("make_a_again")
    assert again.execute is make_a.execute
    Pipeline("dup", [make_a, again.extend()])


def test_mismatched_input_type_is_refused() -> None:
    """A step whose input type differs from what the previous step produces is refused."""
    with pytest.raises(DefinitionError, match="step 'take_b' expects input B but step 'make_a'"):
        Pipeline("bad", [make_a, take_b])
    Pipeline("good", [make_a, take_a, take_b])


def test_params_type_flows_into_the_first_step() -> None:
    """The params type is what the first step receives."""
    with pytest.raises(DefinitionError, match="expects input A but the params produces B"):
        Pipeline("bad", [take_a], params=B)


def test_non_serialisable_types_are_refused() -> None:
    """Types that cannot round-trip through JSON are refused at definition time."""

    with pytest.raises(DefinitionError, match="cannot be stored as JSON"):

        @step
        def lock(ctx: StepContext) -> threading.Lock:
            return threading.Lock()


def test_wrong_arity_is_refused() -> None:
    """Step functions take (ctx) or (ctx, value)."""
    with pytest.raises(DefinitionError, match="must take \\(ctx\\) or \\(ctx, value\\)"):

        @step
        def three(ctx: StepContext, a: Any, b: Any) -> None:
            pass


def test_bad_names_and_options_are_refused() -> None:
    """Names are checked; timeouts must be positive; retry needs sane numbers."""
    with pytest.raises(DefinitionError, match="pipeline name 'a b' is invalid"):
        Pipeline("a b", [make_a])
    with pytest.raises(DefinitionError, match="timeout must be positive"):
        step(timeout=0)(lambda ctx: None)
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        Retry(attempts=0)
    with pytest.raises(DefinitionError, match="unknown hook point 'bogus'"):
        Pipeline("p", [make_a]).hook("bogus")(lambda e: None)


def test_extend_adds_hooks_and_rollback_without_touching_execute() -> None:
    """extend() returns a fitted copy; the original is unchanged."""

    def pre(ctx: StepContext, v: Any) -> Any:
        return v

    def undo(ctx: StepContext) -> None:
        pass

    fitted = take_a.extend(pre_hooks=[pre], rollback=undo, on_error="ignore")
    assert fitted.execute is take_a.execute
    assert fitted.pre_hooks == (pre,) and fitted.rollback_fn is undo
    assert take_a.pre_hooks == () and take_a.rollback_fn is None


def test_version_is_a_content_hash() -> None:
    """Same content, same version; a changed step or option, a new version."""
    one = Pipeline("p", [make_a, take_a])
    same = Pipeline("p", [make_a, take_a])
    other = Pipeline("p", [make_a, take_a.extend(on_error="ignore")])
    assert one.version == same.version != other.version
    assert len(one.version) == 16


def test_retry_backoff_grows_and_is_capped() -> None:
    """Delays grow exponentially within the jitter band and stop at max_backoff."""
    policy = Retry(attempts=10, backoff=1, multiplier=2, max_backoff=5, jitter=0.1)
    assert 0.9 <= policy.delay(1) <= 1.1
    assert 3.6 <= policy.delay(3) <= 4.4
    assert 4.5 <= policy.delay(8) <= 5.5
    assert policy.should_retry(9, RuntimeError()) and not policy.should_retry(10, RuntimeError())


def test_a_step_whose_annotations_cannot_be_resolved_is_refused() -> None:
    """Its annotations were silently dropped: the step became untyped and its return value
    was lost. Now the definition is refused, naming the function and the cause."""
    import pytest

    from lockgate import step
    from lockgate.errors import DefinitionError

    def build(ctx: StepContext) -> Artefact:  # noqa: F821 - the name does not exist
        return None

    with pytest.raises(
        DefinitionError, match=r"build: its annotations cannot be resolved \(NameError"
    ):
        step(build)


def test_a_step_typed_with_a_class_of_its_own_scope_keeps_its_types() -> None:
    """Types defined where the step is (inside a function) resolve from that scope."""
    from pydantic import BaseModel

    from lockgate import step

    class Local(BaseModel):
        n: int

    @step
    def use(ctx: StepContext, value: Local) -> Local:
        return value

    assert use.input_type is Local and use.output_type is Local
