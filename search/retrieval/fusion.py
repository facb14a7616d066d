"""The fusion of lexical and dense rankings.

Pure functions: the searcher runs the searches, these decide how the ranked lists become one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("dense", "lexical", "hybrid")
# The weights below were chosen on all three evaluation sets together (docs/benchmarks.md):
# SciFact's train split, the news dev set by leave-one-week-out cross-validation, and the
# seed questions; a setting that won one set and lost another was not taken.
#
# Weight of the dense score against BM25 in a passage's own evidence.
DENSE_WEIGHT = 0.65
# Share of the article's evidence (its BM25 as a whole, its best dense passage) in the
# score of the article's leading passage. Finding the right article is what whole-article
# evidence is good at; ranking an article's own paragraphs is not, so it goes to the one
# passage that leads its article and leaves the others to their own evidence.
DOCUMENT_WEIGHT = 0.4
# Weight of the dense side within the article's evidence (BM25 of the whole article gets the rest).
DOCUMENT_DENSE_WEIGHT = 0.4
# Weight of a passage's best sentence in its dense score, the passage vector getting the
# rest: a question is often answered by one sentence that the passage's single vector dilutes.
SENTENCE_WEIGHT = 0.5


@dataclass(frozen=True)
class Weights:
    """How the ranking signals combine (scripts/evaluate ... --weight NAME=V1,V2 tries others)."""

    dense: float = DENSE_WEIGHT
    sentence: float = SENTENCE_WEIGHT
    document: float = DOCUMENT_WEIGHT
    document_dense: float = DOCUMENT_DENSE_WEIGHT


# A ranking is a pair of arrays, (ids, scores), best first; ties go to the lower id so
# that equal scores rank the same way on every run. Fusion works on whole arrays: in
# Python loops it cost more than the searches it fuses (~6 ms per query at depth 1000).
Ranking = tuple[np.ndarray, np.ndarray]


# (numpy's own lexsort and unique cost 3-10x these sorts at this size. A ranking's ids
# are distinct, so sorting them needs no stable sort: numpy's default one is AVX-512
# here, 2.5x faster on 1,000 ids. Fused scores are seldom equal (copies of one text),
# and the default sort orders them 4x faster than the stable one, its few runs of equal
# scores put in id order after it; where many are equal (BM25's often are), the stable
# sort, which uses the runs, beat fixing them.)

def ranking(ids, scores) -> Ranking:
    """(ids, scores) sorted best first, ties by id."""
    ids, scores = by_id(ids, scores)
    order = np.argsort(-scores)
    ranked = scores[order]
    tied = ranked[1:] == ranked[:-1]
    if tied.any():
        # runs of equal scores: positions a..b hold one score; ids are in id order, so
        # sorting a run's positions puts its ids in order
        edges = np.flatnonzero(np.diff(np.concatenate(([0], tied.view(np.int8), [0]))))
        if len(edges) > 2 * 256:
            order = np.argsort(-scores, kind="stable")  # stable: equal scores keep id order
        else:
            for a, b in zip(edges[::2].tolist(), edges[1::2].tolist()):
                order[a:b + 1].sort()
        ranked = scores[order]
    return ids[order], ranked


def union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted distinct ids of both arrays."""
    both = np.concatenate((a, b)).astype(np.int64)
    both.sort()
    return both[np.concatenate(([True], both[1:] != both[:-1]))] if len(both) else both


def lookup(ranked: Ranking, ids: np.ndarray, default: float = 0.0) -> np.ndarray:
    """The score `ranked` gives each of `ids`; `default` for ids it does not hold."""
    keys, values = ranked
    out = np.full(len(ids), default, dtype=np.float64)
    if len(keys):
        if not _is_sorted(keys):
            order = np.argsort(keys)
            keys, values = keys[order], values[order]
        at = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
        found = keys[at] == ids
        out[found] = values[at[found]]
    return out


def _is_sorted(a: np.ndarray) -> bool:
    return bool(len(a) < 2 or (a[1:] >= a[:-1]).all())


