"""`search-mcp`: the search as a Model Context Protocol server over stdio, for chatbots.

Tools:
- `search(query, k, doc_id, source, published_from, published_to, offset, as_of, dates, group, diversity, mmr)`: passages with
  their citations (the HTTP `/search` results);
- `context(query, k, max_chars, ...)`: numbered, cited text to paste into a prompt, and
  its sources (`/context`);
- `get_document(doc_id)`: a whole document (`/documents/<doc_id>`), also the resource
  `document://{doc_id}`.
Bad input is a tool error naming the problem, as the HTTP service words it. The index is
$SEARCH_INDEX (or --index), or an index held in Milvus ($SEARCH_STORE or --store: no alert
tools there); a new generation is picked up as the service does.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import Any

from search import settings


def build_server(index: str):
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    from search.alerts import AlertStore
    from search.errors import SearchError
    from search.live import LiveSearcher
    from search.query import Filters, checked
    from search.searcher import Searcher

    live = LiveSearcher(index, functools.partial(Searcher.open, index))
    alerts = None if live.remote else AlertStore(index)
    server = MCPServer("newsearch", log_level="WARNING", instructions=(
        "Search a news archive. `search` returns ranked passages, each with citations (document id, "
        "title, source, paragraph, character span); `context` returns the same as numbered text to quote "
        "and cite as [n]; `stories` groups the answers by event, each a timeline of its articles; "
        "`get_document` returns a whole article."))

    def answer(call):
        try:
            return call()
        except SearchError as e:  # the caller's mistake, worded as the HTTP API words it
            raise ToolError(f"{e.code}: {e}") from None

    @server.tool(structured_output=True, description="Passages of the news archive that best answer a question, with citations.")
    def search(query: str, k: int = 5, doc_id: list[str] | None = None, source: list[str] | None = None,
               published_from: str | None = None, published_to: str | None = None, offset: int = 0,
               as_of: str | None = None, dates: str = "interpreted", group: str = "none",
               diversity: int | None = None, mmr: float | None = None) -> dict[str, Any]:
        filters = answer(lambda: Filters.of(doc_id, source, published_from, published_to))
        searcher = live.get()
        hits = answer(lambda: searcher.search(query, k, offset=offset, filters=filters, as_of=as_of, dates=dates,
                                              group=group, diversity=diversity, mmr=mmr))
        interpreted = searcher.interpret(query, as_of, dates, filters)
        return {"query": query, "interpreted": interpreted and interpreted.to_dict(),
                "results": [hit.to_dict() for hit in hits]}

    @server.tool(structured_output=True, description="Prompt-ready context: the best passages as numbered text ([1], [2], ...), each "
                             "followed by its source line, within max_chars, with the sources as data; neighbours=N brings "
                             "N paragraphs of the article either side of each passage.")
    def context(query: str, k: int = 5, max_chars: int = 4000, doc_id: list[str] | None = None,
                source: list[str] | None = None, published_from: str | None = None,
                published_to: str | None = None, as_of: str | None = None, neighbours: int = 0,
                mmr: float | None = None) -> dict[str, Any]:
        filters = answer(lambda: Filters.of(doc_id, source, published_from, published_to))
        return answer(lambda: live.get().context(query, k, max_chars, filters=filters, as_of=as_of,
                                                 neighbours=neighbours, mmr=mmr))

    @server.tool(structured_output=True, description="The stories (events) of the archive that answer a question, best "
                             "first, each a timeline of its articles: date, source, title and the passage that answers.")
    def stories(query: str, k: int = 5, doc_id: list[str] | None = None, source: list[str] | None = None,
                published_from: str | None = None, published_to: str | None = None,
                as_of: str | None = None) -> dict[str, Any]:
        filters = answer(lambda: Filters.of(doc_id, source, published_from, published_to))
        return {"query": query, "stories": answer(lambda: live.get().stories(query, k, filters=filters, as_of=as_of))}

    @server.tool(structured_output=True, description="One story by its id (a result's `story`): its articles in order "
                             "of publication.")
    def get_story(story_id: int) -> dict[str, Any]:
        return answer(lambda: live.get().story(story_id))

    if alerts is not None:  # kept beside an index directory; an index in Milvus has none
        @server.tool(structured_output=True, description="Subscribe to a question: every article ingested from now on is "
                                 "matched against it (among its first k results and close in meaning); returns the alert's id.")
        def create_alert(query: str, k: int = 10, source: list[str] | None = None, published_from: str | None = None,
                         published_to: str | None = None) -> dict[str, Any]:
            from search.service.contract import AlertWrite

            given = {"query": query, "k": k, "source": source, "published_from": published_from,
                     "published_to": published_to}
            asked = answer(lambda: checked(AlertWrite, {name: v for name, v in given.items() if v is not None}))
            filters = {name: v for name, v in given.items() if v is not None and name not in ("query", "k")}
            return alerts.create(asked.query, asked.k, filters, None, live.get().embedder)

        @server.tool(structured_output=True, description="The new articles that matched an alert since a date or UTC time "
                                 "(YYYY-MM-DD or ISO 8601), with their passage and citations.")
        def alert_matches(alert_id: str, since: str | None = None) -> dict[str, Any]:
            return {"alert": alert_id, "matches": answer(lambda: alerts.matches(alert_id, since))}

    @server.tool(structured_output=True, description="A whole article of the archive by its document id (from a citation).")
    def get_document(doc_id: str) -> dict[str, Any]:
        return answer(lambda: live.get().document(doc_id))

    @server.resource("document://{doc_id}", description="A whole article by its document id",
                     mime_type="application/json")
    def document(doc_id: str) -> str:
        import json

        return json.dumps(answer(lambda: live.get().document(doc_id)), ensure_ascii=False)

    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="search-mcp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default=settings.value("SEARCH_INDEX"),
                        help="index directory (default: $SEARCH_INDEX or ./index)")
    parser.add_argument("--store", default=settings.value("SEARCH_STORE"), metavar="milvus://HOST:PORT/NAME",
                        help="serve an index held in Milvus instead (no alert tools; default: $SEARCH_STORE)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is on disk; never reach for a hub
    from search.errors import SearchError

    try:
        server = build_server(args.store or args.index)
    except SearchError as e:
        print(f"search-mcp: error: {e}", file=sys.stderr)
        return 1
    server.run("stdio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
