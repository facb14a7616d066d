"""Answer highlighting: the sentence of a passage that best answers the query."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search.index.lexical import query_terms


@dataclass(frozen=True)
class Highlight:
    start: int  # within the hit's text
    end: int
    doc_start: int  # within the cited document's original text
    doc_end: int
    text: str


def best_sentence(query: str, query_vector: np.ndarray | None, passage_start: int, passage_text: str,
                  sentences: list[tuple[int, int]], vectors: np.ndarray | None) -> Highlight:
    """Pick the sentence closest in meaning to the query (cosine of sentence vectors made
    at build time); without vectors, the one sharing the most query words.

    Args:
        sentences: (start, end) absolute offsets of the passage's sentences, in order.
        vectors: their unit vectors, one row each, or None.
    """
    if vectors is not None and query_vector is not None and len(vectors) == len(sentences):
        scores = vectors.astype(np.float32) @ query_vector
    else:
        terms = query_terms(query)
        doc_text = lambda a, b: passage_text[a - passage_start:b - passage_start]  # noqa: E731
        scores = np.array([len(terms & query_terms(doc_text(a, b))) for a, b in sentences], dtype=np.float32)
    a, b = sentences[int(np.argmax(scores))] if sentences else (passage_start, passage_start + len(passage_text))
    start, end = a - passage_start, b - passage_start
    return Highlight(start, end, a, b, passage_text[start:end])
