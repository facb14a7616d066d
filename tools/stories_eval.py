"""`scripts/stories-eval`: how well articles are grouped into stories, on ECB+.

The articles of a split (../shared/eval/news-stories, README there) are indexed once
(cached under .cache/eval), then fed to the story assigner (indexer/stories.py) one at a
time in several seeded orders, never told how many stories there are. Prints B-cubed
precision, recall and F1 against the labelled stories, averaged over the orders.

    scripts/stories-eval [--split test] [--orders 5] [--grid] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "eval" / "news-stories" / "articles.jsonl"
CACHE = ROOT / ".cache" / "eval"


def articles(split: str, path: Path = DATA) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [r for r in rows if split == "all" or r["split"] == split]


def features(split: str, path: Path = DATA) -> tuple[list[str], list[list[str]], list[str]]:
    """Each indexed article's id, BM25 terms and story label."""
    from indexer import build
    from indexer.stories import article_terms
    from search.index import segments, store
    from search.index.generations import current
    from search.index.segment_store import SegmentedStore

    rows = articles(split, path)
    index = CACHE / f"stories-{split}"
    if not (index / "CURRENT").exists():
        print(f"indexing the {len(rows)} articles of ECB+ {split} in {index} (once)", file=sys.stderr)
        feed = CACHE / f"stories-{split}.jsonl"
        feed.parent.mkdir(parents=True, exist_ok=True)
        with open(feed, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({"id": r["id"], "title": r["title"], "text": r["text"],
                                    "published": r["published"]}) + "\n")
        build([feed], index, progress=sys.stderr.isatty())
    directory = current(index)
    manifest = store.read_manifest(directory)
    layout = segments.Layout.of(manifest, directory)
    held = SegmentedStore(layout, directory)
    by_doc = defaultdict(list)
    for pid, doc_id in held.rows("SELECT id, doc_id FROM passages"):
        by_doc[doc_id].append(pid)
    ids, words, labels = [], [], []
    for r in rows:
        pids = by_doc.get(r["id"])
        if not pids:
            continue
        ids.append(r["id"])
        words.append(article_terms(r["title"], r["text"]))
        labels.append(r["story"])
    return ids, words, labels


def bcubed(predicted: list, gold: list) -> tuple[float, float, float]:
    clusters, stories = defaultdict(set), defaultdict(set)
    for i, (p, g) in enumerate(zip(predicted, gold)):
        clusters[p].add(i)
        stories[g].add(i)
    precision = recall = 0.0
    for p, g in zip(predicted, gold):
        both = len(clusters[p] & stories[g])
        precision += both / len(clusters[p])
        recall += both / len(stories[g])
    precision, recall = precision / len(gold), recall / len(gold)
    return precision, recall, 2 * precision * recall / (precision + recall)


def replay(ids, words, labels, orders: int, threshold: float) -> dict:
    from indexer.stories import MemoryStories, assign

    scores = []
    for seed in range(orders):
        order = np.random.default_rng(seed).permutation(len(ids))
        state = MemoryStories()
        for i in order:
            assign(state, ids[i], words[i], threshold)
        predicted = [state.story_of[d] for d in ids]  # as the last article left them (splits move some)
        scores.append(bcubed(predicted, labels) + (len(set(predicted)),))
    p, r, f, n = np.mean(scores, axis=0)
    return {"threshold": threshold, "bcubed_precision": round(float(p), 4),
            "bcubed_recall": round(float(r), 4), "bcubed_f1": round(float(f), 4),
            "f1_min": round(float(min(s[2] for s in scores)), 4), "stories": round(float(n), 1),
            "true_stories": len(set(labels)), "articles": len(ids), "orders": orders}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stories-eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="test", choices=("train", "dev", "test", "all"))
    parser.add_argument("--orders", type=int, default=5)
    parser.add_argument("--grid", action="store_true", help="try thresholds and weights (on train: to choose them)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    data = features(args.split)
    if args.grid:
        results = [replay(*data, args.orders, t) for t in np.round(np.arange(0.1, 0.6, 0.025), 3)]
        results.sort(key=lambda r: -r["bcubed_f1"])
        for r in results[:15]:
            print(json.dumps(r))
        return 0
    from indexer.stories import THRESHOLD

    result = replay(*data, args.orders, THRESHOLD)
    print(json.dumps(result, indent=2) if args.json else
          f"B-cubed F1 {result['bcubed_f1']} (P {result['bcubed_precision']}, R {result['bcubed_recall']}), "
          f"{result['stories']} stories for {result['true_stories']}, {args.orders} orders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
