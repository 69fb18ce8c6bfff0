"""The :class:`~lockgate.client.Client` over REST: what the CLI uses when LOCKGATE_URL is set."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from lockgate import errors
from lockgate.client.rest_triggers import RestPollers, RestQueues, RestSchedules, RestWebhooks
from lockgate.core.cursor import encode_cursor
from lockgate.records import (
    ApprovalRecord,
    ChannelRecord,
    DecisionRecord,
    DecisionResult,
    DeliveryRecord,
    DeploymentRecord,
    EventRecord,
    FlipRecord,
    LogRecord,
    ManifestRecord,
    PipelineRecord,
    PollerRecord,
    QueueRecord,
    RunRecord,
    ScheduleRecord,
    SessionRecord,
    StageRecord,
    TokenRecord,
    TriggerRecord,
)
from lockgate.records.views import PendingApproval, RunView, StageManifest, canonical

R = TypeVar("R")


def _raise(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        err = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        raise errors.LockgateError(
            f"the server answered {response.status_code}: {response.text[:200]}"
        ) from None
    raise _error(err)


def _error(err: Mapping[str, Any]) -> errors.LockgateError:
    """The error an ``{"code", "message", "details"}`` answer stands for."""
    code, message, details = err.get("code"), err.get("message", ""), err.get("details")
    if code == "invalid_params":
        return errors.ParamsError((details or {}).get("problems") or [message])
    cls = errors.LockgateError.by_code.get(code or "", errors.LockgateError)
    made = cls(message, details=details)
    made.code = code or made.code
    return made


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
            _raise(response)
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
        requested_by: str | None = None,
        noop: bool = False,
        idempotency_key: str | None = None,
        actor: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        """Start a run (``requested_by`` and ``actor`` are the token's subject, whatever is
        passed: the server audits it)."""
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
                _raise(response)
            event = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event == "log":
                    yield LogRecord(**json.loads(line.removeprefix("data: ")))

    def cancel_run(self, run_id: str, *, by: str | None = None) -> RunRecord:
        """Cancel a run (as the token's name)."""
        return RunRecord(**self._call("POST", f"/runs/{run_id}/cancel"))

    def rerun(
        self,
        run_id: str,
        *,
        latest: bool = False,
        requested_by: str | None = None,
        actor: str | None = None,
    ) -> RunRecord:
        """Run a finished run again (as the token's subject)."""
        return RunRecord(**self._call("POST", f"/runs/{run_id}/rerun", json={"latest": latest}))

    def pipelines(self) -> list[PipelineRecord]:
        """Registered pipelines."""
        return [PipelineRecord(**p) for p in self._call("GET", "/pipelines")]

    def pipeline_versions(self, name: str) -> list[PipelineRecord]:
        """Every registered version of ``name``, newest first."""
        return [PipelineRecord(**p) for p in self._call("GET", f"/pipelines/{name}/versions")]

    def deliveries(
        self, trigger_id: str, limit: int = 100, before: int | None = None
    ) -> list[DeliveryRecord]:
        """Firings of a webhook trigger, a schedule or a poller, newest first."""
        query: dict[str, Any] = {"limit": limit}
        if before is not None:
            query["cursor"] = encode_cursor(before)
        found = self._call("GET", f"/triggers/{trigger_id}/deliveries", params=query)
        return [
            DeliveryRecord(**{k: v for k, v in d.items() if k != "payload_hidden"})
            for d in found["deliveries"]
        ]

    def decide(
        self,
        run_id: str,
        decision: str,
        *,
        by: str,
        roles: Iterable[str] = (),
        step: str | None = None,
        comment: str | None = None,
        input: Mapping[str, Any] | None = None,
    ) -> DecisionResult:
        """Decide as the token's identity and role (``by`` and ``roles`` are ignored)."""
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
        by: str,
        roles: Iterable[str] = (),
        step: str | None = None,
        comment: str | None = None,
        input: Mapping[str, Any] | None = None,
    ) -> list[DecisionResult | errors.LockgateError]:
        """Decide on many runs at once as the token's identity (``by`` and ``roles`` are
        ignored); each run's answer or the error that refused it."""
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
                answers.append(_error(item["error"]))
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
        by: str,
        roles: Iterable[str] = (),
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
    def webhooks(self) -> RestWebhooks:
        """Webhook triggers over REST."""
        return RestWebhooks(self, "triggers", TriggerRecord)

    @property
    def schedules(self) -> RestSchedules:
        """Schedules over REST."""
        return RestSchedules(self, "schedules", ScheduleRecord)

    @property
    def pollers(self) -> RestPollers:
        """Pollers over REST."""
        return RestPollers(self, "pollers", PollerRecord)

    @property
    def queues(self) -> RestQueues:
        """Queue triggers over REST."""
        return RestQueues(self, "queues", QueueRecord)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


