"""The current generation of an index directory, written into Milvus once (as `indexer
build --store` writes a build), for the tools that measure an index held there."""

from __future__ import annotations

import sys
from pathlib import Path


def held_in_milvus(index: Path, spec: str) -> str:
    """`spec` (milvus://HOST:PORT/NAME), holding the current generation of `index`: written
    unless the index there is already that build (same build time and inputs)."""
    from indexer import to_milvus
    from search.errors import SearchError
    from search.index import generations, milvus_index, store

    generation = generations.current(index)
    manifest = store.read_manifest(generation)
    try:
        held = milvus_index.read_manifest(spec)
    except SearchError:
        held = {}
    if (held.get("built_at"), held.get("inputs")) == (manifest.get("built_at"), manifest.get("inputs")):
        print(f"{spec} holds {generation} already", file=sys.stderr)
    else:
        print(f"writing {generation} into {spec}", file=sys.stderr)
        to_milvus.write(generation, spec, manifest, progress=sys.stderr.isatty())
    return spec
