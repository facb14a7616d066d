"""Retrieval evaluation on a BEIR-format dataset with the project's own indexer and searcher.

    scripts/evaluate DATASET_DIR --split test --mode hybrid [--no-chunking] [--json]

The dataset's corpus is indexed once per set of build options and cached under
.cache/eval/; metrics come from pytrec_eval (trec_eval's own implementation).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from .embedder import BACKENDS

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "eval"
DEPTH = 1000  # passages ranked per query: enough for Recall@100 over documents


def load_queries(dataset: Path, split: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """The split's queries that have judgements, and the judgements (qrels)."""
    qrels: dict[str, dict[str, int]] = {}
    with open(dataset / "qrels" / f"{split}.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    queries = {}
    with open(dataset / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["_id"] in qrels:
                queries[record["_id"]] = record["text"]
    return queries, qrels


def corpus_as_articles(dataset: Path, cache: Path = CACHE) -> Path:
    """BEIR's corpus.jsonl ({"_id", "title", "text"}) as the indexer's .jsonl articles."""
    source = dataset / "corpus.jsonl"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = cache / f"{dataset.name}-{digest}" / f"{dataset.name}.jsonl"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        with open(source, encoding="utf-8") as src, open(tmp, "w", encoding="utf-8") as out:
            for line in src:
                doc = json.loads(line)
                out.write(json.dumps({"id": doc["_id"], "title": doc.get("title") or None, "text": doc["text"]}) + "\n")
        tmp.rename(target)
    return target


def metrics(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """nDCG@10, Recall@10, Recall@100 and MRR@10, averaged over the queries, by pytrec_eval."""
    import pytrec_eval

    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10", "recall.100"}).evaluate(run)
    top10 = {q: dict(sorted(docs.items(), key=lambda d: -d[1])[:10]) for q, docs in run.items()}
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    n = len(qrels)  # a query with no results counts as zero, as in BEIR

    def mean(table, key):
        return round(sum(table.get(q, {}).get(key, 0.0) for q in qrels) / n, 4)

    return {"ndcg@10": mean(full, "ndcg_cut_10"), "recall@10": mean(full, "recall_10"),
            "recall@100": mean(full, "recall_100"), "mrr@10": mean(mrr, "recip_rank")}


def run_queries(searcher, queries: dict[str, str], mode: str, weights) -> dict:
    ids = list(queries)
    run = {}
    for start in range(0, len(ids), 64):
        batch = ids[start:start + 64]
        for qid, ranked in zip(batch, searcher.rank([queries[q] for q in batch], DEPTH, mode, weights)):
            run[qid] = {doc: float(score) for doc, score in ranked}
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path, help="BEIR-format directory (corpus.jsonl, queries.jsonl, qrels/)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--mode", default="hybrid", choices=("dense", "lexical", "hybrid"))
    parser.add_argument("--no-chunking", action="store_true",
                        help="one passage per document, cut at the model's window (MTEB's setup)")
    parser.add_argument("--max-tokens", type=int, help="passage window in word pieces (default: the model's)")
    parser.add_argument("--dense-weight", help="hybrid fusion weight(s) of the dense score, e.g. 0.5,0.6,0.7")
    parser.add_argument("--sentence-weight", help="weight(s) of the best sentence in dense scores, e.g. 0,0.3,0.5")
    parser.add_argument("--document-weight", help="share(s) of document BM25 in lexical scores, e.g. 0,0.5,0.7")
    parser.add_argument("--dense-floor", help="cosine(s) below which the dense side is scaled down, e.g. 0,0.3,0.4")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--backend", choices=BACKENDS,
                        help="how the model runs (default: $SEARCH_EMBED_BACKEND or the project default)")
    parser.add_argument("--vector-store", default="faiss",
                        help="faiss (default) or milvus://host:port/collection: where the corpus vectors live")
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"where built indexes are kept (default {CACHE})")
    args = parser.parse_args(argv)

    from indexer import BuildOptions, build
    from search import Searcher
    from search.ranking import Weights

    queries, qrels = load_queries(args.dataset, args.split)
    articles = corpus_as_articles(args.dataset, args.cache)
    # sentence vectors take part in chunked dense scoring; a whole-document index (MTEB's
    # setup, to check the pipeline against the published figure) has none, as there
    options = BuildOptions(chunking=not args.no_chunking, max_tokens=args.max_tokens, title_context=True,
                           sentence_vectors=not args.no_chunking, vector_store=args.vector_store)
    from search.embedder import get_embedder

    embedder = get_embedder(backend=args.backend)
    # one cached index per build options and backend (their vectors differ)
    tag = (("whole" if args.no_chunking else f"chunks{args.max_tokens or ''}") + f"-{embedder.backend}"
           + ("-milvus" if args.vector_store != "faiss" else ""))
    index = articles.parent / f"index-{tag}"
    summary = build([articles], index, options=options, if_changed=True, progress=sys.stderr.isatty(),
                    embedder=embedder)
    print(summary, file=sys.stderr)
    searcher = Searcher.open(index, verify=False, backend=embedder.backend)
    grid = [Weights(**{name: value for name, value in zip(("dense", "sentence", "document", "dense_floor"), combo)
                       if value is not None})
            for combo in itertools.product(_weights(args.dense_weight), _weights(args.sentence_weight),
                                           _weights(args.document_weight), _weights(args.dense_floor))]
    for weights in grid:
        started = time.perf_counter()
        run = run_queries(searcher, queries, args.mode, weights)
        result = {"mode": args.mode, "split": args.split, "chunking": not args.no_chunking,
                  **({"weights": asdict(weights)} if args.mode != "dense" or len(grid) > 1 else {}),
                  **metrics(run, qrels), "queries": len(queries),
                  "seconds": round(time.perf_counter() - started, 2)}
        if args.json:
            print(json.dumps(result))
        else:
            print("  ".join(f"{key} {value}" for key, value in result.items()))
    return 0


def _weights(text: str | None) -> list[float | None]:
    return [float(w) for w in text.split(",")] if text else [None]


if __name__ == "__main__":
    sys.exit(main())
