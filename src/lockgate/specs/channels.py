"""Channel files (YAML or JSON) -> :class:`Channel`, with every problem at file:line:column.

A channel file has a top-level ``channel:`` (a pipeline file has ``name:``). Its hooks are
steps of any kind (``python``, ``shell``, ``api``, ...) without a name; ``merge`` is the
dotted path of a Python function, since merging is code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from lockgate.channels.model import Channel, Stage
from lockgate.core.step import Step
from lockgate.errors import DefinitionError
from lockgate.specs.document import Problem, SpecError
from lockgate.specs.loader import Loc, build_step, read_spec
from lockgate.specs.model import Strict
from lockgate.steps.approval import ApprovalConfig
from lockgate.steps.python import resolve

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"
#: What ``${...}`` can name in a channel's hooks, besides ``steps``, ``run`` and ``secrets``.
PARAMS = ["deployment", "tenant", "command", "content"]


class StageSpec(Strict):
    """One stage of a channel file."""

    name: str = Field(pattern=_NAME)
    prepare: dict[str, Any] | None = Field(None, description="A step of any kind, before the flip.")
    approval: ApprovalConfig | None = Field(None, description="People to approve the flip.")
    test: dict[str, Any] | None = Field(None, description="A step of any kind, after the flip.")


class ChannelSpec(Strict):
    """A channel file's top level."""

    channel: str = Field(pattern=_NAME)
    description: str = ""
    request: dict[str, Any] | None = Field(
        None, description="JSON schema of a push's content; every problem is listed."
    )
    merge: str = Field(
        pattern=r"^[A-Za-z_][\w.]*[:.][A-Za-z_]\w*$",
        description="package.module:function taking (manifest, request), returning the manifest.",
    )
    validate_request: dict[str, Any] | None = None
    validate_manifest: dict[str, Any] | None = None
    generate: dict[str, Any] | None = None
    stages: list[StageSpec] = Field(default_factory=list, max_length=50)
    commands: list[str] = Field(default_factory=lambda: ["merge"], min_length=1)
    initial: Any = None
    tenants_key: str | None = "tenants"
    public_read: bool = False
    max_content_bytes: int = Field(256 * 1024, gt=0, le=16 * 1024 * 1024)
    queue_poll: float = Field(2.0, gt=0, le=300)


def is_channel_file(root: Any) -> bool:
    """Whether a parsed document is a channel (it has ``channel:``, not ``name:``)."""
    return isinstance(root, dict) and "channel" in root


def load_channel_file(
    path: Path, *, secret_names: Callable[[str], bool] = lambda _: True
) -> Channel:
    """The channel defined in ``path``; :class:`SpecError` lists every problem."""
    problems, data, spec = read_spec(path, ChannelSpec)
    names = ["queue"]

    def hook(raw: Any, loc: Loc, name: str) -> Step | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            problems.add(loc, "a hook must be a step (a mapping with a kind)")
            return None
        return build_step({"name": name, **raw}, loc, PARAMS, names, problems, secret_names)

    hooks = {
        "validate_request": hook(
            data.get("validate_request"), ("validate_request",), "validate_request"
        )
    }
    names.append("merge")
    for key in ("validate_manifest", "generate"):
        hooks[key] = hook(data.get(key), (key,), key)
    stages: list[Stage] = []
    raw_stages = data.get("stages")
    for i, raw in enumerate(raw_stages if isinstance(raw_stages, list) else []):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            continue  # reported by the model
        name = raw["name"]
        prepare = hook(raw.get("prepare"), ("stages", i, "prepare"), f"{name}.prepare")
        if raw.get("approval") is not None:
            names.append(f"{name}.approval")
        names.append(f"{name}.flip")
        test = hook(raw.get("test"), ("stages", i, "test"), f"{name}.test")
        approval = raw.get("approval")
        try:
            stages.append(
                Stage(
                    name,
                    prepare=prepare,
                    test=test,
                    approval=approval if isinstance(approval, dict) else None,
                )
            )
        except DefinitionError as exc:
            if not exc.message.startswith(f"stage {name!r} approval"):  # the model said it
                problems.add(("stages", i, "name"), exc.message)
    merge: Any = None
    if isinstance(data.get("merge"), str):
        try:
            merge = resolve(data["merge"])
        except ValueError as exc:
            problems.add(("merge",), str(exc))
    if problems.problems or spec is None:
        raise SpecError(problems.problems)
    try:
        return Channel(
            spec.channel,
            merge=merge,
            request=spec.request,
            validate_request=hooks["validate_request"],
            validate_manifest=hooks["validate_manifest"],
            generate=hooks["generate"],
            stages=stages,
            initial=spec.initial,
            commands=spec.commands,
            tenants_key=spec.tenants_key,
            public_read=spec.public_read,
            max_content_bytes=spec.max_content_bytes,
            queue_poll=spec.queue_poll,
            description=spec.description,
        )
    except DefinitionError as exc:
        raise SpecError([Problem(str(path), 1, 1, exc.message)]) from exc
