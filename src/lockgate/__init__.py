"""lockgate: durable deployment pipelines on SQLite or PostgreSQL.

The public names below are imported on first use: ``import lockgate.observability.tracing``
(or the span exporter process, which needs nothing else) does not load the engine, the store
and the API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lockgate._version import __version__ as __version__

if TYPE_CHECKING:
    from lockgate.app import App
    from lockgate.channels import Channel, Deployment, PushRequest, Stage
    from lockgate.core.context import StepContext, StepLogger
    from lockgate.core.hooks import HookEvent, HookPoint
    from lockgate.core.pipeline import Pipeline
    from lockgate.core.registry import Registry
    from lockgate.core.retry import Retry
    from lockgate.core.statuses import RunStatus, StepStatus
    from lockgate.core.step import Step, step
    from lockgate.errors import (
        ChannelNotFound,
        Conflict,
        DefinitionError,
        InvalidState,
        LockgateError,
        NotFound,
        ParamsError,
        PipelineNotFound,
        RunNotFound,
        StaleLease,
        StepCancelled,
        StepError,
        StepInterrupted,
        StepTimeout,
        StoreError,
    )
    from lockgate.records.views import RunView
    from lockgate.settings import Settings

#: Where each public name is defined.
_WHERE = {
    "App": "lockgate.app",
    "Channel": "lockgate.channels",
    "ChannelNotFound": "lockgate.errors",
    "Conflict": "lockgate.errors",
    "DefinitionError": "lockgate.errors",
    "Deployment": "lockgate.channels",
    "HookEvent": "lockgate.core.hooks",
    "HookPoint": "lockgate.core.hooks",
    "InvalidState": "lockgate.errors",
    "LockgateError": "lockgate.errors",
    "NotFound": "lockgate.errors",
    "ParamsError": "lockgate.errors",
    "Pipeline": "lockgate.core.pipeline",
    "PipelineNotFound": "lockgate.errors",
    "PushRequest": "lockgate.channels",
    "Registry": "lockgate.core.registry",
    "Retry": "lockgate.core.retry",
    "RunNotFound": "lockgate.errors",
    "RunStatus": "lockgate.core.statuses",
    "RunView": "lockgate.records.views",
    "Settings": "lockgate.settings",
    "Stage": "lockgate.channels",
    "StaleLease": "lockgate.errors",
    "Step": "lockgate.core.step",
    "StepCancelled": "lockgate.errors",
    "StepContext": "lockgate.core.context",
    "StepError": "lockgate.errors",
    "StepInterrupted": "lockgate.errors",
    "StepLogger": "lockgate.core.context",
    "StepStatus": "lockgate.core.statuses",
    "StepTimeout": "lockgate.errors",
    "StoreError": "lockgate.errors",
    "step": "lockgate.core.step",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'lockgate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = [
    "App",
    "Channel",
    "ChannelNotFound",
    "Conflict",
    "DefinitionError",
    "Deployment",
    "HookEvent",
    "HookPoint",
    "InvalidState",
    "LockgateError",
    "NotFound",
    "ParamsError",
    "Pipeline",
    "PipelineNotFound",
    "PushRequest",
    "Registry",
    "Retry",
    "RunNotFound",
    "RunStatus",
    "RunView",
    "Settings",
    "Stage",
    "StaleLease",
    "Step",
    "StepCancelled",
    "StepContext",
    "StepError",
    "StepInterrupted",
    "StepLogger",
    "StepStatus",
    "StepTimeout",
    "StoreError",
    "step",
]
