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
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tools.bench import ROOT, check_corpus

SCIFACT = ROOT.parent / "shared" / "eval" / "scifact"


def equivalence(dataset: Path, adds: int, backend: str, work: Path, split: str = "test", store: str | None = None,
                documents: int | None = None) -> dict:
    """`store`: grow the index in Milvus there (indexer/milvus_update.py) instead of in a
    directory; `documents`: the corpus's first this many only."""
    from indexer import build, build_in_milvus
    from indexer.sources import Document
    from indexer.update import update
    from search import Searcher
    from search.embedding.embedder import get_embedder
    from tools.evaluation import load_queries

    records = [json.loads(line) for line in (dataset / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    articles = [{"id": r["_id"], "title": r.get("title") or None, "text": r["text"]} for r in records
                if r.get("text", "").strip()]
    articles = articles[:documents] if documents else articles
    base, later = articles[:-adds], articles[-adds:]
    embedder = get_embedder(backend=backend)
    timings = {}
    for name, chosen in (("fresh", articles), ("updated", base)):
        feed = work / f"{name}.jsonl"
        feed.write_text("".join(json.dumps(a) + "\n" for a in chosen), encoding="utf-8")
        print(f"building {name}: {len(chosen):,} documents", file=sys.stderr)
        started = time.perf_counter()
        if store and name == "updated":
            build_in_milvus([feed], store, embedder=embedder, progress=sys.stderr.isatty())
        else:
            build([feed], work / name, embedder=embedder, progress=sys.stderr.isatty())
        timings[f"build_{name}_s"] = round(time.perf_counter() - started, 1)
    grown = store or work / "updated"
    print(f"adding {adds:,} documents one at a time", file=sys.stderr)
    started = time.perf_counter()
    merges = 0
    seconds = []
    for n, article in enumerate(later, 1):
        one = time.perf_counter()
        summary = update(grown, documents=[Document(doc_id=article["id"], text=article["text"],
                                                    source=article["id"], title=article["title"])],
                         embedder=embedder)
        seconds.append(time.perf_counter() - one)
        merges += summary.merged
        if n % 100 == 0:
            print(f"  {n:,} added ({summary.segments} segments)", file=sys.stderr)
    timings["adds_s"] = round(time.perf_counter() - started, 1)
    # what one add costs as the index grows: the first and the last tenth's medians
    tenth = max(1, len(seconds) // 10)
    timings["add_median_first_tenth_s"] = round(statistics.median(seconds[:tenth]), 3)
    timings["add_median_last_tenth_s"] = round(statistics.median(seconds[-tenth:]), 3)
    queries = list(load_queries(dataset, split)[0].values())
    fresh = Searcher.open(work / "fresh")

    def top10(searcher):
        return [[(c.doc_id, c.paragraph, c.start) for h in searcher.search(q, 10) for c in h.citations[:1]]
                for q in queries]

    expected = top10(fresh)
    grown_searcher = Searcher.open(str(grown))
    segmented = top10(grown_searcher)
    result = {"documents": len(articles), "adds": adds, "backend": backend, "queries": len(queries),
              "identical_top10_segmented": sum(a == b for a, b in zip(segmented, expected))}
    if store:  # (an index in Milvus is not merged: a build writes it afresh)
        result["store"] = store
        result["modes"] = _modes(fresh, grown_searcher, dataset, split)
    else:
        update(work / "updated", merge=True, embedder=embedder)
        merged = top10(Searcher.open(work / "updated"))
        result["identical_top10_merged"] = sum(a == b for a, b in zip(merged, expected))
    return {**result, "merges_on_the_way": merges, **timings}


def _modes(fresh, grown, dataset: Path, split: str) -> dict:
    """Per mode: nDCG@10 of both indexes, and for how many queries their top 10 is identical."""
    from tools.evaluation import load_queries, metrics, run_queries

    queries, qrels = load_queries(dataset, split)
    out = {}
    for mode in ("hybrid", "dense", "lexical"):
        runs = [run_queries(s, queries, mode, None) for s in (fresh, grown)]
        tops = [{q: list(r[q])[:10] for q in r} for r in runs]
        out[mode] = {"fresh_ndcg@10": metrics(runs[0], qrels)["ndcg@10"],
                     "grown_ndcg@10": metrics(runs[1], qrels)["ndcg@10"],
                     "identical_top10_documents": sum(tops[0][q] == tops[1][q] for q in queries)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="update-equivalence", description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=SCIFACT, help="a BEIR dataset directory")
    parser.add_argument("--adds", type=int, default=1000)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--work", type=Path, help="keep the indexes here (default: a temporary directory)")
    parser.add_argument("--store", metavar="milvus://HOST:PORT/NAME",
                        help="grow the index in Milvus there (its updates) instead of in a directory")
    parser.add_argument("--documents", type=int, help="the corpus's first this many documents only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    check_corpus(parser, args.corpus)
    with tempfile.TemporaryDirectory(prefix="update-equivalence-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        result = equivalence(args.corpus, args.adds, args.backend, work, store=args.store, documents=args.documents)
    compared = result.get("identical_top10_merged", result["identical_top10_segmented"])
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.store:
        print(f"{result['adds']:,} of {result['documents']:,} documents added one at a time to an index in Milvus: "
              f"top 10 identical to a fresh build for {compared} of {result['queries']} queries "
              f"({result['backend']}); one add {result['add_median_first_tenth_s']} s first, "
              f"{result['add_median_last_tenth_s']} s last (medians)")
    else:
        print(f"{result['adds']:,} of {result['documents']:,} documents added one at a time: top 10 identical to a "
              f"fresh build for {compared} of {result['queries']} queries after the merge, "
              f"{result['identical_top10_segmented']} before it ({result['backend']})")
    return 0 if compared == result["queries"] else 1


if __name__ == "__main__":
    sys.exit(main())
