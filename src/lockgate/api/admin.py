"""Admin routes: tokens, console sessions, the audit log and retention."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import Field

from lockgate.access.tokens import Role
from lockgate.api.deps import Admin, Strict

router = APIRouter(prefix="/api/v1")


class TokenBody(Strict):
    """A token to create."""

    name: str = Field(min_length=1, max_length=200)
    role: Role
    subject: str | None = Field(
        None, min_length=1, max_length=200, description="The person or machine (default: name)."
    )


@router.get("/tokens", summary="API tokens (never their secrets)")
def list_tokens(caller: Admin) -> list[dict[str, Any]]:
    return [t.to_dict() for t in caller.client.tokens.list()]


@router.post("/tokens", status_code=201, summary="Create a token; its secret is shown once")
def create_token(body: TokenBody, caller: Admin) -> dict[str, Any]:
    record, secret = caller.client.tokens.create(body.name, body.role.value, subject=body.subject)
    return {**record.to_dict(), "token": secret}


@router.delete("/tokens/{token_id}", summary="Revoke a token")
def revoke_token(token_id: str, caller: Admin) -> dict[str, Any]:
    return caller.client.tokens.revoke(token_id).to_dict()


@router.get("/sessions", summary="Live web console sessions (never their cookies)")
def list_sessions(caller: Admin) -> list[dict[str, Any]]:
    return [session.public() for session in caller.client.sessions.list()]


@router.delete("/sessions/{ref}", summary="End a console session now (by its ref)")
def revoke_session(ref: Annotated[str, Path(max_length=64)], caller: Admin) -> dict[str, Any]:
    return caller.client.sessions.revoke(ref).public()


@router.get("/audit", summary="Who did what: decisions, token use, runs started and cancelled")
def audit_log(
    caller: Admin,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return [a.to_dict() for a in caller.client.audit_log(after, limit)]


class PruneBody(Strict):
    """A retention pass now."""

    dry_run: bool = False


@router.post("/prune", summary="Delete finished runs past their keep time now (or count them)")
def prune(caller: Admin, body: PruneBody | None = None) -> dict[str, Any]:
    dry_run = body.dry_run if body is not None else False
    gone = caller.client.prune(dry_run=dry_run)
    return {"dry_run": dry_run, "runs": gone, "total": sum(gone.values())}
