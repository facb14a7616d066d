"""`scripts/bench-ray`: `indexer build --engine ray` with 1 and 2 model actors against the
single-process build, on the same articles in one run.

Builds the first --documents SciFact documents (real text, default model and options)
three ways and prints, for each, passages/s for the whole build and whether its vectors
are bit-identical to the single-process build's. Each Ray build starts its own local
cluster (that start-up is included: it is what a user waits for).

    scripts/bench-ray [--documents 600] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tools.bench import SCIFACT, corpus_articles


def _vectors(index: Path) -> np.ndarray:
    import faiss

    from search.index import store
    from search.index.generations import current
    from search.index.sentence_vectors import SentenceVectors

    directory = current(index)
    flat = faiss.read_index(str(directory / store.VECTORS))
    inner = faiss.downcast_index(flat.index) if hasattr(flat, "index") else flat
    return np.vstack([inner.reconstruct_n(0, inner.ntotal), SentenceVectors.open(directory).rows(slice(None))])


def bench_ray(documents: int, corpus: Path, work: Path) -> dict:
    from indexer import BuildOptions, build
    from search.embedding.embedder import get_embedder

    articles = corpus_articles(corpus, documents, work / "articles.jsonl")
    get_embedder().embed(["load the model before the clock starts"])
    options = BuildOptions(vector_index="flat")  # exact: vectors compare as stored
    runs, reference = {}, None
    for label, engine, actors in (("local", "local", None), ("ray_1_actor", "ray", 1), ("ray_2_actors", "ray", 2)):
        started = time.perf_counter()
        summary = build([articles], work / label, options=options, engine=engine, actors=actors)
        seconds = time.perf_counter() - started
        vectors = _vectors(work / label)
        reference = vectors if reference is None else reference
        runs[label] = {"seconds": round(seconds, 1), "passages_per_s": round(summary.passages / seconds, 1),
                       "identical_to_local": bool(np.array_equal(vectors, reference))}
        print(f"{label}: {summary}", file=sys.stderr)
    return {"documents": documents, "passages": summary.passages, "runs": runs,
            "speedup_2_vs_1_actor": round(runs["ray_2_actors"]["passages_per_s"] / runs["ray_1_actor"]["passages_per_s"], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-ray", description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=600)
    parser.add_argument("--corpus", type=Path, default=SCIFACT)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as work:
        result = bench_ray(args.documents, args.corpus, Path(work))
    if args.json:
        print(json.dumps(result))
    else:
        for label, run in result["runs"].items():
            print(f"{label:14s} {run['passages_per_s']:7.1f} passages/s  {run['seconds']:7.1f} s  "
                  f"identical to local: {run['identical_to_local']}")
        print(f"2 actors vs 1: {result['speedup_2_vs_1_actor']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
