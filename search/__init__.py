"""Semantic search over news articles, with citations.

    from search import Searcher
    searcher = Searcher.open("index")
    for hit in searcher.search("How many Russian casualties since 2022?", k=3):
        print(hit.rank, hit.score, hit.citations[0].source, hit.text)
"""

from .errors import BadRequest, DocumentNotFound, IndexCorrupt, IndexMismatch, IndexNotFound, SearchError
from .searcher import Citation, Hit, Searcher

__all__ = ["Searcher", "Hit", "Citation", "SearchError", "BadRequest", "IndexNotFound", "IndexMismatch",
           "IndexCorrupt", "DocumentNotFound"]
