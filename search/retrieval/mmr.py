"""Maximal marginal relevance (Carbonell & Goldstein, 1998): a result list that trades
some relevance for novelty, so that ten paragraphs saying one thing do not fill a page.

Pure functions over a ranked result list and its passages' vectors; the searcher fetches
the vectors.
"""

from __future__ import annotations

import numpy as np

# Results MMR reorders: the head of the ranking, fixed whatever the page asked, so that
# pages stay slices of one ordering. Past it the ranking follows unchanged.
POOL = 100


def reorder(results: list, scores: np.ndarray, vectors: np.ndarray, weight: float, k: int) -> list:
    """The first `k` of `results` (best first, as many as `scores` and `vectors` give, at
    most POOL of them) in MMR order, followed by the rest as ranked.

    Each next result maximises `weight * relevance - (1 - weight) * redundancy`:
    relevance is its score rescaled to 0..1 over the pool (the ranking's own scale is
    not the vectors'), redundancy its highest cosine with the results already chosen.
    `weight` 1 keeps the ranking; 0 is novelty alone after the first result."""
    pool = min(len(results), POOL, len(scores))
    if pool < 2 or weight >= 1:
        return results[:k]
    scores = np.asarray(scores[:pool], dtype=np.float64)
    spread = scores.max() - scores.min()
    relevance = (scores - scores.min()) / spread if spread > 0 else np.ones(pool)
    vectors = np.asarray(vectors[:pool], dtype=np.float64)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similar = vectors @ vectors.T
    chosen = [int(np.argmax(relevance))]
    redundancy = similar[chosen[0]].copy()
    open_ = np.ones(pool, dtype=bool)
    open_[chosen[0]] = False
    while len(chosen) < min(k, pool):
        gain = np.where(open_, weight * relevance - (1 - weight) * redundancy, -np.inf)
        best = int(np.argmax(gain))  # ties: the better ranked
        chosen.append(best)
        open_[best] = False
        redundancy = np.maximum(redundancy, similar[best])
    return ([results[i] for i in chosen] + results[pool:])[:k]
