"""The fusion of lexical and dense rankings.

Pure functions: the searcher runs the searches, these decide how the ranked lists become one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search.ranked import Ranking, by_id, lookup, ranking, union
from search.retrieval.feedback import FEEDBACK_WEIGHT

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
# How much a question that asks for what is recent favours articles near its date
# (search/retrieval/recency.py), and how fast that preference fades.
RECENCY_WEIGHT = 0.5
RECENCY_HALF_LIFE_DAYS = 7.0
# How far (in standard deviations of a passage's own evidence) an article's other passages
# may trail its leading one and still share its evidence: one trailing by this much gets
# 1/e of it, so a near-tie inside the right article (a question's rare word in the
# paragraph next to the answer) does not leave the answer without its article's support,
# while paragraphs well behind stay on their own evidence. 0 gives it to the leader alone.
LEAD_MARGIN = 0.25


@dataclass(frozen=True)
class Weights:
    """How the ranking signals combine (scripts/evaluate ... --weight NAME=V1,V2 tries others)."""

    dense: float = DENSE_WEIGHT
    sentence: float = SENTENCE_WEIGHT
    document: float = DOCUMENT_WEIGHT
    document_dense: float = DOCUMENT_DENSE_WEIGHT
    recency: float = RECENCY_WEIGHT
    half_life: float = RECENCY_HALF_LIFE_DAYS
    lead_margin: float = LEAD_MARGIN
    # how far the question's vector moves toward the best passages for the ranking past the
    # first answers (search/retrieval/feedback.py); 0: no feedback search
    feedback: float = FEEDBACK_WEIGHT


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
    standardised over the candidate articles) is added in full to the passage that leads the
    article on its own evidence, and to the article's others fading with how far they trail
    it (`Weights.lead_margin`), so that it decides which articles come first without
    lifting every paragraph of a long article over the answer in another one. An article's
    best passage is its leader whatever the margin, so article rankings do not depend on it."""
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
    behind = np.maximum.reduceat(own[order], starts)[article] - own  # 0 for the leading passage
    share = np.exp(-behind / weights.lead_margin) if weights.lead_margin > 0 else behind <= 0
    fused = (1 - weights.document) * own + weights.document * share * (evidence - evidence.min())[article]
    return ranking(ids, normalise(fused))
