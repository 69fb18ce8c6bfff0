"""Find the pipelines defined in Python files, packages, directories or dotted modules."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

from lockgate.core.pipeline import Pipeline
from lockgate.errors import DefinitionError


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
        sys.path.insert(0, parent)  # let the file import its neighbours
    try:
        spec.loader.exec_module(module)
    except DefinitionError as exc:
        raise DefinitionError(f"{path}: {exc.message}") from exc
    except Exception as exc:
        raise DefinitionError(f"{path}: import failed: {exc.__class__.__name__}: {exc}") from exc
    return module


def _modules(target: str) -> list[ModuleType]:
    path = Path(target)
    if path.is_file():
        return [_module_from_file(path)]
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


def load_pipelines(targets: list[str]) -> list[Pipeline]:
    """Every module-level :class:`Pipeline` in the given files, directories or modules."""
    found: dict[str, Pipeline] = {}
    for target in targets:
        for module in _modules(target):
            for value in vars(module).values():
                if isinstance(value, Pipeline):
                    if value.key in found and found[value.key] is not value:
                        raise DefinitionError(
                            f"{target}: pipeline {value.key!r} is defined more than once"
                        )
                    found[value.key] = value
    return list(found.values())
