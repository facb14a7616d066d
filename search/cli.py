"""`ask "question"`: search from the command line, locally or against a running service.

It loads, searches and prints; it never builds anything. `--json` prints exactly the body
the HTTP service answers with.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import urllib.error
import urllib.parse
import urllib.request


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ask", description="Ask a question of the news index.")
    parser.add_argument("question", help="the question, in plain words")
    parser.add_argument("--k", type=int, default=5, help="how many passages (1-100, default 5)")
    parser.add_argument("--index", default=os.environ.get("SEARCH_INDEX", "index"),
                        help="index directory (default: $SEARCH_INDEX or ./index)")
    parser.add_argument("--model", default=os.environ.get("SEARCH_MODEL"),
                        help="model the index was built with (default: bundled all-MiniLM-L6-v2)")
    parser.add_argument("--url", help="ask a running service (e.g. http://127.0.0.1:8000) instead of the index")
    parser.add_argument("--json", action="store_true", help="print the HTTP response body as JSON")
    args = parser.parse_args(argv)

    try:
        body = _remote(args.url, args.question, args.k) if args.url else _local(args)
    except AskError as e:
        print(f"ask: error: {e}", file=sys.stderr)
        return 2
    print(_dumps(body) if args.json else render(body))
    return 0


class AskError(Exception):
    pass


def _dumps(body: dict) -> str:
    from .responses import dumps

    return dumps(body)


def _local(args) -> dict:
    from .errors import SearchError
    from .responses import search_body
    from .searcher import Searcher, validate_query

    try:
        validate_query(args.question, args.k)  # before paying for loading the model
        return search_body(Searcher.open(args.index, model=args.model), args.question, args.k)
    except SearchError as e:
        raise AskError(str(e)) from None


def _remote(url: str, question: str, k: int) -> dict:
    query = urllib.parse.urlencode({"q": question, "k": k})
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/search?{query}", timeout=60) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {e.code} {e.reason}"
        raise AskError(f"{url} answered {e.code}: {message}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise AskError(f"cannot reach {url}: {getattr(e, 'reason', e)}") from None


def render(body: dict) -> str:
    """The response as people read it: score, source, title, paragraph, then the text."""
    if not body["results"]:
        return f"No passages found for {body['query']!r}."
    blocks = []
    for hit in body["results"]:
        c = hit["citations"][0]
        head = f"[{hit['rank']}] score {hit['score']:.3f} · {c['source']} · paragraph {c['paragraph']}"
        lines = [head] + ([f"    “{c['title']}”"] if c.get("title") else [])
        for paragraph in hit["text"].split("\n"):
            if paragraph.strip():
                lines.extend(textwrap.wrap(paragraph, width=88, initial_indent="    ", subsequent_indent="    "))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


if __name__ == "__main__":
    sys.exit(main())
