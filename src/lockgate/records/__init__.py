"""Plain records: what the store returns and every face shows (rows never leave the store).

A neutral package: the store, the engine, the services and the faces all import it; it
imports nothing of lockgate's but the settings' redaction. The records live by domain
(:mod:`.runs`, :mod:`.access`, :mod:`.triggers`, :mod:`.channels`) and are all named here;
:mod:`.views` holds the read models the faces show, made of several records.
"""

from __future__ import annotations

from lockgate.records.access import (
    AuditRecord,
    SessionRecord,
    TokenRecord,
)
from lockgate.records.base import Record
from lockgate.records.channels import (
    ChannelRecord,
    DeploymentRecord,
    FlipRecord,
    ManifestRecord,
    StageRecord,
)
from lockgate.records.runs import (
    ApprovalRecord,
    AttemptRecord,
    Claimed,
    DecisionRecord,
    DecisionResult,
    ErrorRecord,
    EventRecord,
    LogRecord,
    PipelineRecord,
    RunRecord,
    StepRecord,
)
from lockgate.records.triggers import (
    DeliveryRecord,
    PollerRecord,
    QueueRecord,
    ScheduleRecord,
    TriggerRecord,
)

__all__ = [
    "ApprovalRecord",
    "AttemptRecord",
    "AuditRecord",
    "ChannelRecord",
    "Claimed",
    "DecisionRecord",
    "DecisionResult",
    "DeliveryRecord",
    "DeploymentRecord",
    "ErrorRecord",
    "EventRecord",
    "FlipRecord",
    "LogRecord",
    "ManifestRecord",
    "PipelineRecord",
    "PollerRecord",
    "QueueRecord",
    "Record",
    "RunRecord",
    "ScheduleRecord",
    "SessionRecord",
    "StageRecord",
    "StepRecord",
    "TokenRecord",
    "TriggerRecord",
]
