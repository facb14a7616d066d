"""The JSON bodies the service answers with; `ask --json` prints the same bytes."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from search.query import Filters
from search.retrieval.recency import today

if TYPE_CHECKING:  # the searcher loads the model and the index: `ask --url` and --help need neither
    from search.searcher import Searcher


def search_body(searcher: Searcher, query: str, k: int, mode: str | None = None, collapse: bool = True,
                offset: int = 0, filters: Filters = Filters(), as_of: str | None = None,
                dates: str = "interpreted", sort: str = "relevance", group: str = "none",
                facets: list[str] = (), diversity: int | None = None, mmr: float | None = None) -> dict:
    """The body of a successful `/search` response."""
    started = time.perf_counter()
    hits = searcher.search(query, k, mode=mode, collapse=collapse, offset=offset, filters=filters, as_of=as_of,
                           dates=dates, sort=sort, group=group, diversity=diversity, mmr=mmr)
    took_ms = round((time.perf_counter() - started) * 1000, 2)
    as_of = as_of or today()
    interpreted = searcher.interpret(query, as_of, dates, filters)
    body = {"query": query, "k": k, "offset": offset, "mode": searcher.mode if mode is None else mode,
            "collapse": collapse, "sort": sort, "group": group, "diversity": diversity, "mmr": mmr,
            "as_of": as_of,
            "interpreted": interpreted and interpreted.to_dict(), "took_ms": took_ms,
            "results": [hit.to_dict() for hit in hits]}
    if facets:
        body["facets"] = searcher.facets(query, list(facets), mode, filters, as_of, dates)
        body["facet_depth"] = searcher.FACET_DEPTH
    return body


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def dumps(body: dict) -> str:
    # Real characters rather than \u escapes: passages are quoted text for people and chatbots.
    return json.dumps(body, ensure_ascii=False)
