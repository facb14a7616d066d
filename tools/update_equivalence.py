"""`scripts/update-equivalence`: an index grown one article at a time answers as one built at once.

Builds an index of a BEIR corpus without its last --adds documents, adds those one at a
time (`indexer add`'s code path: a segment each, folded and merged by the tiered policy
as they come), merges what is left, and compares the top 10 of every test query with a
fresh build of the whole corpus: the same passages, in the same order. With `--backend
torch` (the default here) a text's vector does not depend on what else is in its batch,
so any difference is the index's; int8 ONNX quantises each batch by its own range.

    scripts/update-equivalence [--corpus ../shared/eval/scifact] [--adds 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tools.bench import ROOT, check_corpus

SCIFACT = ROOT.parent / "shared" / "eval" / "scifact"


def equivalence(dataset: Path, adds: int, backend: str, work: Path, split: str = "test") -> dict:
    from indexer import build
    from indexer.sources import Document
    from indexer.update import update
    from search import Searcher
    from search.embedding.embedder import get_embedder
    from tools.evaluation import load_queries

    records = [json.loads(line) for line in (dataset / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    articles = [{"id": r["_id"], "title": r.get("title") or None, "text": r["text"]} for r in records
                if r.get("text", "").strip()]
    base, later = articles[:-adds], articles[-adds:]
    embedder = get_embedder(backend=backend)
    timings = {}
    for name, chosen in (("fresh", articles), ("updated", base)):
        feed = work / f"{name}.jsonl"
        feed.write_text("".join(json.dumps(a) + "\n" for a in chosen), encoding="utf-8")
        print(f"building {name}: {len(chosen):,} documents", file=sys.stderr)
        started = time.perf_counter()
        build([feed], work / name, embedder=embedder, progress=sys.stderr.isatty())
        timings[f"build_{name}_s"] = round(time.perf_counter() - started, 1)
    print(f"adding {adds:,} documents one at a time", file=sys.stderr)
    started = time.perf_counter()
    merges = folds = 0
    for n, article in enumerate(later, 1):
        summary = update(work / "updated", documents=[Document(doc_id=article["id"], text=article["text"],
                                                               source=article["id"], title=article["title"])],
                         embedder=embedder)
        merges += summary.merged
        if n % 100 == 0:
            print(f"  {n:,} added ({summary.segments} segments)", file=sys.stderr)
    timings["adds_s"] = round(time.perf_counter() - started, 1)
    queries = list(load_queries(dataset, split)[0].values())
    fresh = Searcher.open(work / "fresh")

    def top10(searcher):
        return [[(c.doc_id, c.paragraph, c.start) for h in searcher.search(q, 10) for c in h.citations[:1]]
                for q in queries]

    expected = top10(fresh)
    segmented = top10(Searcher.open(work / "updated"))
    update(work / "updated", merge=True, embedder=embedder)
    merged = top10(Searcher.open(work / "updated"))
    return {"documents": len(articles), "adds": adds, "backend": backend, "queries": len(queries),
            "identical_top10_merged": sum(a == b for a, b in zip(merged, expected)),
            "identical_top10_segmented": sum(a == b for a, b in zip(segmented, expected)),
            "merges_on_the_way": merges, **timings}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="update-equivalence", description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=SCIFACT, help="a BEIR dataset directory")
    parser.add_argument("--adds", type=int, default=1000)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--work", type=Path, help="keep the indexes here (default: a temporary directory)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    check_corpus(parser, args.corpus)
    with tempfile.TemporaryDirectory(prefix="update-equivalence-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        result = equivalence(args.corpus, args.adds, args.backend, work)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['adds']:,} of {result['documents']:,} documents added one at a time: top 10 identical to a "
              f"fresh build for {result['identical_top10_merged']} of {result['queries']} queries after the merge, "
              f"{result['identical_top10_segmented']} before it ({result['backend']})")
    return 0 if result["identical_top10_merged"] == result["queries"] else 1


if __name__ == "__main__":
    sys.exit(main())
