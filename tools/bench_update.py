"""`scripts/bench-update`: what adding one article to a large index costs.

Builds (or, with --work, reuses) an index of about --passages passages: the seeds and
real SciFact documents embedded by the model, then renamed copies of them with their
recorded vectors replayed (as `scripts/bench` builds its big indexes) up to the size.
Then adds five new articles one at a time with `indexer add`'s code path and the real
model, removes them again, and prints the median times: the add's wall time (`add_s`,
published), the part of it
spent embedding the article's passages and sentences (`add_embed_s`), the rest
(`add_overhead_s`: what the add costs beyond its own text, the figure that must not grow
with the index), the removal (`remove_s`) and, when this run built the index, `rebuild_s`.

With --store milvus://HOST:PORT/NAME the same index is written into Milvus once
(`indexer build --store`'s collections) and the adds and removals are its updates there
(indexer/milvus_update.py); `segments` is then 0, and `replica_open_s` is how long a
replica takes to open the index, `replica_catch_up_s` (median) how long it then takes to
open each newer generation (it reads only the rows the update wrote).

With --merge it then merges the index in the background (as the service's writer does)
while adding articles one at a time, and prints how long the merge took (`merge_s`),
how long of it it held the writer lock to catch up (`merge_locked_s`), how many adds went
through meanwhile and the slowest of them (`add_during_merge_max_s`).

    scripts/bench-update [--passages 100000] [--work DIR] [--merge | --store milvus://HOST:PORT/NAME] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tools.bench import SCIFACT, check_corpus, _embedder, full_index, real_index

ARTICLE = {"id": "bench-update-article", "title": "Researchers map a new antibiotic target",
           "text": "Researchers have mapped a protein pocket in drug-resistant bacteria that a new class of "
                   "antibiotics could target, according to a study published on Wednesday.\n\n"
                   "The team screened 12,000 compounds against the pocket and found three that stopped the "
                   "bacteria from growing in laboratory tests.\n\n"
                   "Clinical trials are at least five years away, the authors cautioned.\n"}
# Real SciFact documents embedded for real before the replayed copies: ~4,000 passages.
BASE_DOCUMENTS = 1000
# Articles added (then removed) one at a time: the figures are the median add (the first
# one in a process also pays for loading the indexer's code; it is reported beside).
ROUNDS = 5


def bench_update(passages: int, corpus: Path, work: Path, merge: bool = False, store_spec: str | None = None) -> dict:
    """`store_spec` (milvus://HOST:PORT/NAME): the index is written there once and updated there."""
    from indexer.update import update
    from search.index import store
    from search.index.generations import current

    index = work / f"index-{passages}"
    built = None
    if not (current(index) / store.MANIFEST).exists():
        print(f"building a {passages:,}-passage index in {index} (kept for --work reruns)", file=sys.stderr)
        base = real_index(work, corpus, min(BASE_DOCUMENTS, passages // 4 + 1))
        started = time.perf_counter()
        index = full_index(work, base, passages)
        built = time.perf_counter() - started
    target = index
    if store_spec:
        from tools.milvus_copy import held_in_milvus

        target = held_in_milvus(index, store_spec)
    embedder = _embedder()
    embedder.embed(["warm up the model before the clocks start"])
    run = uuid.uuid4().hex[:8]  # new ids on every run
    adds, removes, reopens = [], [], []
    if store_spec:
        from search import Searcher

        started = time.perf_counter()
        replica = Searcher.open(store_spec, verify=False)  # a replica, before the adds (held: it is carried)
        opened = time.perf_counter() - started
    for n in range(ROUNDS):
        feed = work / "one.jsonl"
        article = {**ARTICLE, "id": f"{ARTICLE['id']}-{run}-{n}"}
        feed.write_text(json.dumps(article) + "\n", encoding="utf-8")
        started = time.perf_counter()
        added = update(target, srcs=[feed], embedder=embedder)
        adds.append((time.perf_counter() - started, added.embed_seconds, added))
        if store_spec:  # a replica's catch-up: the searcher opened last carries what it read
            started = time.perf_counter()
            replica = Searcher.open(store_spec, verify=False)
            reopens.append(time.perf_counter() - started)
    for n in range(ROUNDS):
        started = time.perf_counter()
        update(target, remove=[f"{ARTICLE['id']}-{run}-{n}"], embedder=embedder)
        removes.append(time.perf_counter() - started)
    median = sorted(adds, key=lambda a: a[0])[ROUNDS // 2]
    add_s, embed_s, added = median
    result = {"passages": added.passages, "documents": added.documents, "rounds": ROUNDS,
              "add_s": round(add_s, 3), "add_embed_s": round(embed_s, 3), "add_overhead_s": round(add_s - embed_s, 3),
              "add_overhead_max_s": round(max(a - e for a, e, _ in adds), 3),
              "first_add_s": round(adds[0][0], 3),
              "add_embedded_passages": added.embedded_passages, "segments": added.segments,
              "merges": sum(a.merged for _, _, a in adds),
              "remove_s": round(sorted(removes)[ROUNDS // 2], 3)}
    if built is not None:
        result["rebuild_s"] = round(built, 1)
    if store_spec:
        result |= {"store": store_spec, "replica_open_s": round(opened, 3),
                   "replica_catch_up_s": round(sorted(reopens)[ROUNDS // 2], 3)}
    if merge:
        result |= _merge_while_adding(index, work, embedder, run)
    return result


def _merge_while_adding(index: Path, work: Path, embedder, run: str) -> dict:
    """A background merge, and single-article adds one after another until it is done."""
    import threading

    from indexer.merge import merge_in_background
    from indexer.update import update

    merged = {}
    merging = threading.Thread(target=lambda: merged.update(summary=merge_in_background(index, embedder)))
    started = time.perf_counter()
    merging.start()
    adds, ids = [], []
    while merging.is_alive():
        article = {**ARTICLE, "id": f"{ARTICLE['id']}-{run}-m{len(ids)}"}
        feed = work / "one.jsonl"
        feed.write_text(json.dumps(article) + "\n", encoding="utf-8")
        began = time.perf_counter()
        update(index, srcs=[feed], embedder=embedder, background_merges=True)
        adds.append(time.perf_counter() - began)
        ids.append(article["id"])
    merging.join()
    merge_s = time.perf_counter() - started
    summary = merged["summary"]
    update(index, remove=ids, embedder=embedder, background_merges=True)
    return {"merge_s": round(merge_s, 2), "merge_locked_s": round(summary.locked_seconds, 3),
            "adds_during_merge": len(adds), "add_during_merge_max_s": round(max(adds), 3),
            "add_during_merge_median_s": round(sorted(adds)[len(adds) // 2], 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-update", description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=20000, help="about how many passages the index holds")
    parser.add_argument("--corpus", type=Path, default=SCIFACT, help="BEIR corpus.jsonl for real text")
    parser.add_argument("--work", type=Path, help="keep the index here and reuse it (default: a temporary directory)")
    parser.add_argument("--merge", action="store_true", help="also time a background merge while articles are added")
    parser.add_argument("--store", metavar="milvus://HOST:PORT/NAME",
                        help="time the updates of the same index held in Milvus (written there once)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    check_corpus(parser, args.corpus)
    if args.store and args.merge:
        parser.error("--merge times the segments of an index directory; an index in Milvus is not merged")
    with tempfile.TemporaryDirectory(prefix="bench-update-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        result = bench_update(args.passages, args.corpus, work, args.merge, args.store)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['passages']:,} passages: add one article {result['add_s']} s, median of {ROUNDS} "
              f"({result['add_embed_s']} s embedding its {result['add_embedded_passages']} passages and their "
              f"sentences, {result['add_overhead_s']} s the rest; at most {result['add_overhead_max_s']} s, "
              f"{result['merges']} merged); remove one {result['remove_s']} s"
              + (f"; building the index took {result['rebuild_s']} s" if "rebuild_s" in result else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
