"""Retrieval evaluation on a BEIR-format dataset with the project's own indexer and searcher.

    scripts/evaluate DATASET_DIR --split test --mode hybrid [--no-chunking] [--json]
    scripts/evaluate DATASET_DIR --weight dense=0.5,0.65 --folds weeks   # settings chosen by cross-validation
    scripts/evaluate tests/data/seed_questions.json                      # the seed questions, passage by passage
    scripts/evaluate DATASET_DIR --mmr 0.5,0.7                           # result lists with and without MMR

The dataset's corpus is indexed once per set of build options and cached under
.cache/eval/; metrics come from pytrec_eval (trec_eval's own implementation).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import itertools
import json
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

from indexer.chunk import DEFAULT_SEGMENTER, SEGMENTERS
from search.embedding.embedder import BACKENDS
from search.retrieval.fusion import Weights

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "eval"
SEEDS = ROOT / "seeds"  # the corpus the seed questions ask about
DEPTH = 1000  # passages ranked per query: enough for Recall@100 over documents


def load_queries(dataset: Path, split: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """The split's queries that have judgements, and the judgements (qrels)."""
    queries, qrels, _ = load_queries_dated(dataset, split)
    return queries, qrels


def load_queries_dated(dataset: Path, split: str):
    """`load_queries`, plus each query's `question_date` where the dataset gives one."""
    qrels: dict[str, dict[str, int]] = {}
    with open(dataset / "qrels" / f"{split}.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    queries, dates = {}, {}
    with open(dataset / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["_id"] in qrels:
                queries[record["_id"]] = record["text"]
                if record.get("question_date"):
                    dates[record["_id"]] = record["question_date"]
    return queries, qrels, dates


def corpus_as_articles(dataset: Path, cache: Path = CACHE) -> Path:
    """BEIR's corpus.jsonl ({"_id", "title", "text"}) as the indexer's .jsonl articles."""
    source = dataset / "corpus.jsonl"
    data = source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    dated = b'"published"' in data  # a news corpus: its articles' dates go into the index
    target = cache / f"{dataset.name}-{digest}" / f"{dataset.name}{'-dated' if dated else ''}.jsonl"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        with open(source, encoding="utf-8") as src, open(tmp, "w", encoding="utf-8") as out:
            for line in src:
                doc = json.loads(line)
                article = {"id": doc["_id"], "title": doc.get("title") or None, "text": doc["text"]}
                if doc.get("published"):
                    article["published"] = doc["published"]
                out.write(json.dumps(article) + "\n")
        tmp.rename(target)
    return target


METRICS = {"ndcg@10": "ndcg_cut_10", "recall@10": "recall_10", "recall@100": "recall_100", "mrr@10": "recip_rank"}


def metrics(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """nDCG@10, Recall@10, Recall@100 and MRR@10, averaged over the queries, by pytrec_eval."""
    return mean_metrics(per_query(run, qrels), qrels)


def per_query(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """Each judged query's metrics (zero for a query with no results, as in BEIR)."""
    import pytrec_eval

    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10", "recall.100"}).evaluate(run)
    top10 = {q: dict(sorted(docs.items(), key=lambda d: -d[1])[:10]) for q, docs in run.items()}
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    return {q: {name: {**full.get(q, {}), **mrr.get(q, {})}.get(key, 0.0) for name, key in METRICS.items()}
            for q in qrels}


def mean_metrics(scores: dict[str, dict[str, float]], queries) -> dict[str, float]:
    queries = list(queries)
    return {name: round(sum(scores[q][name] for q in queries) / len(queries), 4) for name in METRICS}


def cross_validate(runs: list[tuple[dict, dict[str, dict[str, float]]]], folds: dict[str, str],
                   target: str = "ndcg@10") -> dict:
    """Leave one fold out: for each fold, the setting with the best mean `target` over the
    other folds' queries, scored on the held-out fold's. `runs` pairs each setting with its
    per-query metrics; `folds` maps each query to its fold (a news question's week)."""
    held_out: dict[str, dict[str, float]] = {}
    chosen = []
    for fold in sorted(set(folds.values())):
        train = [q for q, f in folds.items() if f != fold]
        setting, scores = max(runs, key=lambda run: mean_metrics(run[1], train)[target])
        chosen.append({"fold": fold, **setting})
        held_out.update({q: scores[q] for q, f in folds.items() if f == fold})
    return {"folds": len(chosen), **mean_metrics(held_out, held_out), "chosen": chosen}


def week_of(date: str) -> str:
    """A question's ISO week ("2022-W25"): a weekly quiz's questions share one."""
    year, week, _ = datetime.date.fromisoformat(date[:10]).isocalendar()
    return f"{year}-W{week:02d}"


def run_queries(searcher, queries: dict[str, str], mode: str, weights, dates: dict[str, str] | None = None) -> dict:
    """Each query's ranked documents; with `dates`, each question asked on its date (as_of)."""
    ids = list(queries)
    run = {}
    for start in range(0, len(ids), 64):
        batch = ids[start:start + 64]
        as_of = [dates.get(q) for q in batch] if dates else None
        for qid, ranked in zip(batch, searcher.rank([queries[q] for q in batch], DEPTH, mode, weights, as_of)):
            run[qid] = {doc: float(score) for doc, score in ranked}
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path,
                        help="BEIR-format directory (corpus.jsonl, queries.jsonl, qrels/), or a JSON file of "
                             "questions about seeds/ with their answering passages (tests/data/seed_questions.json)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--mode", default="hybrid", choices=("dense", "lexical", "hybrid"))
    parser.add_argument("--no-chunking", action="store_true",
                        help="one passage per document, cut at the model's window (MTEB's setup)")
    parser.add_argument("--max-tokens", type=int, help="passage window in word pieces (default: the model's)")
    parser.add_argument("--segmenter", choices=SEGMENTERS, default=DEFAULT_SEGMENTER,
                        help=f"the build's sentence splitter (default {DEFAULT_SEGMENTER})")
    parser.add_argument("--title-context", action="store_true",
                        help="build with indexer build --title-context (each passage embedded with its title); "
                             "the default build, as a user gets it, embeds passages alone")
    parser.add_argument("--dense-weight", help="hybrid fusion weight(s) of the dense score, e.g. 0.5,0.6,0.7")
    parser.add_argument("--sentence-weight", help="weight(s) of the best sentence in dense scores, e.g. 0,0.3,0.5")
    parser.add_argument("--document-weight", help="share(s) of document evidence in a passage's score, e.g. 0,0.3,0.5")
    parser.add_argument("--weight", action="append", default=[], metavar="NAME=V1,V2",
                        help=f"any ranking weight and the values to try (repeatable): {', '.join(WEIGHT_NAMES)}")
    parser.add_argument("--folds", choices=("weeks",),
                        help="with several settings: also choose one by leave-one-week-out cross-validation "
                             "(tuned on the other weeks' questions, scored on the held-out week's)")
    parser.add_argument("--no-time", action="store_true",
                        help="ask every question without its question_date (as_of): the ranking without time")
    parser.add_argument("--mmr", type=_weights, metavar="W1,W2",
                        help="score the first 10 results a user gets (search's result list, not the document "
                             "ranking) without MMR and with each of these MMR weights")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--backend", choices=BACKENDS,
                        help="how the model runs (default: $SEARCH_EMBED_BACKEND or the project default)")
    parser.add_argument("--vector-store", default="faiss",
                        help="faiss (default) or milvus://host:port/collection: where the corpus vectors live")
    parser.add_argument("--store", metavar="milvus://HOST:PORT/NAME",
                        help="search the same build held in Milvus (indexer build --store): the cached index "
                             "is written there under NAME first")
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"where built indexes are kept (default {CACHE})")
    args = parser.parse_args(argv)
    grid = _grid(parser, args)
    problem = _dataset_problem(args.dataset, args.split)
    if problem:
        parser.error(problem)
    if args.dataset.suffix == ".json":
        return _seed_questions(args, grid)

    from search import Searcher

    queries, qrels, dates = load_queries_dated(args.dataset, args.split)
    if args.folds and len(dates) < len(queries):
        parser.error(f"--folds weeks needs a question_date for every query; {args.dataset} has {len(dates)} "
                     f"of {len(queries)}")
    articles = corpus_as_articles(args.dataset, args.cache)
    # sentence vectors take part in chunked dense scoring; a whole-document index (MTEB's
    # setup, to check the pipeline against the published figure) has none, and embeds
    # title and text together, as there
    index, embedder = _index(args, articles, args.no_chunking, title_context=args.title_context or args.no_chunking)
    searcher = Searcher.open(_in_store(args, index), verify=False, backend=embedder.backend)
    # with --store, the embedded index it was written from answers beside it
    embedded = Searcher.open(index, verify=False, backend=embedder.backend) if args.store else None
    if args.mmr:
        return _result_lists(args, searcher, queries, qrels, None if args.no_time else dates)
    runs = []
    for weights in _progress(grid, "settings"):
        started = time.perf_counter()
        run = run_queries(searcher, queries, args.mode, weights, None if args.no_time else dates)
        scores = per_query(run, qrels)
        runs.append(({"weights": asdict(weights)}, scores))
        against = _against(embedded, args, queries, qrels, run, weights, dates) if embedded else {}
        result = {"mode": args.mode, "split": args.split, "chunking": not args.no_chunking,
                  **({"title_context": True} if args.title_context else {}),
                  **({"as_of": "question_date"} if dates and not args.no_time else {}),
                  **({"weights": asdict(weights)} if args.mode != "dense" or len(grid) > 1 else {}),
                  **mean_metrics(scores, qrels), **against, "queries": len(queries),
                  "seconds": round(time.perf_counter() - started, 2)}
        _print(result, args.json)
    if args.folds:
        _print({"mode": args.mode, "split": args.split, "cross_validation": args.folds,
                **cross_validate(runs, {q: week_of(dates[q]) for q in queries})}, args.json)
    return 0


def _dataset_problem(dataset: Path, split: str) -> str | None:
    """What is missing for `dataset` and `split` to be evaluated, or None."""
    if dataset.suffix == ".json":
        return None if dataset.is_file() else f"{dataset}: no such question file"
    if not dataset.is_dir():
        return f"{dataset}: no such dataset directory (BEIR format: corpus.jsonl, queries.jsonl, qrels/)"
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (dataset / name).is_file():
            return f"{dataset}: no {name} (BEIR format: corpus.jsonl, queries.jsonl, qrels/)"
    if not (dataset / "qrels" / f"{split}.tsv").is_file():
        splits = sorted(p.stem for p in (dataset / "qrels").glob("*.tsv"))
        return f"{dataset}: no qrels/{split}.tsv; --split one of: {', '.join(splits) or 'none found'}"
    return None


def _result_lists(args, searcher, queries: dict[str, str], qrels, dates: dict[str, str] | None) -> int:
    """The first 10 results as `search` returns them (collapsed passages), read as the
    articles they cite in order, without MMR and with each weight: nDCG@10 and MRR@10 of
    that article list, and how many distinct articles the 10 results come from."""
    for weight in _progress([None, *args.mmr], "settings"):
        run, distinct = {}, []
        for qid, query in queries.items():
            hits = searcher.search(query, 10, args.mode, highlight=False, mmr=weight,
                                   as_of=(dates or {}).get(qid))
            articles = list(dict.fromkeys(hit.citations[0].doc_id for hit in hits))
            distinct.append(len(articles))
            run[qid] = {doc: 1.0 / rank for rank, doc in enumerate(articles, 1)}
        scores = mean_metrics(per_query(run, qrels), qrels)
        _print({"mode": args.mode, "split": args.split, "results": "first 10 results", "mmr": weight,
                "ndcg@10": scores["ndcg@10"], "mrr@10": scores["mrr@10"], "recall@10": scores["recall@10"],
                "articles_in_10": round(sum(distinct) / len(distinct), 2), "queries": len(queries)}, args.json)
    return 0


WEIGHT_NAMES = tuple(f.name for f in fields(Weights))
_FLAGS = {"dense": "dense_weight", "sentence": "sentence_weight", "document": "document_weight"}


def _grid(parser, args) -> list[Weights]:
    """Every combination of the weights asked for (one setting, the defaults, when none is)."""
    values: dict[str, list[float]] = {name: _weights(getattr(args, flag)) for name, flag in _FLAGS.items()
                                      if getattr(args, flag)}
    for item in args.weight:
        name, _, text = item.partition("=")
        if name not in WEIGHT_NAMES or not text:
            parser.error(f"--weight takes NAME=V1,V2 with NAME one of {', '.join(WEIGHT_NAMES)}, got {item!r}")
        try:
            values[name] = _weights(text)
        except ValueError:
            parser.error(f"--weight {name}: values must be numbers, got {text!r}")
    names = list(values)
    return [Weights(**dict(zip(names, combo))) for combo in itertools.product(*values.values())] or [Weights()]


def _against(embedded, args, queries, qrels, run: dict, weights, dates) -> dict:
    """The same questions asked of the `embedded` index the store was written from: its
    nDCG@10, and for how many questions the ten best documents are the same, in order."""
    theirs = run_queries(embedded, queries, args.mode, weights, None if args.no_time else dates)

    def top10(ranked: dict) -> list[str]:
        return [doc for doc, _ in sorted(ranked.items(), key=lambda kv: -kv[1])[:10]]

    return {"embedded_ndcg@10": mean_metrics(per_query(theirs, qrels), qrels)["ndcg@10"],
            "identical_top10": sum(top10(run[q]) == top10(theirs[q]) for q in queries)}


def _in_store(args, index: Path) -> Path | str:
    """`index`, or with --store the same generation written into Milvus, named by its URI."""
    if not args.store:
        return index
    from tools.milvus_copy import held_in_milvus

    return held_in_milvus(index, args.store)


def _index(args, articles: Path, no_chunking: bool, title_context: bool, home: Path | None = None):
    """The cached index of `articles` (under `home`, default beside them) for these build
    options and backend (built when needed)."""
    from indexer import BuildOptions, build
    from search.embedding.embedder import get_embedder

    options = BuildOptions(chunking=not no_chunking, max_tokens=args.max_tokens, title_context=title_context,
                           sentence_vectors=not no_chunking, vector_store=args.vector_store,
                           segmenter=args.segmenter)
    embedder = get_embedder(backend=args.backend)
    # one cached index per build options and backend (their vectors differ)
    tag = (("whole" if no_chunking else f"chunks{args.max_tokens or ''}") + f"-{embedder.backend}"
           + ("-title" if title_context and not no_chunking else "")
           + ("-milvus" if args.vector_store != "faiss" else "")
           + (f"-{args.segmenter}" if args.segmenter != DEFAULT_SEGMENTER else ""))
    index = (home or articles.parent) / f"index-{tag}"
    print(f"indexing {articles} -> {index} (once; later runs reuse it)", file=sys.stderr)
    summary = build([articles], index, options=options, if_changed=True, progress=sys.stderr.isatty(),
                    embedder=embedder)
    print(summary, file=sys.stderr)
    return index, embedder


def _seed_questions(args, grid: list[Weights]) -> int:
    """The seed questions asked as a reader would: where the answering passage ranks among
    the first five results (collapse on), and whether an op-ed answer cites both translations."""
    from search import Searcher

    questions = json.loads(args.dataset.read_text(encoding="utf-8"))
    index, embedder = _index(args, SEEDS, no_chunking=False, title_context=args.title_context, home=args.cache / "seeds")
    searcher = Searcher.open(_in_store(args, index), verify=False, backend=embedder.backend)
    settings = [(weights, None) for weights in grid] + [(grid[0], weight) for weight in args.mmr or []]
    for weights, mmr in _progress(settings, "settings"):
        searcher.weights = weights
        ranks, missing_copy = {}, []
        for item in questions:
            hits = searcher.search(item["question"], 5, args.mode, mmr=mmr)
            rank, hit = answer_rank(hits, item["answers"])
            ranks[item["question"]] = rank
            if hit is not None and {"000", "001"} & {c.doc_id[:3] for c in hit.citations} \
                    and not {"000", "001"} <= {c.doc_id[:3] for c in hit.citations}:
                missing_copy.append(item["question"])
        n = len(questions)
        result = {"mode": args.mode, "set": str(args.dataset), "questions": n,
                  **({"weights": asdict(weights)} if len(grid) > 1 else {}),
                  **({"mmr": mmr} if args.mmr else {}),
                  "first": sum(r == 1 for r in ranks.values()),
                  "top3": sum(r is not None and r <= 3 for r in ranks.values()),
                  "top5": sum(r is not None for r in ranks.values()),
                  "op_ed_cited_alone": len(missing_copy),
                  "not_first": {q: r for q, r in ranks.items() if r != 1}}
        _print(result, args.json)
    return 0


def answer_rank(hits, answers) -> tuple[int | None, object]:
    """The rank of the first hit that answers: a passage of one of an answer's `docs`
    (by their three-digit prefix) holding its `passage` words; and that hit."""
    for hit in hits:
        for answer in answers:
            if any(c.doc_id[:3] in answer["docs"] for c in hit.citations) and answer["passage"] in hit.text:
                return hit.rank, hit
    return None, None


def _progress(items: list, unit: str):
    if len(items) > 1 and sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(items, desc="evaluating", unit=f" {unit}")
    return items


def _print(result: dict, as_json: bool) -> None:
    print(json.dumps(result) if as_json else "  ".join(f"{key} {value}" for key, value in result.items()), flush=True)


def _weights(text: str) -> list[float]:
    return [float(w) for w in text.split(",")]


if __name__ == "__main__":
    sys.exit(main())
