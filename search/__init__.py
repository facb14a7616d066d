"""Semantic search over news articles, with citations.

    from search import Searcher
    searcher = Searcher.open("index")
    for hit in searcher.search("How many Russian casualties since 2022?", k=3):
        print(hit.rank, hit.score, hit.citations[0].source, hit.text)
"""

from search.errors import BadRequest, DocumentNotFound, IndexCorrupt, IndexMismatch, IndexNotFound, SearchError


def __getattr__(name: str):
    # The searcher (numpy, faiss, ...) is imported on first use: gunicorn's master imports
    # this package for its settings (search.service.gunicorn_conf) and is ~25 MB smaller without it.
    if name in ("Searcher", "Hit", "Citation"):
        from search import searcher

        return getattr(searcher, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Searcher", "Hit", "Citation", "SearchError", "BadRequest", "IndexNotFound", "IndexMismatch",
           "IndexCorrupt", "DocumentNotFound"]
