"""`scripts/bench --alerts 0,100,10000`: articles ingested a second with that many alerts
stored, each article written as the service's writer writes it (an incremental update)
and then matched against every alert (search/alerts.py), one at a time.

The alerts' questions are the opening words of the bench's real passages (varied, so
that they reach different articles), and the articles added are SciFact abstracts the
index does not hold.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

ADDS = 20  # articles ingested per count of alerts


def alert_rates(work: Path, base: dict, counts: list[int], corpus: Path) -> dict:
    from indexer.update import update
    from search.alerts import FILE, AlertStore, Matcher
    from search.embedding.embedder import get_embedder
    from search.live import LiveSearcher
    from search.searcher import Searcher

    from tools.bench import varied_questions

    embedder = get_embedder()
    questions = varied_questions(base, max(counts + [1]))
    articles = _new_articles(corpus, ADDS * len(counts))
    out = {}
    for n, count in enumerate(counts):
        index = work / f"alerts-index-{count}"
        shutil.rmtree(index, ignore_errors=True)
        shutil.copytree(base["root"], index)
        (index / FILE).unlink(missing_ok=True)
        store = AlertStore(index)
        wanted = [questions[i % len(questions)] + ("" if i < len(questions) else f" ({i // len(questions)})")
                  for i in range(count)]
        print(f"alerts: storing {count:,} alerts", file=sys.stderr)
        store.create_many([(q, 10, {}, None) for q in wanted], embedder)
        matcher = Matcher(index, LiveSearcher(index, lambda: Searcher.open(index)))
        matched = matching_s = 0.0
        started = time.perf_counter()
        for article in articles[n * ADDS:(n + 1) * ADDS]:
            summary = update(index, documents=[article], embedder=embedder)
            began = time.perf_counter()
            matched += len(matcher.match_now(summary.generation, summary.added))
            matching_s += time.perf_counter() - began
        seconds = time.perf_counter() - started
        out[str(count)] = {"articles_per_s": round(ADDS / seconds, 2), "matching_ms_per_article":
                           round(matching_s / ADDS * 1000, 1), "alerts_matched": int(matched)}
        print(f"alerts: {count:,} stored: {out[str(count)]}", file=sys.stderr)
    return out


def _new_articles(corpus: Path, count: int):
    from indexer.sources import Document

    with open(corpus, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [Document(doc_id=f"alert-bench-{r['_id']}", title=r.get("title") or None, text=r["text"],
                     source=f"alert-bench-{r['_id']}") for r in rows[-count:]]
