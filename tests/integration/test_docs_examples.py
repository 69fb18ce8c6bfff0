"""The docs' curl examples work as written, against a real server."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import httpx
from api_support import Served

DOCS = Path(__file__).resolve().parents[2] / "docs"


def curl_commands(text: str) -> list[list[str]]:
    """The ``curl`` commands of a page's shell blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        pending = ""
        for line in block.replace("\\\n", " ").splitlines():
            pending += line + "\n"
            try:
                words = shlex.split(pending, comments=True)
            except ValueError:
                continue  # a quote spans lines: read on
            pending = ""
            if words and words[0] == "curl":
                commands.append(words[1:])
    return commands


def as_request(args: list[str], base: str, tokens: dict[str, str]) -> httpx.Request:
    """What curl would send: ``-X``, ``-H`` and ``-d`` (curl's default method with -d is
    POST, and without ``-H Content-Type`` its body is form-encoded)."""
    method, url, headers, data = "GET", "", {}, None
    it = iter(args)
    for word in it:
        if word == "-X":
            method = next(it)
        elif word == "-H":
            name, _, value = next(it).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            data = next(it)
            method = "POST" if method == "GET" else method
        else:
            url = word
    headers.setdefault("Content-Type", "application/x-www-form-urlencoded") if data else None
    for role, token in tokens.items():
        for name, value in headers.items():
            headers[name] = value.replace(f"${role.upper()}", token)
    url = url.replace("http://lockgate:8080", base)
    return httpx.Request(method, url, headers=headers, content=data)


async def test_trigger_examples_work_as_written(served: Served) -> None:
    """Every curl command in docs/triggers.md succeeds against a real server."""
    commands = curl_commands((DOCS / "triggers.md").read_text())
    assert len(commands) >= 4
    async with httpx.AsyncClient() as client:
        for args in commands:
            answer = await client.send(as_request(args, served.base, served.tokens))
            assert answer.is_success, (args, answer.status_code, answer.text)
