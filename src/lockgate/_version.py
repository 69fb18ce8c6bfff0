"""The package version (one place: the package, the API and traces read it)."""

__version__ = "0.1.0"
