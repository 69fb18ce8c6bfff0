"""Declarative pipelines: YAML or JSON files -> core Pipeline objects."""

from lockgate.specs.document import Problem, SpecError
from lockgate.specs.loader import load_file

__all__ = ["Problem", "SpecError", "load_file"]
