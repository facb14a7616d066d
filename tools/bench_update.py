"""`scripts/bench-update`: adding one article to a large index, against rebuilding it.

Builds an index of the first --documents SciFact documents (real text, the default
model and options) and times that full build; then times `indexer add` of one new
article into it, in the same run, and prints both and their ratio. A second add of the
same article (unchanged: nothing to do) and a removal are timed too.

    scripts/bench-update [--documents 5000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tools.bench import SCIFACT, corpus_articles

ARTICLE = {"id": "bench-update-article", "title": "Researchers map a new antibiotic target",
           "text": "Researchers have mapped a protein pocket in drug-resistant bacteria that a new class of "
                   "antibiotics could target, according to a study published on Wednesday.\n\n"
                   "The team screened 12,000 compounds against the pocket and found three that stopped the "
                   "bacteria from growing in laboratory tests.\n\n"
                   "Clinical trials are at least five years away, the authors cautioned.\n"}


def bench_update(documents: int, corpus: Path, work: Path) -> dict:
    from indexer import build
    from indexer.update import update
    from search.embedding.embedder import get_embedder

    articles = corpus_articles(corpus, documents, work / "articles.jsonl")
    get_embedder().embed(["warm up the model before the clocks start"])
    index = work / "index"
    started = time.perf_counter()
    full = build([articles], index)
    full_s = time.perf_counter() - started
    feed = work / "one.jsonl"
    feed.write_text(json.dumps(ARTICLE) + "\n", encoding="utf-8")
    timed = {}
    for name, kwargs in (("add", {"srcs": [feed]}), ("add_unchanged", {"srcs": [feed]}),
                         ("remove", {"remove": [ARTICLE["id"]]})):
        started = time.perf_counter()
        summary = update(index, **kwargs)
        timed[name] = (time.perf_counter() - started, summary)
    add_s, added = timed["add"]
    return {"documents": full.documents, "passages": full.passages, "full_build_s": round(full_s, 1),
            "add_one_s": round(add_s, 2), "speedup": round(full_s / add_s, 1),
            "add_embedded_passages": added.embedded_passages,
            "add_unchanged_s": round(timed["add_unchanged"][0], 2), "remove_one_s": round(timed["remove"][0], 2),
            "generation": timed["remove"][1].generation}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-update", description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=5000)
    parser.add_argument("--corpus", type=Path, default=SCIFACT, help="BEIR corpus.jsonl for real text")
    parser.add_argument("--work", type=Path, help="keep the index here (default: a temporary directory)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-update-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        result = bench_update(args.documents, args.corpus, work)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['documents']} documents, {result['passages']} passages: full build {result['full_build_s']} s, "
              f"add one article {result['add_one_s']} s ({result['speedup']}x faster, "
              f"{result['add_embedded_passages']} passages embedded); add it again unchanged "
              f"{result['add_unchanged_s']} s; remove it {result['remove_one_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
