"""Semantic search over news articles, with citations.

    from search import Searcher
    searcher = Searcher.open("index")
    for hit in searcher.search("How many Russian casualties since 2022?", k=3):
        print(hit.rank, hit.score, hit.citations[0].source, hit.text)
"""

import importlib

from search.errors import BadRequest, DocumentNotFound, IndexCorrupt, IndexMismatch, IndexNotFound, SearchError

# The searcher (numpy, faiss, ...) is imported on first use: gunicorn's master imports
# this package for its settings (search.service.gunicorn_conf) and is ~25 MB smaller without it.
_LAZY = {"Searcher": "search.searcher", "Hit": "search.hits", "Citation": "search.hits", "Filters": "search.query"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Searcher", "Hit", "Citation", "Filters", "SearchError", "BadRequest", "IndexNotFound", "IndexMismatch",
           "IndexCorrupt", "DocumentNotFound"]
