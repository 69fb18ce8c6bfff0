"""Terminal colours in log lines, turned into CSS classes and never into HTML (the
console's Content-Security-Policy forbids inline styles).

Only SGR sequences (``ESC [ ... m``) are understood: bold, faint, italic, underline, the 16
standard colours, the 256-colour palette and truecolour (as the nearest palette colour)
become ``ansi-*`` classes on spans; every other escape sequence and control character is
dropped. The text itself is always escaped.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape
from rich.color import Color, ColorSystem, ColorType
from rich.console import Console
from rich.style import Style
from rich.text import Text

_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_OTHER = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.|[\x00-\x08\x0b-\x1f\x7f\x9b]"
)
#: Styles and the classes they become.
_STYLES = (
    ("bold", "ansi-bold"),
    ("dim", "ansi-faint"),
    ("italic", "ansi-italic"),
    ("underline", "ansi-underline"),
)
#: Rendering only splits the text at style changes: no width, no colour system of its own.
_RENDER = Console(width=1_000_000, color_system="truecolor", force_terminal=False)


def _colour(color: Color | None, ground: str, base: int, bright: int) -> str | None:
    """The class of a colour: the 16 standard ones as ``ansi-fg-31``..., the 256-colour
    palette as ``ansi-fg-256-N``, a truecolour one as its nearest in that palette."""
    if color is None or color.type is ColorType.DEFAULT:
        return None
    if color.type is ColorType.TRUECOLOR:
        color = color.downgrade(ColorSystem.EIGHT_BIT)
    number = color.number
    if number is None:
        return None
    if number < 8:
        return f"ansi-{ground}-{base + number}"
    if number < 16:
        return f"ansi-{ground}-{bright + number - 8}"
    return f"ansi-{ground}-256-{number}"


def _classes(style: Style | None) -> str:
    if style is None:
        return ""
    found = [name for attribute, name in _STYLES if getattr(style, attribute)]
    for made in (_colour(style.color, "fg", 30, 90), _colour(style.bgcolor, "bg", 40, 100)):
        if made is not None:
            found.append(made)
    return " ".join(sorted(found))


def ansi_html(text: str) -> Markup:
    """``text`` escaped, with its colours as ``<span class="ansi-...">``: SGR sequences are
    read in full by rich's ANSI decoder (16, 256 and truecolour, the latter to the
    nearest of the 256), and every other escape sequence or control character is dropped
    before it sees them."""
    if "\x1b" not in text:  # most lines: nothing to decode
        return escape(_OTHER.sub("", text))
    pieces: list[str] = []
    pos = 0
    for match in _SGR.finditer(text):
        pieces += [_OTHER.sub("", text[pos : match.start()]), match.group(0)]
        pos = match.end()
    pieces.append(_OTHER.sub("", text[pos:]))
    out: list[str] = []
    for segment in Text.from_ansi("".join(pieces)).render(_RENDER, end=""):
        classes = _classes(segment.style)
        chunk = escape(segment.text)
        out.append(f'<span class="{classes}">{chunk}</span>' if classes else str(chunk))
    # Safe: every piece of text went through escape(); the classes are ours.
    return Markup("".join(out))  # noqa: S704


def plain(text: str) -> str:
    """``text`` without any escape sequence or control character (downloads, search)."""
    return _OTHER.sub("", _SGR.sub("", text))
