"""Query latency of the full pipeline against dense retrieval alone, in one run.

    scripts/latency [--index DIR] [--questions FILE | --beir DATASET_DIR --split S] [--rounds N] [--json]

Both are timed on the same questions, interleaved, so machine noise hits them alike;
medians are reported, and their ratio. "Dense alone" is the plain path: encode the
query, take the k nearest passage vectors, fetch their text and citations.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default=str(ROOT / "index"))
    parser.add_argument("--questions", default=str(ROOT / "tests" / "data" / "seed_questions.json"),
                        help="a JSON list of {\"question\": ...} objects")
    parser.add_argument("--beir", metavar="DATASET_DIR",
                        help="ask the queries of a BEIR dataset's --split instead (e.g. ../shared/eval/scifact)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from search import Searcher
    from search.errors import SearchError

    try:
        searcher = Searcher.open(args.index)
    except SearchError as e:  # no index there yet: what to run, not a traceback
        parser.exit(1, f"latency: {e}\n")
    searcher.query_cache_size = 0  # every round encodes again, as dense alone does
    if args.beir:
        from tools.evaluation import load_queries

        questions = list(load_queries(Path(args.beir), args.split)[0].values())
    else:
        questions = [q["question"] for q in json.loads(Path(args.questions).read_text(encoding="utf-8"))]
    def dense_alone(question: str):
        vector = searcher.embedder.embed([question])
        _, ids = searcher._vectors.search(vector, args.k)
        return searcher._passages({int(i) for i in ids[0] if i >= 0})

    variants = {
        "dense": dense_alone,
        "hybrid+collapse+highlight": lambda question: searcher.search(question, args.k),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for question in questions[:3]:  # warm caches and the model's first-call costs
        for run in variants.values():
            run(question)
    for _ in range(args.rounds):
        for question in questions:
            for name, run in variants.items():
                started = time.perf_counter()
                run(question)
                times[name].append((time.perf_counter() - started) * 1000)
    medians = {name: round(statistics.median(t), 3) for name, t in times.items()}
    result = {"queries": len(times["dense"]), "dense_p50_ms": medians["dense"],
              "full_p50_ms": medians["hybrid+collapse+highlight"],
              "ratio": round(medians["hybrid+collapse+highlight"] / medians["dense"], 3)}
    print(json.dumps(result) if args.json else "  ".join(f"{k} {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
