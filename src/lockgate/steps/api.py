"""``api``: call an HTTP API, check the status, capture fields of the JSON response.

Behind an SSRF guard (``steps/ssrf.py``): only http/https, no private, loopback or
link-local addresses unless allowed in settings, the resolved address pinned for the call,
redirects off (or re-checked at every hop), and the response size capped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import Field, field_validator

from lockgate.core.context import StepContext
from lockgate.core.masking import redact_keys
from lockgate.core.templates import render
from lockgate.errors import StepError, StepTimeout
from lockgate.settings import credential_key
from lockgate.steps import ssrf
from lockgate.steps.base import KindConfig, StepKind

MAX_REDIRECTS = 5
_LEADING = re.compile(r"^\$\{[^}]*\}")
#: Responses up to this size are kept whole in the step's output as ``json``.
KEEP_JSON_BYTES = 64 * 1024


class ApiConfig(KindConfig):
    """One HTTP request."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str = Field(
        description="A leading placeholder is the base URL; others are percent-encoded."
    )
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str | int | float | bool] = Field(default_factory=dict)
    body: Any = Field(default=None, description="Sent as JSON.")
    expect_status: list[int] | None = Field(
        default=None, description="Statuses that count as success; default: any 2xx."
    )
    capture: dict[str, str] = Field(
        default_factory=dict, description="Output name -> dotted path in the JSON response."
    )
    timeout: float = Field(default=30.0, gt=0, le=3600, description="Seconds per request.")
    follow_redirects: bool = False
    log_bodies: bool = Field(
        default=True,
        description="Log an excerpt (2 KiB) of the request and response bodies, with "
        "values under credential-like keys masked; false logs the request line and the "
        "status only.",
    )
    max_response_bytes: int = Field(default=1024 * 1024, gt=0, le=64 * 1024 * 1024)

    @field_validator("headers")
    @classmethod
    def _no_line_breaks(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if any(c in name + text for c in "\r\n\0"):
                raise ValueError(f"header {name!r} contains a line break or NUL")
        return value


def url_component(value: Any) -> str:
    """How a value lands inside a URL: percent-encoded, nothing left special."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if text and set(text) == {"."}:  # "." and ".." would climb the path once resolved
        return "%2E" * len(text)
    return quote(text, safe="")


class ApiKind(StepKind):
    """Call an HTTP API."""

    name = "api"
    config = ApiConfig

    def check_placeholders(
        self, raw_config: Mapping[str, Any], params: Mapping[str, Any]
    ) -> list[tuple[str, str]]:
        """A param that opens the URL is its base, so it must be declared as a URL."""
        url = raw_config.get("url")
        base = _LEADING.match(url) if isinstance(url, str) else None
        if base is None:
            return []
        name = base.group(0)[2:-1].strip()
        spec = params.get(name)
        if "." in name or not isinstance(spec, Mapping) or spec.get("format") == "url":
            return []  # a step output or a secret, or a declared URL
        return [
            (
                "url",
                f"${{{name}}} opens the URL, so it is its base: declare param {name!r} "
                "with format: url",
            )
        ]

    def render(self, field: str, template: Any, scope: Mapping[str, Any]) -> Any:
        """In ``url``, a placeholder that opens the URL is its base and stays as it is;
        every other placeholder is percent-encoded as one path or query component."""
        if field != "url" or not isinstance(template, str):
            return super().render(field, template, scope)
        base = _LEADING.match(template)
        if base is None:
            return render(template, scope, url_component)
        head = render(base.group(0), scope)
        return f"{head}{render(template[base.end() :], scope, url_component)}"

    async def execute(self, ctx: StepContext, config: ApiConfig, value: Any) -> Any:
        """Send the request; ``{"status", "json"?, <captures>}`` is the step's output."""
        if ctx.noop:
            ctx.log.info("would %s %s", config.method, config.url)
            return {"status": None, "noop": True}
        response, body = await _send(ctx, config)
        expected = config.expect_status
        ok = response.status_code in expected if expected else response.is_success
        if not ok:
            excerpt = body[:300].decode(errors="replace")
            want = expected or "2xx"
            raise StepError(
                f"{config.method} {response.request.url.path} answered {response.status_code}, "
                f"expected {want}: {excerpt}"
            )
        output: dict[str, Any] = {"status": response.status_code}
        data = _json(body) if body else None
        if data is not None and len(body) <= KEEP_JSON_BYTES:
            output["json"] = data
        missing = []
        for name, path in config.capture.items():
            found, captured = _dig(data, path)
            if not found:
                missing.append(f"{name} ({path})")
            output[name] = captured
        if missing:
            raise StepError(f"response has no {', '.join(missing)}")
        return output


#: Headers that carry credentials whatever their value.
_CREDENTIAL_HEADERS = {"authorization", "proxy-authorization", "cookie"}


def _without_credentials(headers: dict[str, str], secrets: Iterable[str]) -> dict[str, str]:
    """``headers`` less credentials: the usual ones, and any that holds a secret's value."""
    values = [s for s in secrets if s]
    return {
        name: value
        for name, value in headers.items()
        if name.lower() not in _CREDENTIAL_HEADERS and not any(s in value for s in values)
    }


async def _send(ctx: StepContext, config: ApiConfig) -> tuple[httpx.Response, bytes]:
    # The step's query joins the URL's own (httpx would replace it).
    url: str | httpx.URL = httpx.URL(config.url).copy_merge_params(config.query)
    method = config.method
    origin: tuple[str, str, int | None] | None = None
    sent = dict(config.headers)
    async with httpx.AsyncClient(timeout=config.timeout, trust_env=False) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            target = await ssrf.check(url, ctx.settings.api_allow)
            here = (target.url.scheme, target.host.lower(), target.url.port)
            if origin is None:
                origin = here
            elif sent and (here[1:] != origin[1:] or (origin[0], here[0]) == ("https", "http")):
                # Another origin, or https -> http: credentials stay behind, as browsers do.
                kept = _without_credentials(sent, ctx.secrets.values())
                if kept != sent:
                    dropped = ", ".join(sorted(set(sent) - set(kept)))
                    ctx.log.warning("redirected to another origin: not sending %s", dropped)
                sent = kept
            headers = {
                "Host": target.url.netloc.decode(),
                "Idempotency-Key": ctx.idempotency_key,
                **sent,
            }
            if ctx.traceparent is not None and "traceparent" not in {h.lower() for h in sent}:
                headers["traceparent"] = ctx.traceparent  # the service's spans join the run's
            extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
            request = client.build_request(
                method,
                target.pinned,
                json=config.body if config.body is not None and method != "GET" else None,
                headers=headers,
                extensions=extensions,
            )
            ctx.log.info("%s %s", method, target.url)
            if request.content and config.log_bodies:
                ctx.log.info("request body: %s", _excerpt(request.content))
            try:
                response = await client.send(request, stream=True)
                try:
                    if response.is_redirect and config.follow_redirects:
                        url = target.url.join(response.headers["location"])
                        method = "GET" if response.status_code == 303 else method
                        ctx.log.info("redirected (%s) to %s", response.status_code, url)
                        continue
                    body = await _read(response, config.max_response_bytes)
                finally:
                    await response.aclose()
            except httpx.TimeoutException as exc:
                raise StepTimeout(
                    f"{method} {target.host} timed out after {config.timeout:g}s"
                ) from exc
            except httpx.HTTPError as exc:
                raise StepError(f"{method} {target.host} failed: {exc}") from exc
            ctx.log.info("answered %s (%d bytes)", response.status_code, len(body))
            if body and config.log_bodies:
                ctx.log.info("response body: %s", _excerpt(body))
            return response, body
    raise StepError(f"more than {MAX_REDIRECTS} redirects")


async def _read(response: httpx.Response, limit: int) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body.extend(chunk)
        if len(body) > limit:
            raise StepError(f"response larger than {limit} bytes")
    return bytes(body)


#: How much of a request or response body the step log shows.
LOG_EXCERPT = 2048


def _excerpt(data: bytes) -> str:
    """What the log shows of a body: JSON with the values under credential-like keys
    masked (a token the called API returned is no configured secret), cut at 2 KiB."""
    parsed = _json(data)
    if isinstance(parsed, dict | list):
        data = json.dumps(redact_keys(parsed), separators=(",", ":")).encode()
    text = data[:LOG_EXCERPT].decode(errors="replace")
    if not isinstance(parsed, dict | list):  # a form body: access_token=...&
        text = _FORM_FIELD.sub(lambda m: f"{m[1]}=***" if credential_key(m[1]) else m[0], text)
    return text + (f"... ({len(data)} bytes)" if len(data) > LOG_EXCERPT else "")


#: ``name=value`` in a form-encoded body.
_FORM_FIELD = re.compile(r"([^&=\s]+)=([^&\s]*)")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _dig(data: Any, path: str) -> tuple[bool, Any]:
    current = data
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return False, None
    return True, current
