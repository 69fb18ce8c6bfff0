"""Property-based fuzzing of the webhook route: no signed body, however odd, is a 500."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
from api_support import Served
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.triggers.providers import PROVIDERS

SECRET = "fuzzing-secret-0123456789"

#: JSON values: scalars, and lists and objects of them, nested a little or a lot.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=512),
    st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n),
)
headers = st.dictionaries(
    st.sampled_from(["X-GitHub-Event", "X-GitHub-Delivery", "X-Event", "X-Delivery-Id"]),
    st.from_regex(r"[!-~]{0,40}", fullmatch=True),  # what a client may send in a header
    max_size=4,
)


def signed(body: bytes, extra: dict[str, str], provider: str) -> dict[str, str]:
    mac = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    name = "X-Hub-Signature-256" if provider == "github" else "X-Signature"
    return {**extra, name: mac}


def examples(providers: list[str]) -> list[tuple[str, bytes, dict[str, str]]]:
    """Inputs drawn by hypothesis (the server runs on the test's own event loop, so they
    are drawn first and sent after)."""
    found: list[tuple[str, bytes, dict[str, str]]] = []

    @settings(max_examples=150, deadline=None, database=None)
    @given(body=bodies, extra=headers, provider=st.sampled_from(providers))
    def collect(body: bytes, extra: dict[str, str], provider: str) -> None:
        found.append((provider, body, extra))

    collect()
    return found


async def test_signed_webhook_bodies_never_cause_a_server_error(served: Served) -> None:
    """Threat: a crash (500, a traceback) on hostile but correctly signed input. Random
    JSON, random bytes, deep nesting and odd headers, to the GitHub and generic providers:
    every answer is one of 200, 202, 400, 401, 404, 413 or 429."""
    triggers: dict[str, str] = {}
    for provider in ("github", "generic"):
        assert provider in PROVIDERS
        trigger = served.app.webhooks.create(
            provider=provider, pipeline="deploy", secret=SECRET, params={"env": "${event.branch}"}
        )
        triggers[provider] = trigger.id
    codes = set()
    async with httpx.AsyncClient(base_url=served.base, timeout=30) as client:
        for provider, body, extra in examples(sorted(triggers)):
            r = await client.post(
                f"/hooks/{triggers[provider]}", content=body, headers=signed(body, extra, provider)
            )
            codes.add(r.status_code)
            assert r.status_code != 500, (provider, body[:200], extra, r.text)
    assert codes <= {200, 202, 400, 401, 404, 413, 429}, sorted(codes)
    assert 202 in codes or 200 in codes  # some bodies were good enough to start runs


async def test_nan_and_infinity_are_not_json(served: Served) -> None:
    """Python's parser takes ``NaN`` and ``Infinity``; no database's JSON type stores them
    (PostgreSQL refused them mid-insert: a 500). They are a bad payload, answered 400."""
    trigger = served.app.webhooks.create(provider="generic", pipeline="deploy", secret=SECRET)
    async with httpx.AsyncClient(base_url=served.base, timeout=30) as client:
        for body in (b'{"x": NaN}', b"[1, -Infinity]", b'{"y": [Infinity]}'):
            r = await client.post(
                f"/hooks/{trigger.id}", content=body, headers=signed(body, {}, "generic")
            )
            assert r.status_code == 400, (body, r.text)
            assert "is not a JSON value" in r.json()["error"]["message"]
    assert served.app.deliveries.list(trigger.id, 10) == []
