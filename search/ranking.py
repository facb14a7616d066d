"""Lexical queries and the fusion of lexical and dense rankings.

Pure functions: the searcher runs the queries, these decide what is asked and how the
two ranked lists become one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


def blend_sentences(ranked: list[tuple[int, float]], best_sentence: dict[int, float],
                    weight: float = SENTENCE_WEIGHT) -> list[tuple[int, float]]:
    """Re-score dense hits as a mix of passage and best-sentence similarity, best first."""
    scored = [(pid, (1 - weight) * score + weight * best_sentence.get(pid, score)) for pid, score in ranked]
    return sorted(scored, key=lambda item: (-item[1], item[0]))


def normalise(ranked: list[tuple[int, float]]) -> dict[int, float]:
    """Min-max scale a ranked list's scores to 0..1 (the best is 1)."""
    if not ranked:
        return {}
    scores = [s for _, s in ranked]
    low, high = min(scores), max(scores)
    span = high - low
    return {i: (s - low) / span if span > 0 else 1.0 for i, s in ranked}


def lexical_scores(passages: list[tuple[int, float]], documents: list[tuple[int, float]], doc_of,
                   candidates, document_weight: float = DOCUMENT_WEIGHT) -> list[tuple[int, float]]:
    """Each candidate passage's lexical score in 0..1: its own BM25 mixed with its
    document's, then min-max normalised. The raw scores are mixed, not normalised ones,
    so that a document ranking with no discriminating terms (in a small collection most
    words occur in most documents, and document BM25 is near zero) cannot outweigh the
    passages'. `doc_of` maps a passage to its document's row."""
    p, d = dict(passages), dict(documents)
    mixed = [(pid, (1 - document_weight) * p.get(pid, 0.0) + document_weight * d.get(doc_of[pid], 0.0))
             for pid in candidates]
    scaled = normalise(mixed)
    return sorted(scaled.items(), key=lambda item: (-item[1], item[0]))


def fuse(dense: list[tuple[int, float]], lexical: list[tuple[int, float]],
         dense_weight: float = DENSE_WEIGHT) -> list[tuple[int, float]]:
    """Convex combination of min-max-normalised dense scores and lexical scores (already
    in 0..1); a passage missing from one list scores 0 there. On SciFact this beat
    reciprocal-rank fusion by about 0.02 nDCG@10 (../shared/eval/scifact/FINDINGS.md)."""
    d, lx = normalise(dense), dict(lexical)
    fused = {i: dense_weight * d.get(i, 0.0) + (1 - dense_weight) * lx.get(i, 0.0) for i in d.keys() | lx.keys()}
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))
