"""The fusion of lexical and dense rankings.

Pure functions: the searcher runs the searches, these decide how the ranked lists become one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("dense", "lexical", "hybrid")
# Weight of the dense score in the fused score; the lexical one gets the rest. Chosen on
# SciFact's train split (scripts/evaluate ../shared/eval/scifact --split train --mode hybrid).
DENSE_WEIGHT = 0.65
# Share of a passage's lexical score that comes from BM25 over its whole document (the
# rest from BM25 over the passage itself). Chosen on SciFact's train split.
DOCUMENT_WEIGHT = 0.9
# Weight of a passage's best sentence in its dense score, the passage vector getting the
# rest: a question is often answered by one sentence that the passage's single vector
# dilutes. Chosen on SciFact's train split with DENSE_WEIGHT (scripts/evaluate).
SENTENCE_WEIGHT = 0.3
# Cosine below which a dense best hit is not "close in meaning" (see fuse). Chosen on
# SciFact train with the int8 model: nDCG@10 0.7426 at 0 (plain min-max), 0.745 at 0.6,
# 0.7494 at 0.7; 0.7 pushes a seed question's answer (Lukashenko, dense best 0.63) to 5th.
DENSE_FLOOR = 0.6


@dataclass(frozen=True)
class Weights:
    """How the ranking signals combine (the defaults were chosen on SciFact's train split:
    scripts/evaluate ... --split train --dense-weight ... --sentence-weight ... --document-weight ...)."""

    dense: float = DENSE_WEIGHT
    sentence: float = SENTENCE_WEIGHT
    document: float = DOCUMENT_WEIGHT
    dense_floor: float = DENSE_FLOOR


# A ranking is a pair of arrays, (ids, scores), best first; ties go to the lower id so
# that equal scores rank the same way on every run. Fusion works on whole arrays: in
# Python loops it cost more than the searches it fuses (~6 ms per query at depth 1000).
Ranking = tuple[np.ndarray, np.ndarray]


# (numpy's own lexsort and unique cost 3-10x these sorts at this size. A ranking's ids
# are distinct, so sorting them needs no stable sort: numpy's default one is AVX-512
# here, 2.5x faster on 1,000 ids. Scores are often equal, and there the stable sort,
# which uses the runs, beat an unstable one followed by putting ties back in order.)

def ranking(ids, scores) -> Ranking:
    """(ids, scores) sorted best first, ties by id."""
    ids, scores = by_id(ids, scores)
    order = np.argsort(-scores, kind="stable")  # stable: equal scores keep id order
    return ids[order], scores[order]


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


def lexical_scores(passages: Ranking, documents: Ranking, candidates: np.ndarray, candidate_docs: np.ndarray,
                   document_weight: float = DOCUMENT_WEIGHT) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate passage's lexical score in 0..1, as (candidates, scores) in the
    candidates' order, not best first (fusion looks them up by id; `ranking` sorts them):
    its own BM25 mixed with its document's (`candidate_docs` holds each candidate's
    document row), then min-max normalised. The raw scores are mixed, not normalised
    ones, so that a document ranking with no discriminating terms (in a small collection
    most words occur in most documents, and document BM25 is near zero) cannot outweigh
    the passages'."""
    mixed = ((1 - document_weight) * lookup(passages, candidates)
             + document_weight * lookup(documents, candidate_docs))
    return np.asarray(candidates, dtype=np.int64), normalise(mixed)


def fuse(dense: Ranking, lexical: Ranking, dense_weight: float = DENSE_WEIGHT,
         dense_floor: float = DENSE_FLOOR) -> Ranking:
    """Convex combination of min-max-normalised dense scores and lexical scores (already
    in 0..1); a passage missing from one list scores 0 there. Either list may be in id
    order (`by_id`) rather than best first: the result is the same. On SciFact this beat
    reciprocal-rank fusion by about 0.02 nDCG@10 (../shared/eval/scifact/FINDINGS.md).

    The dense scores are scaled as if the best were at least `dense_floor`: when no
    passage is close in meaning (the query "August 6": best cosine 0.23), the dense side
    has nothing to say, and plain min-max would still hand its top hit the full weight."""
    ids = union(dense[0], lexical[0])
    scores = dense[1]
    if len(scores) and scores.max() < dense_floor:
        scores = np.append(scores, dense_floor)
    d = lookup((dense[0], normalise(scores)[:len(dense[0])]), ids)
    return ranking(ids, dense_weight * d + (1 - dense_weight) * lookup(lexical, ids))
