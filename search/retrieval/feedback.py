"""Past the first answers, a ranking that finds more: pseudo-relevance feedback.

The fused ranking is built to put the answer first; further down, a reader paging on (or
a `sort=date` listing of everything that answers) wants every relevant article in the
list. The best passages of the fused ranking describe what the question is about in the
corpus's own words, so the question's vector moved toward theirs (Rocchio's feedback)
finds articles that say the same thing differently, which neither the question's words
nor its own vector reached. The first answers keep the fused order; below them, the
fused ranking and the feedback search are merged by reciprocal rank, which needs no
common scale between the two. Chosen on SciFact's train split (docs/benchmarks.md).

Pure functions: the searcher runs the searches.
"""

from __future__ import annotations

import numpy as np

from search.ranked import Ranking

# The fused ranking's first this many answers keep its order: its passages up to the
# one where both this many articles and this many results (a passage's copies in other
# articles counted once, as collapse shows them) have come in. Precision at the head is
# the fusion's job; a request for this many results or fewer never reads past it.
HEAD = 10
# How deep the feedback search goes: the passages whose best sentence is read (the
# searcher's SENTENCE_DEPTH), which a tail of a hundred articles draws on.
DEPTH = 300
# The best passages of the fused ranking the question's vector moves toward.
FEEDBACK_PASSAGES = 5
# How far it moves: the weight of their mean vector against the question's own.
FEEDBACK_WEIGHT = 1.0
# Reciprocal rank fusion of the rest: 1 / (RRF_K + rank) from each list, the fused list's
# counted FUSED_WEIGHT times (it holds BM25's evidence, which the feedback search lacks).
RRF_K = 10
FUSED_WEIGHT = 2.0


def moved(vector: np.ndarray, feedback: np.ndarray, weight: float = FEEDBACK_WEIGHT) -> np.ndarray:
    """`vector` moved toward the mean of the rows of `feedback` (unit length, float32);
    `vector` itself when there is no feedback."""
    if not len(feedback):
        return np.asarray(vector, dtype=np.float32)
    out = np.asarray(vector, dtype=np.float32) + weight * np.asarray(feedback, dtype=np.float32).mean(axis=0)
    norm = np.linalg.norm(out)
    return out / norm if norm > 0 else np.asarray(vector, dtype=np.float32)


def head_length(ids: np.ndarray, document_row: np.ndarray, group_of: np.ndarray | None = None,
                answers: int | None = None) -> int:
    """How many passages of a best-first ranking it takes to reach both its first
    `answers` distinct articles and its first `answers` distinct results (`group_of[id]`:
    the passage's near-duplicate group, -1 for none); all of them when it holds fewer."""
    answers = answers or HEAD
    articles, results = set(), set()
    step = 4 * answers  # almost always enough: read a slice at a time
    for start in range(0, len(ids), step):
        chunk = ids[start:start + step]
        rows = document_row[chunk]
        keys = rows if group_of is None else np.where(group_of[chunk] >= 0, -1 - group_of[chunk], rows)
        for n, (row, key) in enumerate(zip(rows.tolist(), keys.tolist())):
            articles.add(row)
            results.add(key)
            if len(articles) >= answers and len(results) >= answers:
                return start + n + 1
    return len(ids)


def with_tail(fused: Ranking, found: Ranking, document_row: np.ndarray, group_of: np.ndarray | None = None,
              answers: int | None = None, k: float = RRF_K, fused_weight: float = FUSED_WEIGHT) -> Ranking:
    """`fused` (best first) with its head (`head_length`, `answers` default HEAD) as it
    is, and after it the rest of `fused` and of `found` (the feedback search, best first):
    by the reciprocal-rank sum of their article's places in the two (an article's place
    is that of its best passage among the articles), an article's passages in the order
    of their own. Scores stay in order: the tail's fall below the head's last. A ranking
    that is all head (fewer answers than that) is left as it is."""
    ids, scores = fused
    head = head_length(ids, document_row, group_of, answers)
    if head == len(ids):  # (all head: a request for a page of it never runs the feedback search)
        return fused
    extra = found[0][~np.isin(found[0], ids)]  # what only the feedback search found
    tail = np.concatenate((ids[head:], extra)).astype(np.int64)
    in_fused = np.concatenate((np.arange(head + 1, len(ids) + 1), np.zeros(len(extra), dtype=np.int64)))
    by_passage = fused_weight * _reciprocal(in_fused, k) + _reciprocal(_places(tail, found[0]), k)
    rows = document_row[tail]
    by_article = (fused_weight * _reciprocal(_places(rows, _articles(ids, document_row)), k)
                  + _reciprocal(_places(rows, _articles(found[0], document_row)), k))
    order = np.lexsort((tail, -by_passage, -by_article))
    tail_ids, tail_rrf = tail[order], by_article[order]
    floor = float(scores[head - 1])
    # the tail's best just under the head's last, the rest in proportion (an article's
    # passages share its score)
    tail_scores = floor * (1 - 1e-6) * tail_rrf / tail_rrf[0] if tail_rrf[0] > 0 else np.zeros(len(tail_ids))
    return np.concatenate((ids[:head], tail_ids)), np.concatenate((scores[:head], tail_scores))


def _articles(ids: np.ndarray, document_row: np.ndarray) -> np.ndarray:
    """The articles of a best-first ranking of passages, in the order they first come."""
    rows = document_row[ids]
    _, first = np.unique(rows, return_index=True)
    return rows[np.sort(first)]


def _places(keys: np.ndarray, ranked: np.ndarray) -> np.ndarray:
    """The place of each of `keys` in `ranked` (distinct, best first; 1 the best), 0 for
    keys it does not hold."""
    out = np.zeros(len(keys), dtype=np.int64)
    if not len(ranked):
        return out
    order = np.argsort(ranked)
    sorted_ranked = ranked[order]
    at = np.minimum(np.searchsorted(sorted_ranked, keys), len(ranked) - 1)
    held = sorted_ranked[at] == keys
    out[held] = order[at[held]] + 1
    return out


def _reciprocal(places: np.ndarray, k: float) -> np.ndarray:
    """1 / (k + place), 0 where the place is 0 (not in the list)."""
    return np.where(places > 0, 1.0 / (k + np.maximum(places, 1)), 0.0)