class RestChannels:
    """The channel routes, returning the same records as ``App.channels``."""

    def __init__(self, rest: RestClient) -> None:
        self._rest = rest

    def push(
        self,
        channel: str,
        tenant: str,
        content: Any,
        *,
        command: str | None = None,
        requested_by: str | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> DeploymentRecord:
        """Queue a deployment (the server records the token's name as the pusher)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = {"tenant": tenant, "content": content, "command": command}
        found = self._rest._call("POST", f"/channels/{channel}/push", json=body, headers=headers)
        return DeploymentRecord(**found)

    def registered(self) -> list[ChannelRecord]:
        """Every channel registered, by name."""
        found = self._rest._call("GET", "/channels")
        return [ChannelRecord(**{k: v for k, v in c.items() if k != "defined_here"}) for c in found]

    def stages(self, channel: str) -> list[StageRecord]:
        """Every stage's pointer."""
        return [StageRecord(**s) for s in self._rest._call("GET", f"/channels/{channel}/stages")]

    def stage_manifest(self, channel: str, stage: str) -> StageManifest:
        """The manifest a stage serves."""
        try:
            r = self._rest._http.get(f"/api/v1/channels/{channel}/stages/{stage}/manifest")
        except httpx.HTTPError as exc:
            raise errors.StoreError(f"cannot reach the lockgate server: {exc}") from exc
        _raise(r)
        digest = r.headers["etag"].strip('"')
        return StageManifest(channel, stage, int(r.headers["x-manifest-version"]), digest, r.text)

    def manifest(self, channel: str, version: int) -> ManifestRecord:
        """One manifest by version."""
        found = self._rest._call("GET", f"/channels/{channel}/manifests/{version}")
        body, _ = canonical(found.pop("manifest"))  # the text as stored, byte for byte
        return ManifestRecord(**found, body=body)

    def history(
        self, channel: str, *, before: int | None = None, limit: int = 50
    ) -> list[ManifestRecord]:
        """Manifests, newest first."""
        query: dict[str, Any] = {"limit": limit}
        if before is not None:
            query["before"] = before
        found = self._rest._call("GET", f"/channels/{channel}/manifests", params=query)
        return [ManifestRecord(**m, body="") for m in found["manifests"]]

    def deployments(
        self, channel: str, *, before: int | None = None, limit: int = 50
    ) -> list[DeploymentRecord]:
        """Deployments, newest first."""
        query: dict[str, Any] = {"limit": limit}
        if before is not None:
            query["before"] = before
        found = self._rest._call("GET", f"/channels/{channel}/deployments", params=query)
        return [DeploymentRecord(**d) for d in found["deployments"]]

    def deployment(self, deployment_id: str) -> DeploymentRecord:
        """One deployment (any channel)."""
        found = self._rest._call("GET", f"/channels/-/deployments/{deployment_id}")
        found.pop("run", None)
        return DeploymentRecord(**found)

    def rollback_stage(
        self,
        channel: str,
        stage: str,
        version: int,
        *,
        requested_by: str | None = None,
        actor: str | None = None,
    ) -> DeploymentRecord:
        """Queue a stage's rollback (as the token's subject)."""
        path = f"/channels/{channel}/stages/{stage}/rollback"
        return DeploymentRecord(**self._rest._call("POST", path, json={"version": version}))

    def pin(self, channel: str, stage: str, *, actor: str | None = None) -> StageRecord:
        """Stop promotions at a stage."""
        return StageRecord(**self._rest._call("POST", f"/channels/{channel}/stages/{stage}/pin"))

    def unpin(self, channel: str, stage: str, *, actor: str | None = None) -> StageRecord:
        """Let promotions reach a stage again."""
        path = f"/channels/{channel}/stages/{stage}/unpin"
        return StageRecord(**self._rest._call("POST", path))

    def flips(self, channel: str, stage: str | None = None, limit: int = 100) -> list[FlipRecord]:
        """Moves of the channel's stages, newest first."""
        query: dict[str, Any] = {"limit": limit, **({"stage": stage} if stage else {})}
        found = self._rest._call("GET", f"/channels/{channel}/flips", params=query)
        return [FlipRecord(**f) for f in found]

    def create_push_token(self, channel: str, tenant: str, *, actor: str | None = None) -> str:
        """A tenant's push token (replacing its earlier one), shown once."""
        body = {"tenant": tenant}
        made = self._rest._call("POST", f"/channels/{channel}/push-token", json=body)
        return str(made["token"])

    def revoke_push_token(self, channel: str, tenant: str, *, actor: str | None = None) -> None:
        """Revoke a tenant's push token."""
        self._rest._call_empty(
            "DELETE", f"/channels/{channel}/push-token", params={"tenant": tenant}
        )


class RestSessions:
    """The console-session routes, returning what ``App.sessions`` returns (the ref stands
    for the id, which the server never shows)."""

    def __init__(self, rest: RestClient) -> None:
        self._rest = rest

    def list(self) -> list[SessionRecord]:
        """Live sessions, newest first."""
        return [_session(found) for found in self._rest._call("GET", "/sessions")]

    def revoke(self, ref: str, *, actor: str) -> SessionRecord:
        """End a live session now."""
        return _session(self._rest._call("DELETE", f"/sessions/{quote(ref, safe='')}"))


def _session(found: dict[str, Any]) -> SessionRecord:
    return SessionRecord(id=found.pop("ref"), csrf="", **found)


class RestTokens:
    """The token routes, returning what ``App.tokens`` returns."""

    def __init__(self, rest: RestClient) -> None:
        self._rest = rest

    def create(
        self, name: str, role: str, *, subject: str | None = None, actor: str = "local"
    ) -> tuple[TokenRecord, str]:
        """A token and its secret (shown once)."""
        body = {"name": name, "role": role, "subject": subject}
        made = self._rest._call("POST", "/tokens", json=body)
        secret = made.pop("token")
        return TokenRecord(**made, hash=""), secret

    def list(self) -> list[TokenRecord]:
        """Every token, newest first."""
        return [TokenRecord(**t, hash="") for t in self._rest._call("GET", "/tokens")]

    def revoke(self, token_id: str, *, actor: str = "local") -> TokenRecord:
        """Revoke a token."""
        return TokenRecord(**self._rest._call("DELETE", f"/tokens/{token_id}"), hash="")
