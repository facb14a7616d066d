"""Lexical queries and the fusion of lexical and dense rankings.

Pure functions: the searcher runs the queries, these decide what is asked and how the
two ranked lists become one.
"""

from __future__ import annotations

import re
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


@dataclass(frozen=True)
class Weights:
    """How the ranking signals combine (the defaults were chosen on SciFact's train split:
    scripts/evaluate ... --split train --dense-weight ... --sentence-weight ... --document-weight ...)."""

    dense: float = DENSE_WEIGHT
    sentence: float = SENTENCE_WEIGHT
    document: float = DOCUMENT_WEIGHT


# Lucene's default English stop set: words that match nearly every passage.
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with".split())
# What FTS5's unicode61 tokenizer keeps as a token: runs of letters and digits.
_TOKEN = re.compile(r"[^\W_]+")


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression for a natural-language query: any of its words.

    A written unit that the tokenizer splits ("710,000", "KN-23", "U.S.") stays together
    as a phrase, so exact figures and names match as written. Single stop words are
    dropped. Every token is quoted: nothing in the query is FTS5 syntax.
    """
    phrases = []
    for unit in text.split():
        tokens = _TOKEN.findall(unit.casefold())
        if len(tokens) == 1 and tokens[0] in STOP_WORDS:
            continue
        if tokens:
            phrases.append('"' + " ".join(tokens) + '"')
    return " OR ".join(dict.fromkeys(phrases)) or None


def query_terms(text: str) -> set[str]:
    """The content words of a query, for word-overlap highlighting."""
    return {t for t in _TOKEN.findall(text.casefold()) if t not in STOP_WORDS}


# A ranking is a pair of arrays, (ids, scores), best first; ties go to the lower id so
# that equal scores rank the same way on every run. Fusion works on whole arrays: in
# Python loops it cost more than the searches it fuses (~6 ms per query at depth 1000).
Ranking = tuple[np.ndarray, np.ndarray]


def ranking(ids, scores) -> Ranking:
    """(ids, scores) sorted best first, ties by id."""
    ids, scores = np.asarray(ids, dtype=np.int64), np.asarray(scores, dtype=np.float64)
    order = np.lexsort((ids, -scores))
    return ids[order], scores[order]


def lookup(ranked: Ranking, ids: np.ndarray, default: float = 0.0) -> np.ndarray:
    """The score `ranked` gives each of `ids`; `default` for ids it does not hold."""
    keys, values = ranked
    out = np.full(len(ids), default, dtype=np.float64)
    if len(keys):
        order = np.argsort(keys, kind="stable")
        at = np.minimum(np.searchsorted(keys[order], ids), len(keys) - 1)
        found = keys[order][at] == ids
        out[found] = values[order][at[found]]
    return out


def blend_sentences(ranked: Ranking, best_sentence: np.ndarray, weight: float = SENTENCE_WEIGHT) -> Ranking:
    """Re-score dense hits as a mix of passage and best-sentence similarity (`best_sentence`
    is aligned with the ranking; NaN where a passage has no sentence vectors)."""
    ids, scores = ranked
    best = np.where(np.isnan(best_sentence), scores, best_sentence)
    return ranking(ids, (1 - weight) * scores + weight * best)


def normalise(scores: np.ndarray) -> np.ndarray:
    """Min-max scale scores to 0..1 (the best is 1; all 1 when they are all equal)."""
    scores = np.asarray(scores, dtype=np.float64)
    if not len(scores):
        return scores
    low, span = scores.min(), scores.max() - scores.min()
    return (scores - low) / span if span > 0 else np.ones_like(scores)


def lexical_scores(passages: Ranking, documents: Ranking, candidates: np.ndarray, candidate_docs: np.ndarray,
                   document_weight: float = DOCUMENT_WEIGHT) -> Ranking:
    """Each candidate passage's lexical score in 0..1: its own BM25 mixed with its
    document's (`candidate_docs` holds each candidate's document row), then min-max
    normalised. The raw scores are mixed, not normalised ones, so that a document
    ranking with no discriminating terms (in a small collection most words occur in most
    documents, and document BM25 is near zero) cannot outweigh the passages'."""
    mixed = ((1 - document_weight) * lookup(passages, candidates)
             + document_weight * lookup(documents, candidate_docs))
    return ranking(candidates, normalise(mixed))


def fuse(dense: Ranking, lexical: Ranking, dense_weight: float = DENSE_WEIGHT) -> Ranking:
    """Convex combination of min-max-normalised dense scores and lexical scores (already
    in 0..1); a passage missing from one list scores 0 there. On SciFact this beat
    reciprocal-rank fusion by about 0.02 nDCG@10 (../shared/eval/scifact/FINDINGS.md)."""
    ids = np.union1d(dense[0], lexical[0])
    d = lookup((dense[0], normalise(dense[1])), ids)
    return ranking(ids, dense_weight * d + (1 - dense_weight) * lookup(lexical, ids))
