"""Dense search beside the passages added since the last merge: held flat in memory (as
every update's segment is until a fold), or folded and coded in the base's IVF clusters
(as a fold beside an IVF base writes them once they hold 5,000: indexer/update.py).

    scripts/bench-folds --index DIR [--deltas 1000,5000,20000] [--rounds 5] [--json]

DIR is an IVF index (`scripts/bench --sizes 100000 --work W` writes one at
W/index-100000). For each size N, N vectors near the index's own (stored vectors with a
little noise) stand for N passages added since the last merge. The bench's questions are
asked of the base with them, at the searcher's depth (1,000): all N flat in memory, and
N - 200 coded with the last 200 flat (the updates since the last fold), alternated round
by round. Reported: the median µs of a dense search each way and of the base alone, how
many of the top 10 the two share (the coded search is approximate, as the base's is), and
the CPU of folding them: assigning and coding N - 200 vectors, against carrying codes a
fold already made.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from tools.progress import say

DEPTH = 1000
SINCE_FOLD = 200  # passages of the updates since the last fold, flat in memory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-folds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", required=True, help="an IVF index directory")
    parser.add_argument("--deltas", default="1000,5000,20000", help="passages added since the last merge, sizes")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        sizes = [int(n) for n in args.deltas.split(",")]
        if any(n <= SINCE_FOLD for n in sizes) or args.rounds < 1:
            raise ValueError
    except ValueError:
        print(f"bench-folds: --deltas takes sizes above {SINCE_FOLD}, separated by commas, and --rounds "
              f"a positive number", file=sys.stderr)
        return 2
    from search.errors import SearchError

    try:
        result = bench(Path(args.index), sizes, args.rounds)
    except SearchError as e:  # no index there: what is wrong, not a traceback
        print(f"bench-folds: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"base alone: {result['base_us']:.0f} µs a dense search")
        for row in result["sizes"]:
            print(f"{row['deltas']:>7,} passages: flat {row['flat_us']:.0f} µs, coded {row['coded_us']:.0f} µs, "
                  f"top-10 shared {row['top10_shared']:.3f}; folding them {row['fold_code_ms']:.0f} ms, "
                  f"carried {row['fold_carry_ms']:.0f} ms")
    return 0


def bench(index: Path, sizes: list[int], rounds: int) -> dict:
    import faiss

    from search import Searcher
    from search.index import vector_index
    from search.index.segments import Layout, Segment, SegmentedVectors
    from search.index.vector_store import FaissStore
    from tools.bench import question_texts

    searcher = Searcher.open(index)
    base = searcher._base_vectors
    ivf = faiss.try_extract_index_ivf(base.index)
    if ivf is None:
        raise SystemExit(f"bench-folds: {index} is not an IVF index (a build of over 50,000 passages is)")
    queries = searcher.embedder.embed(question_texts())
    count, nothing = int(ivf.ntotal), np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(0)

    whole = Segment("", (0, count), (0, 0), (0, 0))
    alone = SegmentedVectors([base], Layout((whole,), nothing, nothing))

    def stores(*parts):
        """A searcher's view of the base and `parts` ((first id, end, index) each), the last in memory."""
        spans = [whole] + [Segment(f"s{n}", (a, b), (0, 0), (0, 0)) for n, (a, b, _) in enumerate(parts)]
        opened = SegmentedVectors([base] + [FaissStore(i) for _, _, i in parts], Layout(tuple(spans), nothing, nothing))
        opened.in_memory = (), parts[-1][2]
        return opened

    def timed(vectors) -> float:
        started = time.perf_counter()
        for query in queries:
            vectors.search(query[None], DEPTH)
        return (time.perf_counter() - started) / len(queries) * 1e6

    out = {"index": str(index), "passages": count, "nlist": int(ivf.nlist), "nprobe": int(ivf.nprobe),
           "questions": len(queries), "rounds": rounds, "sizes": []}
    base_times = []
    for n in sizes:
        say(f"{n:,} passages since the last merge")
        vectors = base.vectors(rng.integers(0, count, n)) + rng.standard_normal((n, ivf.d)).astype(np.float32) * 0.03
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = np.arange(count, count + n, dtype=np.int64)
        flat = faiss.IndexIDMap2(faiss.IndexFlatIP(ivf.d))
        flat.add_with_ids(vectors, ids)
        cpu = time.process_time()
        coded = vector_index.trained_like(ivf)
        coded.add_with_ids(vectors[:-SINCE_FOLD], ids[:-SINCE_FOLD])
        code_ms = (time.process_time() - cpu) * 1000
        cpu = time.process_time()
        vector_index.add_coded(vector_index.trained_like(ivf), coded)
        carry_ms = (time.process_time() - cpu) * 1000
        recent = faiss.IndexIDMap2(faiss.IndexFlatIP(ivf.d))
        recent.add_with_ids(vectors[-SINCE_FOLD:], ids[-SINCE_FOLD:])
        before = stores((count, count + n, flat))
        after = stores((count, count + n - SINCE_FOLD, coded), (count + n - SINCE_FOLD, count + n, recent))
        for way in (before, after):  # warm
            timed(way)
        flat_us, coded_us = [], []
        for r in range(rounds):
            for way, times in ((before, flat_us), (after, coded_us))[::1 if r % 2 == 0 else -1]:
                times.append(timed(way))
            base_times.append(timed(alone))
        shared = np.mean([len(set(before.search(q[None], 10)[1][0].tolist())
                              & set(after.search(q[None], 10)[1][0].tolist())) / 10 for q in queries])
        out["sizes"].append({"deltas": n, "flat_us": round(statistics.median(flat_us), 1),
                             "coded_us": round(statistics.median(coded_us), 1), "top10_shared": round(float(shared), 3),
                             "fold_code_ms": round(code_ms, 1), "fold_carry_ms": round(carry_ms, 1)})
    out["base_us"] = round(statistics.median(base_times), 1)
    return out


if __name__ == "__main__":
    sys.exit(main())
