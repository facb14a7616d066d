"""Offline index builds: `python -m indexer build SRC... --index DIR`."""

from .build import BuildOptions, BuildSummary, build, build_in_milvus

__all__ = ["build", "build_in_milvus", "BuildOptions", "BuildSummary"]
