"""The :class:`~lockgate.client.Client` over REST: what the CLI uses when LOCKGATE_URL is set."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx

from lockgate import errors
from lockgate.client.http import error_of, raise_for
from lockgate.client.rest_access import RestSessions, RestTokens
from lockgate.client.rest_channels import RestChannels
from lockgate.client.rest_triggers import RestDeliveries, RestTriggers, RestWebhooks
from lockgate.core.cursor import encode_cursor
from lockgate.records import (
    ApprovalRecord,
    AuditRecord,
    DecisionRecord,
    DecisionResult,
    EventRecord,
    LogRecord,
    PipelineRecord,
    PollerRecord,
    QueueRecord,
    RunRecord,
    ScheduleRecord,
)
from lockgate.records.views import PendingApproval, RunView
from lockgate.triggers.catalog import POLLERS, QUEUES, SCHEDULES, WEBHOOKS
from lockgate.triggers.pollers import PollerSpec
from lockgate.triggers.queues import QueueSpec
from lockgate.triggers.schedules import ScheduleSpec

R = TypeVar("R")


class RestClient:
    """Talks to ``lockgate server`` at ``url`` with a bearer ``token``."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        self._has_token = bool(token)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, f"/api/v1{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise errors.StoreError(f"cannot reach the lockgate server: {exc}") from exc
        try:
            raise_for(response)
        except errors.Unauthorized as exc:
            # Said for the person at the command line, not for an HTTP client.
            if not self._has_token:
                raise errors.Unauthorized(
                    "the server needs a token: set LOCKGATE_TOKEN (or pass --token); "
                    "`lockgate tokens create` on the server's database makes one"
                ) from None
            raise errors.Unauthorized(
                f"the server refused LOCKGATE_TOKEN: {exc.message} (it was revoked, or is "
                "not one of this server's tokens)"
            ) from None
        return response

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def _call_empty(self, method: str, path: str, **kwargs: Any) -> None:
        """A call answered with no body (204)."""
        self._request(method, path, **kwargs)

    def start_run(
        self,
        name: str,
        params: Any = None,
        *,
        namespace: str = "default",
        noop: bool = False,
        idempotency_key: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        """Start a run, requested by the token's subject."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = {"pipeline": name, "params": params or {}, "namespace": namespace, "dry_run": noop}
        if context is not None:
            body["context"] = dict(context)
        return RunRecord(**self._call("POST", "/runs", json=body, headers=headers))

    def get_run(self, run_id: str) -> RunView:
        """A run with its steps, their attempts, and its errors."""
        return RunView.from_dict(self._call("GET", f"/runs/{run_id}"))

    def list_runs(
        self,
        *,
        status: str | None = None,
        pipeline: str | None = None,
        namespace: str | None = None,
        requested_by: str | None = None,
        since: float | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Runs, newest first; ``before``: ``(created_at, id)`` of the previous page's last."""
        filters = {
            "status": status,
            "pipeline": pipeline,
            "namespace": namespace,
            "requested_by": requested_by,
            "since": since,
        }
        query: dict[str, Any] = {
            "limit": limit,
            **{k: v for k, v in filters.items() if v is not None and v != ""},
        }
        if before is not None:
            query["cursor"] = encode_cursor(*before)
        return [RunRecord(**r) for r in self._call("GET", "/runs", params=query)["runs"]]

    def events(self, run_id: str, after: int = 0) -> list[EventRecord]:
        """A run's events."""
        return [
            EventRecord(**e)
            for e in self._call("GET", f"/runs/{run_id}/events", params={"after": after})
        ]

    def logs(self, run_id: str, step: str | None = None, after: int = 0) -> list[LogRecord]:
        """A run's log lines after line id ``after``."""
        query: dict[str, Any] = {"after": after, **({"step": step} if step else {})}
        return [
            LogRecord(**line) for line in self._call("GET", f"/runs/{run_id}/logs", params=query)
        ]

    def stream_logs(self, run_id: str, step: str | None = None) -> Iterator[LogRecord]:
        """Log lines as they are written, until the run ends (server-sent events)."""
        query = {"step": step} if step else {}
        with self._http.stream(
            "GET", f"/api/v1/runs/{run_id}/logs/stream", params=query, timeout=None
        ) as response:
            if not response.is_success:
                response.read()
                raise_for(response)
            event = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event == "log":
                    yield LogRecord(**json.loads(line.removeprefix("data: ")))

    def cancel_run(self, run_id: str) -> RunRecord:
        """Cancel a run (as the token's subject)."""
        return RunRecord(**self._call("POST", f"/runs/{run_id}/cancel"))

    def rerun(
        self,
        run_id: str,
        *,
        latest: bool = False,
    ) -> RunRecord:
        """Run a finished run again (as the token's subject)."""
        return RunRecord(**self._call("POST", f"/runs/{run_id}/rerun", json={"latest": latest}))

    def pipelines(self) -> list[PipelineRecord]:
        """Registered pipelines."""
        return [PipelineRecord(**p) for p in self._call("GET", "/pipelines")]

    def pipeline_versions(self, name: str) -> list[PipelineRecord]:
        """Every registered version of ``name``, newest first."""
        return [PipelineRecord(**p) for p in self._call("GET", f"/pipelines/{name}/versions")]

    def decide(
        self,
        run_id: str,
        decision: str,
        *,
        step: str | None = None,
        comment: str | None = None,
        input: Mapping[str, Any] | None = None,
    ) -> DecisionResult:
        """Decide as the token's subject, with its role."""
        body = {
            "decision": decision,
            "step": step,
            "comment": comment,
            "input": dict(input) if input else None,
        }
        data = self._call("POST", f"/runs/{run_id}/decisions", json=body)
        settled, outcome = data.pop("settled"), data.pop("outcome")
        return DecisionResult(DecisionRecord(**data), settled, outcome)

    def decide_many(
        self,
        run_ids: Sequence[str],
        decision: str,
        *,
        step: str | None = None,
        comment: str | None = None,
        input: Mapping[str, Any] | None = None,
    ) -> list[DecisionResult | errors.LockgateError]:
        """Decide on many runs at once as the token's subject; each run's answer or the
        error that refused it."""
        body = {
            "runs": list(run_ids),
            "decision": decision,
            "step": step,
            "comment": comment,
            "input": dict(input) if input else None,
        }
        answers: list[DecisionResult | errors.LockgateError] = []
        for item in self._call("POST", "/decisions", json=body)["results"]:
            if item.get("error") is not None:
                answers.append(error_of(item["error"]))
                continue
            item.pop("error", None)
            settled, outcome = item.pop("settled"), item.pop("outcome")
            answers.append(DecisionResult(DecisionRecord(**item), settled, outcome))
        return answers

    def resolve(
        self,
        run_id: str,
        action: str,
        *,
        comment: str | None = None,
    ) -> DecisionResult:
        """Retry, skip or roll back a failed step (as the token's subject)."""
        body = {"action": action, "comment": comment}
        data = self._call("POST", f"/runs/{run_id}/resolve", json=body)
        settled, outcome = data.pop("settled"), data.pop("outcome")
        return DecisionResult(DecisionRecord(**data), settled, outcome)

    def approvals(
        self, *, limit: int = 100, before: tuple[float, str, str] | None = None
    ) -> list[PendingApproval]:
        """Approval steps waiting for decisions, oldest first."""
        query: dict[str, Any] = {"limit": limit}
        if before is not None:
            query["cursor"] = encode_cursor(*before)
        found = self._call("GET", "/approvals", params=query)["approvals"]
        return [self._pending(item) for item in found]

    def approval(self, run_id: str, step: str | None = None) -> PendingApproval | None:
        """A run's latest approval request (or ``step``'s), with the decisions so far."""
        query = {"step": step} if step else {}
        try:
            item = self._call("GET", f"/runs/{run_id}/approval", params=query)
        except errors.RunNotFound:
            raise
        except errors.NotFound:
            return None
        return self._pending(item)

    def _pending(self, item: dict[str, Any]) -> PendingApproval:
        run = self.get_run(item["run_id"]).run
        approval = ApprovalRecord(
            run_id=item["run_id"],
            step=item["step"],
            request=item["request"],
            requested_by=item["requested_by"],
            opened_at=item["opened_at"],
            expires_at=item["expires_at"],
            outcome=item["outcome"],
            settled_by=None,
            settled_at=None,
        )
        return PendingApproval(run, approval, [DecisionRecord(**d) for d in item["decisions"]])

    def audit_log(self, after: int = 0, limit: int = 100) -> list[AuditRecord]:
        """Who did what, oldest first, after entry ``after``."""
        found = self._call("GET", "/audit", params={"after": after, "limit": limit})
        return [AuditRecord(**a) for a in found]

    def prune(self, *, dry_run: bool = False) -> dict[str, int]:
        """Delete the finished runs past their keep time now (``dry_run``: count them)."""
        gone: dict[str, int] = self._call("POST", "/prune", json={"dry_run": dry_run})["runs"]
        return gone

    @property
    def channels(self) -> RestChannels:
        """Channels over REST."""
        return RestChannels(self)

    @property
    def sessions(self) -> RestSessions:
        """Console sessions over REST (an admin token's work)."""
        return RestSessions(self)

    @property
    def tokens(self) -> RestTokens:
        """API tokens over REST (an admin token's work)."""
        return RestTokens(self)

    @property
    def deliveries(self) -> RestDeliveries:
        """What triggers fired, over REST."""
        return RestDeliveries(self)

    @property
    def webhooks(self) -> RestWebhooks:
        """Webhook triggers over REST."""
        return RestWebhooks(self, WEBHOOKS)

    @property
    def schedules(self) -> RestTriggers[ScheduleRecord, ScheduleSpec]:
        """Schedules over REST."""
        return RestTriggers(self, SCHEDULES)

    @property
    def pollers(self) -> RestTriggers[PollerRecord, PollerSpec]:
        """Pollers over REST."""
        return RestTriggers(self, POLLERS)

    @property
    def queues(self) -> RestTriggers[QueueRecord, QueueSpec]:
        """Queue triggers over REST."""
        return RestTriggers(self, QUEUES)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()
