"""`scripts/bench --vs-txtai`: txtai (the closest peer) and this project on the same model,
passages and questions, in the same run.

Each side runs in a fresh process of its own, so that its resident memory and its model
threads are its own:
- indexing: the same passages (the bench's real index: seeds + SciFact documents) from
  plain text to a searchable index. txtai embeds them with its defaults (dense only);
  this project builds its full index (cleaning, chunking, passage and sentence vectors,
  BM25, duplicate groups) from the same articles;
- query p50: one question at a time, in-process (txtai's `Embeddings.search`,
  `Searcher.search` in its default hybrid mode, query cache off);
- QPS: 16 threads sharing one in-process index for the same number of seconds. txtai's
  `Embeddings` is not thread-safe (16 threads calling `search` crash the process with
  SIGSEGV here), so its calls go through one lock, as a threaded server embedding it must
  do; the `Searcher` is shared by threads as it is.
txtai is an optional dependency (`pip install -e .[bench]`).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from tools.served import rss_mb

ROOT = Path(__file__).resolve().parent.parent


def compare(work: Path, base: dict, questions: list[str], clients: int, seconds: float) -> dict:
    """Run both sides on the bench's real passages; their figures and our/their ratios."""
    import sqlite3

    with sqlite3.connect(base["dir"] / "store.sqlite") as db:
        passages = [row[0] for row in db.execute("SELECT text FROM passages ORDER BY id")]
    (work / "txtai-passages.json").write_text(json.dumps(passages), encoding="utf-8")
    (work / "txtai-questions.json").write_text(json.dumps(questions), encoding="utf-8")
    sides = {}
    for side in ("txtai", "ours"):
        sides[side] = json.loads(subprocess.run(
            [sys.executable, "-m", "tools.bench_txtai", side, str(work), str(clients), str(seconds)],
            check=True, capture_output=True, text=True, cwd=ROOT).stdout)
    ours, theirs = sides["ours"], sides["txtai"]
    return {"txtai": theirs, "ours": ours, "passages": len(passages), "ratios": {
        "indexing_rate": round(ours["index_passages_per_s"] / theirs["index_passages_per_s"], 2),
        "query_p50_speedup": round(theirs["query_p50_ms"] / ours["query_p50_ms"], 2),
        "qps": round(ours["qps"] / theirs["qps"], 2),
        "rss": round(ours["rss_mb"] / theirs["rss_mb"], 2)}}


def _txtai(work: Path):
    """txtai's Embeddings over the passages, with the same model and its defaults."""
    from txtai import Embeddings

    from search.embedding.embedder import get_embedder, model_location

    passages = json.loads((work / "txtai-passages.json").read_text(encoding="utf-8"))
    embeddings = Embeddings(path=model_location(get_embedder(backend="torch").name), content=True)
    embeddings.transform("warm up the model before the clock starts")
    started = time.perf_counter()
    embeddings.index([(i, text, None) for i, text in enumerate(passages)])
    rate = len(passages) / (time.perf_counter() - started)
    lock = threading.Lock()

    def search(query: str):
        with lock:
            return embeddings.search(query, 5)

    return search, rate


def _ours(work: Path):
    """This project's whole build of the same articles, then the Searcher over it."""
    import os

    from indexer import build
    from search.embedding.embedder import get_embedder
    from search.searcher import Searcher

    os.environ["SEARCH_QUERY_CACHE"] = "0"  # questions repeat: measure the model's work
    get_embedder().embed(["warm up the model before the clock starts"])
    target = work / "vs-txtai-index"
    started = time.perf_counter()
    summary = build([ROOT / "seeds", work / "real.jsonl"], target)
    rate = summary.passages / (time.perf_counter() - started)
    searcher = Searcher.open(target)
    return (lambda q: searcher.search(q, k=5)), rate


def measure(side: str, work: Path, clients: int, seconds: float) -> dict:

    search, rate = (_txtai if side == "txtai" else _ours)(work)
    questions = json.loads((work / "txtai-questions.json").read_text(encoding="utf-8"))
    for q in questions[:4]:
        search(q)
    times = []
    for _ in range(3):
        for q in questions:
            started = time.perf_counter()
            search(q)
            times.append((time.perf_counter() - started) * 1000)
    done = [0] * clients
    stop = time.monotonic() + seconds

    def client(n: int) -> None:
        i = n
        while time.monotonic() < stop:
            search(questions[i % len(questions)])
            done[n] += 1
            i += clients

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"index_passages_per_s": round(rate, 1), "query_p50_ms": round(statistics.median(times), 2),
            "qps": round(sum(done) / (time.monotonic() - started), 1), "rss_mb": round(rss_mb(), 1)}


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))))
