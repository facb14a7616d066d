"""Offline index builds: `python -m indexer build SRC... --index DIR`."""

from .build import BuildSummary, build

__all__ = ["build", "BuildSummary"]
