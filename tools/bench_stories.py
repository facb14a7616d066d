"""`scripts/bench-stories`: what placing one new article in a story costs at size.

A store of N articles is written as a build writes it (their stories placed in order,
indexer/stories.py), from real articles (SciFact abstracts, the news dev set's articles,
the seeds) and renamed copies of them past their number; then new articles are added one
at a time as an update places them (`StoredStories` over that store, the new article's
own store written), each timed. The passages' vectors play no part in placing, so none
are computed.

    scripts/bench-stories [--articles 100000] [--adds 50] [--work DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"
CORPORA = (EVAL / "scifact" / "corpus.jsonl", EVAL / "realtimeqa-dev" / "corpus.jsonl")


def real_articles() -> list[tuple[str, str | None, str]]:
    """(id, title, text) of every real article at hand."""
    out = []
    for corpus in CORPORA:
        if corpus.exists():
            with open(corpus, encoding="utf-8") as f:
                for line in f:
                    doc = json.loads(line)
                    out.append((doc["_id"], doc.get("title") or None, doc["text"]))
    for path in sorted((ROOT / "seeds").glob("*.txt")):
        out.append((path.stem, None, path.read_text(encoding="utf-8")))
    return out


def _store(path: Path) -> sqlite3.Connection:
    from search.index import store

    conn = sqlite3.connect(path)
    conn.executescript(store.SCHEMA)
    return conn


def _insert(conn: sqlite3.Connection, doc_id: str, title: str | None, text: str) -> None:
    conn.execute("INSERT INTO documents (doc_id, title, source, sha256, text) VALUES (?, ?, ?, '', ?)",
                 (doc_id, title, doc_id, text))


def placed_store(articles: list, count: int, work: Path) -> tuple[Path, float]:
    """A store of `count` articles with their stories placed (kept in `work` for reruns),
    and the seconds placing took (0 when reused)."""
    from indexer.stories import MemoryStories, place

    path = work / f"stories-{count}.sqlite"
    if path.exists() and _current(path):
        return path, 0.0
    if path.exists():
        print(f"{path} was placed by an older version of the stories (no kept vectors): placing again",
              file=sys.stderr)
        path.unlink()
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    conn = _store(tmp)
    for n in range(count):
        doc_id, title, text = articles[n % len(articles)]
        _insert(conn, f"{doc_id}~{n // len(articles)}" if n >= len(articles) else doc_id, title, text)
    conn.commit()
    started = time.perf_counter()
    state = MemoryStories()
    rows = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    print(f"placing {rows:,} articles in stories", file=sys.stderr)
    place(conn, state, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - started
    conn.commit()
    conn.close()
    tmp.rename(path)
    return path, seconds


def _current(path: Path) -> bool:
    """Whether the store at `path` was placed as stories are placed now (its articles'
    vectors kept: what a split reads)."""
    from indexer.stories import VECTORS_KEPT

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT 1 FROM story_df WHERE term = ?", (VECTORS_KEPT,)).fetchone() is not None
    finally:
        conn.close()


def timed_adds(path: Path, articles: list, adds: int) -> list[float]:
    """Seconds to place each of `adds` new articles as an update does: the stories read
    from the store at `path`, the article's own small store written."""
    from indexer.stories import StoredStories, place

    held = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    times = []
    step = max(len(articles) // adds, 1)
    for n in range(adds):
        doc_id, title, text = articles[(n * step + 7) % len(articles)]
        segment = _store(Path(":memory:"))
        _insert(segment, f"new-{n}-{doc_id}", title, text)
        started = time.perf_counter()
        state = StoredStories([held], next_story=10 ** 9)
        place(segment, state)
        segment.commit()
        times.append(time.perf_counter() - started)
        segment.close()
    held.close()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-stories", description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--adds", type=int, default=50)
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "bench-stories")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    articles = real_articles()
    path, placing = placed_store(articles, args.articles, args.work)
    with sqlite3.connect(path) as conn:
        stories = conn.execute("SELECT COUNT(DISTINCT story) FROM stories").fetchone()[0]
    times = sorted(timed_adds(path, articles, args.adds))
    result = {"articles": args.articles, "real_articles": len(articles), "stories": stories,
              "build_placing_s": round(placing, 1),
              "add_ms_median": round(statistics.median(times) * 1000, 2),
              "add_ms_p95": round(times[int(0.95 * (len(times) - 1))] * 1000, 2),
              "add_ms_max": round(times[-1] * 1000, 2), "adds": len(times),
              "store_mb": round(path.stat().st_size / 2 ** 20, 1)}
    print(json.dumps(result) if args.json else "  ".join(f"{k} {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
