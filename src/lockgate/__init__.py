"""lockgate: durable deployment pipelines on SQLite or PostgreSQL."""

from __future__ import annotations

from lockgate._version import __version__ as __version__
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
from lockgate.settings import Settings
from lockgate.views import RunView

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
