"""Offline index builds: `python -m indexer build SRC... --index DIR`."""

from .build import BuildOptions, BuildSummary, build

__all__ = ["build", "BuildOptions", "BuildSummary"]
