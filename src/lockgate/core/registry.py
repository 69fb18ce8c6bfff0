"""Which pipelines (and which versions of them) this process can run."""

from __future__ import annotations

from collections.abc import Iterator

from lockgate.core.pipeline import Pipeline
from lockgate.errors import DefinitionError, PipelineNotFound


class Registry:
    """Pipelines by name and by version; a run resumes with the version it started on."""

    def __init__(self) -> None:
        self._current: dict[str, Pipeline] = {}
        self._versions: dict[str, Pipeline] = {}

    def add(self, pipeline: Pipeline) -> None:
        """Register ``pipeline``; an earlier version of it stays runnable for old runs."""
        if not isinstance(pipeline, Pipeline):
            raise DefinitionError(f"{pipeline!r} is not a Pipeline")
        self._current[pipeline.key] = pipeline
        self._versions[pipeline.version] = pipeline

    def get(self, name: str, namespace: str = "default") -> Pipeline:
        """The current version of ``namespace/name``."""
        key = name if "/" in name else f"{namespace}/{name}"
        try:
            return self._current[key]
        except KeyError:
            known = ", ".join(sorted(self._current)) or "none"
            raise PipelineNotFound(f"no pipeline {key!r} is registered (known: {known})") from None

    def version(self, version: str) -> Pipeline | None:
        """The pipeline registered with content hash ``version``, if any."""
        return self._versions.get(version)

    def versions(self) -> list[str]:
        """Every version this registry can run."""
        return sorted(self._versions)

    def __iter__(self) -> Iterator[Pipeline]:
        return iter(sorted(self._current.values(), key=lambda p: p.key))

    def __len__(self) -> int:
        return len(self._current)
