"""The :class:`~lockgate.client.Client` over REST: what the CLI uses when LOCKGATE_URL is set."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import httpx

from lockgate import errors
from lockgate.channels.pipeline import canonical
from lockgate.channels.service import StageManifest
from lockgate.core.cursor import encode_cursor
from lockgate.records import (
    ApprovalRecord,
    DecisionRecord,
    DecisionResult,
    DeploymentRecord,
    EventRecord,
    LogRecord,
    ManifestRecord,
    PipelineRecord,
    RunRecord,
    StageRecord,
)
from lockgate.views import PendingApproval, RunView


def _raise(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        err = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        raise errors.LockgateError(
            f"the server answered {response.status_code}: {response.text[:200]}"
        ) from None
    code, message, details = err.get("code"), err.get("message", ""), err.get("details")
    if code == "invalid_params":
        raise errors.ParamsError((details or {}).get("problems") or [message])
    cls = errors.LockgateError.by_code.get(code or "", errors.LockgateError)
    raised = cls(message, details=details)
    raised.code = code or raised.code
    raise raised


class RestClient:
    """Talks to ``lockgate server`` at ``url`` with a bearer ``token``."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, f"/api/v1{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise errors.StoreError(f"cannot reach the lockgate server: {exc}") from exc
        _raise(response)
        return response.json()

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
    ) -> RunRecord:
        """Start a run (``requested_by`` and ``actor`` are the token's subject, whatever is
        passed: the server audits it)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = {"pipeline": name, "params": params or {}, "namespace": namespace, "dry_run": noop}
        return RunRecord(**self._call("POST", "/runs", json=body, headers=headers))

    def get_run(self, run_id: str) -> RunView:
        """A run with its steps, their attempts, and its errors."""
        return RunView.from_dict(self._call("GET", f"/runs/{run_id}"))

    def list_runs(
        self,
        *,
        status: str | None = None,
        pipeline: str | None = None,
        limit: int = 50,
        **_: Any,
    ) -> list[RunRecord]:
        """Runs, newest first."""
        query = {
            "limit": limit,
            **({"status": status} if status else {}),
            **({"pipeline": pipeline} if pipeline else {}),
        }
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

    def pipelines(self) -> list[PipelineRecord]:
        """Registered pipelines."""
        return [PipelineRecord(**p) for p in self._call("GET", "/pipelines")]

    def pipeline_versions(self, name: str) -> list[PipelineRecord]:
        """The newest registered version of ``name``."""
        return [PipelineRecord(**self._call("GET", f"/pipelines/{name}"))]

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

    def approvals(
        self, *, limit: int = 100, before: tuple[float, str, str] | None = None
    ) -> list[PendingApproval]:
        """Approval steps waiting for decisions, oldest first."""
        query: dict[str, Any] = {"limit": limit}
        if before is not None:
            query["cursor"] = encode_cursor(*before)
        pending = []
        for item in self._call("GET", "/approvals", params=query)["approvals"]:
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
            decisions = [DecisionRecord(**d) for d in item["decisions"]]
            pending.append(PendingApproval(run, approval, decisions))
        return pending

    @property
    def channels(self) -> RestChannels:
        """Channels over REST."""
        return RestChannels(self)

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
