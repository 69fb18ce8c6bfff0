"""Terminal colours in log lines, turned into CSS classes and never into HTML.

Only SGR sequences (``ESC [ ... m``) are understood: bold, faint, italic, underline and the
8/16 standard colours become ``ansi-*`` classes on spans; every other escape sequence and
control character is dropped. The text itself is always escaped.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_OTHER = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.|[\x00-\x08\x0b-\x1f\x7f\x9b]"
)
_STYLES = {1: "ansi-bold", 2: "ansi-faint", 3: "ansi-italic", 4: "ansi-underline"}


def _apply(codes: list[int], state: dict[str, str]) -> None:
    for code in codes or [0]:
        if code == 0:
            state.clear()
        elif code in _STYLES:
            state[_STYLES[code]] = _STYLES[code]
        elif code in (22, 23, 24):
            for style in {22: ("ansi-bold", "ansi-faint"), 23: ("ansi-italic",)}.get(
                code, ("ansi-underline",)
            ):
                state.pop(style, None)
        elif 30 <= code <= 37 or 90 <= code <= 97:
            state["fg"] = f"ansi-fg-{code}"
        elif code == 39:
            state.pop("fg", None)
        elif 40 <= code <= 47 or 100 <= code <= 107:
            state["bg"] = f"ansi-bg-{code}"
        elif code == 49:
            state.pop("bg", None)


def ansi_html(text: str) -> Markup:
    """``text`` escaped, with its colours as ``<span class="ansi-...">``."""
    out: list[str] = []
    state: dict[str, str] = {}
    pos = 0
    for match in _SGR.finditer(text):
        _emit(out, text[pos : match.start()], state)
        codes = [int(c) for c in match.group(1).split(";") if c.isdigit() and len(c) < 4]
        _apply(codes, state)
        pos = match.end()
    _emit(out, text[pos:], state)
    # Safe: every piece of text went through escape(); the classes are ours.
    return Markup("".join(out))  # noqa: S704


def _emit(out: list[str], chunk: str, state: dict[str, str]) -> None:
    chunk = _OTHER.sub("", chunk)
    if not chunk:
        return
    if state:
        classes = " ".join(sorted(state.values()))
        out.append(f'<span class="{classes}">{escape(chunk)}</span>')
    else:
        out.append(str(escape(chunk)))


def plain(text: str) -> str:
    """``text`` without any escape sequence or control character (downloads, search)."""
    return _OTHER.sub("", _SGR.sub("", text))
