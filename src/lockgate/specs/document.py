"""Reading a pipeline file safely, keeping where every value was written."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from lockgate.errors import SpecError as SpecError  # its home is the one error tree

#: Limits against abuse: a pipeline file is configuration, not data.
MAX_BYTES = 256 * 1024
MAX_DEPTH = 20


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file, where it is."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


def parse(path: Path, text: str | None = None) -> Any:
    """The document in ``path`` (YAML or JSON), refusing tags, aliases and oversized input."""
    name = str(path)
    if text is None:
        try:
            size = path.stat().st_size
            if size > MAX_BYTES:
                raise SpecError([Problem(name, 1, 1, f"file is {size} bytes; at most {MAX_BYTES}")])
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError([Problem(name, 1, 1, f"not UTF-8 text: {exc.reason}")]) from exc
        except OSError as exc:
            raise SpecError([Problem(name, 1, 1, f"cannot read: {exc.strerror}")]) from exc
    if len(text.encode()) > MAX_BYTES:
        raise SpecError([Problem(name, 1, 1, f"document is larger than {MAX_BYTES} bytes")])
    yaml = YAML(typ="rt", pure=True)
    try:
        _screen(yaml, text, name)
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SpecError([Problem(name, line, col, f"invalid YAML: {exc.problem}")]) from exc
    except YAMLError as exc:
        raise SpecError([Problem(name, 1, 1, f"invalid YAML: {exc}")]) from exc
    if not isinstance(data, CommentedMap):
        raise SpecError([Problem(name, 1, 1, "a pipeline file must hold a mapping")])
    return data


def _screen(yaml: YAML, text: str, name: str) -> None:
    """Refuse explicit tags (``!!python/...``), anchors, aliases and deep nesting."""
    depth = 0
    for event in yaml.parse(io.StringIO(text)):
        kind = type(event).__name__
        mark = event.start_mark
        where = (mark.line + 1, mark.column + 1)
        if kind == "AliasEvent" or getattr(event, "anchor", None):
            raise SpecError([Problem(name, *where, "anchors and aliases are not allowed")])
        tag = getattr(event, "tag", None)
        if tag is not None and kind in ("ScalarEvent", "SequenceStartEvent", "MappingStartEvent"):
            raise SpecError([Problem(name, *where, f"tag {tag} is not allowed")])
        if kind in ("SequenceStartEvent", "MappingStartEvent"):
            depth += 1
            if depth > MAX_DEPTH:
                raise SpecError([Problem(name, *where, f"nested deeper than {MAX_DEPTH} levels")])
        elif kind in ("SequenceEndEvent", "MappingEndEvent"):
            depth -= 1


def locate(root: Any, loc: tuple[int | str, ...], *, at_key: bool = False) -> tuple[int, int]:
    """(line, column), 1-based, of the deepest node of ``loc`` that exists in ``root``: the
    value of the last key, or the key itself with ``at_key``."""
    node, where = root, (1, 1)
    for i, part in enumerate(loc):
        if isinstance(node, CommentedMap) and part in node:
            value = i == len(loc) - 1 and not at_key
            line, col = node.lc.value(part) if value else node.lc.key(part)
            where, node = (line + 1, col + 1), node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line, col = node.lc.item(part)
            where, node = (line + 1, col + 1), node[part]
        else:
            break
    return where


def plain(value: Any) -> Any:
    """The document as plain dicts and lists (no ruamel types)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value
