"""Stories at query time: the articles of one event (placed at index time,
indexer/stories.py) as a timeline, and search results one per story."""

from __future__ import annotations

import numpy as np

from search.retrieval.collapse import first_distinct

# group=story cites at most this many of a story's other articles (their best passage each)
MORE_ARTICLES = 10


def timeline(documents: list[dict], passages: dict[str, dict] | None = None) -> dict:
    """A story's summary from its live articles (`SegmentedStore.documents_by_row`): the
    headline of its first article as its label, its first and last publication dates, how
    many articles and sources, and the articles in order of publication (undated last),
    each with `passages[doc_id]` (its passage that answered a question: `text`,
    `paragraph`, `start`, `end`) or its lead, so that an entry links to where it says so."""
    passages = passages or {}
    ordered = sorted(documents, key=lambda d: (d["published"] is None, d["published"] or "", d["row"]))
    dates = [d["published"] for d in ordered if d["published"]]
    first = ordered[0]
    return {"label": first["title"] or _headline(first["lead"]),
            "first_published": dates[0] if dates else None, "last_published": dates[-1] if dates else None,
            "articles": len(ordered), "sources": len({d["source"] for d in ordered}),
            "timeline": [{"doc_id": d["doc_id"], "published": d["published"], "source": d["source"],
                          "title": d["title"], **passages.get(d["doc_id"], _lead(d))} for d in ordered]}


def _lead(document: dict) -> dict:
    return {"text": document["lead"], "paragraph": document["lead_paragraph"], "start": document["lead_start"],
            "end": document["lead_end"]}


def _headline(text: str, limit: int = 120) -> str:
    """An untitled article's label: its lead, cut at a word before `limit` characters."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def per_story(results: list[tuple[int, float, list[int]]], ranked, document_row: np.ndarray,
              story_of_row: np.ndarray, k: int) -> tuple[list[tuple[int, float, list[int]]], dict[int, list[int]]]:
    """The first `k` results of distinct stories (an article without a story is a story of
    its own), and for each the best passage of each of its story's other articles in the
    ranking, best first (at most MORE_ARTICLES)."""
    def story(pid: int) -> int:
        row = int(document_row[pid])
        return int(story_of_row[row]) if story_of_row[row] >= 0 else -2 - row

    kept = first_distinct(results, story, k)
    others: dict[int, list[int]] = {}
    ids = ranked[0]
    rows = document_row[ids]
    keys = np.where(story_of_row[rows] >= 0, story_of_row[rows], -2 - rows)
    for pid, _, members in kept:
        cited = {int(document_row[m]) for m in members}
        found = []
        for m, row in zip(ids[keys == story(pid)].tolist(), rows[keys == story(pid)].tolist()):
            if row not in cited:
                cited.add(row)
                found.append(m)
                if len(found) == MORE_ARTICLES:
                    break
        others[pid] = found
    return kept, others