def by_id(ids, scores) -> tuple[np.ndarray, np.ndarray]:
    """(ids, scores) in id order: what fusion needs of a list, which looks scores up by
    id, one sort where a ranking takes two."""
    ids, scores = np.asarray(ids, dtype=np.int64), np.asarray(scores, dtype=np.float64)
    if _is_sorted(ids):
        return ids, scores
    order = np.argsort(ids)
    return ids[order], scores[order]


def blended(ranked: Ranking, best_sentence: np.ndarray, weight: float = SENTENCE_WEIGHT) -> np.ndarray:
    """Dense hits' scores as a mix of passage and best-sentence similarity, in the order of
    `ranked`. `best_sentence` is aligned with the head of the ranking (it may be shorter);
    NaN, or past its end, where a passage has no sentence score, which keeps the passage's own."""
    ids, scores = ranked
    best = scores.copy()
    head = best_sentence[:len(scores)]
    best[:len(head)] = np.where(np.isnan(head), scores[:len(head)], head)
    return (1 - weight) * scores + weight * best


def normalise(scores: np.ndarray) -> np.ndarray:
    """Min-max scale scores to 0..1 (the best is 1; all 1 when they are all equal)."""
    scores = np.asarray(scores, dtype=np.float64)
    if not len(scores):
        return scores
    low, span = scores.min(), scores.max() - scores.min()
    return (scores - low) / span if span > 0 else np.ones_like(scores)


def standardise(scores: np.ndarray) -> np.ndarray:
    """z-scores: how far above the candidates' mean, in standard deviations (0 when all equal).
    A side whose scores are flat (a question whose words every passage shares) moves its
    candidates apart less than one with a clear best; min-max scaling would stretch both
    to 0..1 and give a near-tie the full weight of the side."""
    scores = np.asarray(scores, dtype=np.float64)
    if not len(scores):
        return scores
    centred = scores - scores.sum() / len(scores)
    spread = np.sqrt(centred @ centred / len(scores))  # numpy's mean() and std() cost 4x this here
    return centred / spread if spread > 0 else np.zeros_like(scores)


def fuse(dense: Ranking, passages: Ranking, documents: Ranking, document_row: np.ndarray,
         weights: Weights = Weights()) -> Ranking:
    """One ranking of the passages either side found, scores in 0..1 (best first).

    `dense` and `passages` (BM25) score passages by id, `documents` scores whole articles
    (BM25) by their row, and `document_row[id]` is a passage's article row. Each list may
    be in id order (`by_id`) rather than best first: the result is the same.

    A passage's own evidence is a convex combination of its standardised dense and BM25
    scores. Its article's evidence (the article's BM25 and its best dense passage,
    standardised over the candidate articles) is added to the one passage that leads the
    article on its own evidence, so that it decides which articles come first without
    lifting every paragraph of a long article over the answer in another one."""
    dense, passages = by_id(*dense), by_id(*passages)
    ids = union(dense[0], passages[0])
    if not len(ids):
        return ids, np.zeros(0)
    # a passage BM25 did not list shares no term with the question (or ranked below its
    # depth): 0; one the dense list lacks ranked below its last, so takes its lowest cosine
    # (the searcher adds the cosines of the passages only BM25 found)
    cosine = np.full(len(ids), dense[1].min() if len(dense[1]) else 0.0)
    cosine[np.searchsorted(ids, dense[0])] = dense[1]
    bm25 = np.zeros(len(ids))
    bm25[np.searchsorted(ids, passages[0])] = passages[1]
    own = weights.dense * standardise(cosine) + (1 - weights.dense) * standardise(bm25)
    # the candidates grouped by article: the article's best cosine and its leading passage
    rows = document_row[ids]
    order = np.argsort(rows, kind="stable")
    grouped = rows[order]
    first = np.concatenate(([True], grouped[1:] != grouped[:-1]))  # an article's first candidate
    starts = np.flatnonzero(first)
    article = np.empty(len(ids), dtype=np.int64)
    article[order] = np.cumsum(first) - 1
    evidence = (weights.document_dense * standardise(np.maximum.reduceat(cosine[order], starts))
                + (1 - weights.document_dense) * standardise(lookup(documents, grouped[starts])))
    leads = own >= np.maximum.reduceat(own[order], starts)[article]
    fused = (1 - weights.document) * own + weights.document * leads * (evidence - evidence.min())[article]
    return ranking(ids, normalise(fused))
