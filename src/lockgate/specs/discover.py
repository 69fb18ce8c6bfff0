"""Discovering definitions: the pipelines and channels in Python files, packages, directories,
dotted modules, and pipeline or channel files (YAML or JSON)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from lockgate.channels.model import Channel
from lockgate.core.pipeline import Pipeline
from lockgate.errors import DefinitionError
from lockgate.specs import Problem, SpecError, load_file
from lockgate.specs.channels import is_channel_file, load_channel_file
from lockgate.specs.document import parse


def _module_from_file(path: Path) -> ModuleType:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
    name = f"lockgate_user_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DefinitionError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    parent = str(path.parent.resolve())
    if parent not in sys.path:
        # Let the file import its neighbours, after everything else: a file there named
        # like a standard or installed module cannot shadow it.
        sys.path.append(parent)
    try:
        spec.loader.exec_module(module)
    except DefinitionError as exc:
        raise DefinitionError(f"{path}: {exc.message}") from exc
    except Exception as exc:
        raise DefinitionError(f"{path}: import failed: {exc.__class__.__name__}: {exc}") from exc
    return module


SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def _modules(target: str) -> list[ModuleType]:
    path = Path(target)
    if path.is_file():
        return [] if path.suffix in SPEC_SUFFIXES else [_module_from_file(path)]
    if path.is_dir():
        files = sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
        return [_module_from_file(p) for p in files]
    if path.suffix == ".py" or "/" in target:
        raise DefinitionError(f"{target}: no such file or directory")
    try:
        module = importlib.import_module(target)
        modules = [module]
        for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
            if not info.name.startswith("_"):
                modules.append(importlib.import_module(f"{target}.{info.name}"))
    except ImportError as exc:
        raise DefinitionError(f"{target}: cannot import module: {exc}") from exc
    return modules


def _spec_files(target: str) -> list[Path]:
    path = Path(target)
    if path.is_file():
        return [path] if path.suffix in SPEC_SUFFIXES else []
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in SPEC_SUFFIXES)
    module = importlib.util.find_spec(target) if "/" not in target else None
    if module is not None and module.submodule_search_locations:
        return [
            p
            for location in module.submodule_search_locations
            for p in sorted(Path(location).iterdir())
            if p.suffix in SPEC_SUFFIXES
        ]
    return []


def load_pipelines(
    targets: list[str], *, secret_names: Callable[[str], bool] = lambda _: True
) -> list[Pipeline]:
    """Every module-level :class:`Pipeline` and every pipeline file in ``targets``."""
    return load_definitions(targets, secret_names=secret_names)[0]


def load_definitions(
    targets: list[str], *, secret_names: Callable[[str], bool] = lambda _: True
) -> tuple[list[Pipeline], list[Channel]]:
    """Every module-level :class:`Pipeline` and :class:`Channel`, and every pipeline or
    channel file, in ``targets``.

    Files report every problem of every file at once (:class:`SpecError`).
    """
    pipelines: dict[str, Pipeline] = {}
    channels: dict[str, Channel] = {}

    def add(value: Pipeline | Channel, where: str) -> None:
        if isinstance(value, Channel):
            if value.name in channels and channels[value.name] is not value:
                raise DefinitionError(f"{where}: channel {value.name!r} is defined more than once")
            channels[value.name] = value
        else:
            if value.key in pipelines and pipelines[value.key] is not value:
                raise DefinitionError(f"{where}: pipeline {value.key!r} is defined more than once")
            pipelines[value.key] = value

    problems: list[Problem] = []
    for target in targets:
        for module in _modules(target):
            for value in vars(module).values():
                if isinstance(value, Pipeline | Channel):
                    add(value, target)
        for path in _spec_files(target):
            try:
                if is_channel_file(parse(path)):
                    add(load_channel_file(path, secret_names=secret_names), str(path))
                else:
                    add(load_file(path, secret_names=secret_names), str(path))
            except SpecError as exc:
                problems.extend(exc.problems)
    if problems:
        raise SpecError(problems)
    return list(pipelines.values()), list(channels.values())
