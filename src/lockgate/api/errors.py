"""Every error answers ``{"error": {"code", "message", "details"}}`` with a stable code."""

from __future__ import annotations

import asyncio
import secrets
import traceback
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from lockgate.errors import LockgateError

_log = structlog.get_logger("lockgate.api")


#: Codes whose message stays in the server log: clients get the code and a reference.
_PRIVATE = {"store_error", "schema_missing", "no_database", "internal"}


def referenced(status: int, code: str, detail: str) -> JSONResponse:
    """An error whose detail (SQL, driver text, a traceback) is for the server log only:
    the client gets its code and a reference to quote."""
    ref = secrets.token_hex(6)
    _log.error("request failed", code=code, ref=ref, detail=detail)
    what = "the database is unavailable" if status == 503 else "internal error"
    return error(status, code, f"{what}; reference {ref} in the server log", {"ref": ref})


def denied(request: Request, actor: str, reason: str) -> None:
    """Audit a refused request (rate-limited by the token service)."""
    client = request.client.host if request.client else None
    route = f"{request.method} {request.url.path}"
    request.app.state.lockgate.tokens.denied(actor, route, client, reason)


def error(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    """The one error shape."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


def install(api: FastAPI) -> None:
    """Map lockgate's errors, validation errors and HTTP errors to the error shape."""

    @api.exception_handler(LockgateError)
    async def lockgate_error(request: Request, exc: LockgateError) -> JSONResponse:
        status = exc.http_status
        if status in (401, 403):
            caller = getattr(request.state, "caller", None)
            actor = caller.name if caller is not None else "anonymous"
            await asyncio.to_thread(denied, request, actor, exc.message)
        if exc.code in _PRIVATE or status >= 500:
            return referenced(status, exc.code, exc.message)
        return error(status, exc.code, exc.message, exc.details)

    @api.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
            for e in exc.errors()
        ]
        return error(422, "invalid_request", "; ".join(problems), {"problems": problems})

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        code = codes.get(exc.status_code, "http_error")
        return error(exc.status_code, code, str(exc.detail))

    @api.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return referenced(500, "internal", "".join(traceback.format_exception(exc)))
