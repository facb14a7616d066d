"""`ask "question"`: search from the command line, locally or against a running service.

It loads, searches and prints; it never builds anything. `--json` prints exactly the body
the HTTP service answers with. On a terminal the results are laid out with rich (the
answering sentence emphasised, sources aligned); piped, they are plain text. With no
question, `ask` reads questions one per line and answers each (the model loads once).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import urllib.error
import urllib.parse
import urllib.request

from search import settings
from search.errors import SearchError
from search.query import Filters, validate_query
from search.responses import dumps, search_body
from search.retrieval.fusion import MODES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ask", description="Ask a question of the news index.")
    parser.add_argument("question", nargs="?", help="the question, in plain words (none: ask interactively)")
    parser.add_argument("--k", type=int, default=5, help="how many passages (1-100, default 5)")
    parser.add_argument("--index", default=settings.value("SEARCH_INDEX"),
                        help="index directory (default: $SEARCH_INDEX or ./index)")
    parser.add_argument("--store", default=settings.value("SEARCH_STORE"), metavar="milvus://HOST:PORT/NAME",
                        help="ask an index held in Milvus instead of a directory (default: $SEARCH_STORE)")
    parser.add_argument("--model", default=settings.value("SEARCH_MODEL"),
                        help="model the index was built with (default: bundled all-MiniLM-L6-v2)")
    parser.add_argument("--mode", choices=MODES,
                        help="ranking: hybrid (BM25 + dense, the default), dense or lexical")
    parser.add_argument("--no-collapse", action="store_true",
                        help="show near-duplicate passages (translations, syndicated copies) separately")
    parser.add_argument("--offset", type=int, default=0, help="skip this many results (the next page)")
    parser.add_argument("--doc-id", action="append", help="answer only from this document (repeatable)")
    parser.add_argument("--source", action="append", help="answer only from this source (repeatable)")
    parser.add_argument("--published-from", metavar="YYYY-MM-DD", help="only documents published on or after")
    parser.add_argument("--published-to", metavar="YYYY-MM-DD", help="only documents published on or before")
    parser.add_argument("--as-of", metavar="YYYY-MM-DD",
                        help="the date the question is asked on (default: today): \"latest\" or \"this week\" "
                             "favour articles published near it")
    parser.add_argument("--per-article", action="store_true",
                        help="one result per article, with the article's other answering passages (group=article)")
    parser.add_argument("--per-source", type=int, metavar="N",
                        help="at most N results from one source (diversity=N)")
    parser.add_argument("--mmr", type=float, metavar="W",
                        help="reorder by maximal marginal relevance, W (0-1) on relevance and the rest on novelty, "
                             "so that near-identical paragraphs do not fill the list (0.5 is usual)")
    parser.add_argument("--newest-first", action="store_true",
                        help="the passages that answer, newest article first (sort=date)")
    parser.add_argument("--literal-dates", action="store_true",
                        help="take time words (\"last week\", \"in 2022\") as words, not as a date filter")
    parser.add_argument("--context", action="store_true",
                        help="print prompt-ready context: numbered passages with their sources")
    parser.add_argument("--stories", action="store_true",
                        help="the stories (events) that answer, each a timeline of its articles (--k: how many, 1-20)")
    parser.add_argument("--neighbours", type=int, default=0,
                        help="--context: each passage with this many paragraphs of its article either side (0-5)")
    parser.add_argument("--max-chars", type=int, default=4000, help="--context's character budget (default 4000)")
    parser.add_argument("--url", help="ask a running service (e.g. http://127.0.0.1:8000) instead of the index")
    parser.add_argument("--json", action="store_true", help="print the HTTP response body as JSON")
    args = parser.parse_args(argv)
    try:
        if args.question is None:
            return _interactive(args)
        return _answer(args)
    except BrokenPipeError:  # `ask ... | head`: the reader has what it wanted
        sys.stderr.close()
        return 0


def _answer(args, searcher=None) -> int:
    try:
        body = _remote(args) if args.url else _local(args, searcher)
    except AskError as e:
        print(f"ask: error: {e}", file=sys.stderr)
        return 2
    _print(body, args)
    return 0


def _interactive(args) -> int:
    """Questions from stdin, one a line, until an empty line or end of input."""
    from search.searcher import Searcher  # the model and the index: not for --help or --url

    searcher = None
    if not args.url:
        try:
            searcher = Searcher.open(args.store or args.index, model=args.model)
        except SearchError as e:
            print(f"ask: error: {e}", file=sys.stderr)
            return 2
    prompt = sys.stdin.isatty()
    if prompt:
        print("Ask a question (an empty line or Ctrl-D to stop).", file=sys.stderr)
    worst = 0
    while True:
        try:
            line = input("? " if prompt else "")
        except (EOFError, KeyboardInterrupt):
            break
        if not line.strip():
            break
        args.question = line.strip()
        worst = max(worst, _answer(args, searcher))
        print()
    return worst


def _print(body: dict, args) -> None:
    if args.json:
        print(dumps(body))
    elif args.stories:
        print(render_stories(body))
    elif args.context:
        print(body["context"] or f"No passages found for {body['query']!r}.")
    elif sys.stdout.isatty():
        from rich.console import Console

        Console().print(rich_render(body))
    else:
        print(render(body))


class AskError(Exception):
    pass


def _local(args, searcher=None) -> dict:
    from search.searcher import Searcher  # the model and the index: not for --help or --url

    try:
        validate_query(args.question, args.k, args.mode or "hybrid")  # before paying for loading the model
        filters = Filters.of(args.doc_id, args.source, args.published_from, args.published_to)
        searcher = searcher or Searcher.open(args.store or args.index, model=args.model)
        if args.stories:
            return {"query": args.question, "stories": searcher.stories(args.question, args.k, args.mode, filters,
                                                                        args.as_of, _dates(args))}
        if args.context:
            return searcher.context(args.question, args.k, args.max_chars, args.mode, not args.no_collapse, filters,
                                    args.as_of, _dates(args), args.neighbours, args.mmr)
        return search_body(searcher, args.question, args.k, args.mode, not args.no_collapse, args.offset, filters,
                           args.as_of, _dates(args), "date" if args.newest_first else "relevance",
                           "article" if args.per_article else "none", diversity=args.per_source, mmr=args.mmr)
    except SearchError as e:
        raise AskError(str(e)) from None


def _dates(args) -> str:
    return "literal" if args.literal_dates else "interpreted"


def _remote(args) -> dict:
    url = args.url
    params = [("q", args.question), ("k", args.k)] + [("mode", args.mode)] * bool(args.mode) \
        + [("collapse", "false")] * args.no_collapse + [("doc_id", d) for d in args.doc_id or []] \
        + [("source", s) for s in args.source or []] \
        + [("published_from", args.published_from)] * bool(args.published_from) \
        + [("published_to", args.published_to)] * bool(args.published_to) \
        + [("as_of", args.as_of)] * bool(args.as_of) + [("dates", "literal")] * args.literal_dates \
        + [("sort", "date")] * (args.newest_first and not (args.context or args.stories)) \
        + [("group", "article")] * (args.per_article and not (args.context or args.stories)) \
        + [("diversity", args.per_source)] * (args.per_source is not None and not (args.context or args.stories)) \
        + [("mmr", args.mmr)] * (args.mmr is not None and not args.stories)
    if args.context:
        params += [("max_chars", args.max_chars)] + [("neighbours", args.neighbours)] * bool(args.neighbours)
    elif not args.stories:
        params += [("offset", args.offset)] * bool(args.offset)
    query = urllib.parse.urlencode(params)
    route = "stories" if args.stories else "context" if args.context else "search"
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/{route}?{query}", timeout=60) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {e.code} {e.reason}"
        raise AskError(f"{url} answered {e.code}: {message}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise AskError(f"cannot reach {url}: {getattr(e, 'reason', e)}") from None


def render(body: dict, emphasis: tuple[str, str] = ("**", "**")) -> str:
    """The response as people read it: score, source, title, paragraph, then the text
    with the answering sentence emphasised, and any other sources that say the same."""
    if not body["results"]:
        return f"No passages found for {body['query']!r}."
    blocks = []
    for hit in body["results"]:
        c, *others = hit["citations"]
        head = f"[{hit['rank']}] score {hit['score']:.3f} · {c['source']} · paragraph {c['paragraph']}"
        lines = [head] + ([f"    “{c['title']}”"] if c.get("title") else [])
        byline = " · ".join(filter(None, [c.get("author"), c.get("published")]))
        lines += [f"    {byline}"] if byline else []
        text = hit["text"]
        if hit.get("highlight"):
            h = hit["highlight"]
            text = text[:h["start"]] + "\x01" + text[h["start"]:h["end"]] + "\x02" + text[h["end"]:]
        for paragraph in text.split("\n"):
            if paragraph.strip():
                lines.extend(textwrap.wrap(paragraph, width=88, initial_indent="    ", subsequent_indent="    "))
        lines += [f"    also: {o['source']} · paragraph {o['paragraph']}" for o in others]
        blocks.append("\n".join(lines).replace("\x01", emphasis[0]).replace("\x02", emphasis[1]))
    return "\n\n".join(blocks)


def render_stories(body: dict) -> str:
    """Stories as people read them: each story's label, size and dates, then its articles
    in order of publication (date, source, title) with the passage that answers."""
    if not body["stories"]:
        return f"No stories found for {body['query']!r}."
    blocks = []
    for story in body["stories"]:
        dates = " – ".join(dict.fromkeys(filter(None, [story["first_published"], story["last_published"]])))
        lines = [f"Story {story['id']} · {story['articles']} article{'s' * (story['articles'] != 1)}, "
                 f"{story['sources']} source{'s' * (story['sources'] != 1)}" + (f" · {dates}" if dates else ""),
                 f"  “{story['label']}”"]
        for entry in story["timeline"]:
            lines.append("  " + " · ".join(filter(None, [entry["published"] or "undated", entry["source"],
                                                          entry["title"] and f"“{entry['title']}”",
                                                          f"paragraph {entry['paragraph']}"])))
            lines += textwrap.wrap(entry["text"], width=88, initial_indent="      ", subsequent_indent="      ",
                                   max_lines=3, placeholder=" …")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def rich_render(body: dict):
    """The response laid out for a terminal: a header line per result (rank, score, then
    the source, right-aligned), the title, the passage with its answering sentence in bold,
    and the other sources that say the same."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    if not body["results"]:
        return Text(f"No passages found for {body['query']!r}.", style="yellow")
    parts = []
    for hit in body["results"]:
        c, *others = hit["citations"]
        head = Table.grid(expand=True)
        head.add_column(ratio=1)
        head.add_column(justify="right")
        head.add_row(Text.assemble((f"[{hit['rank']}] ", "bold cyan"), (f"score {hit['score']:.3f}", "dim")),
                     Text(f"{c['source']} · paragraph {c['paragraph']}", style="cyan"))
        parts.append(head)
        byline = " · ".join(filter(None, [c.get("author"), c.get("published")]))
        if c.get("title") or byline:
            parts.append(Padding(Text(" — ".join(filter(None, [c.get("title"), byline])), style="italic"), (0, 4)))
        text = Text(hit["text"])
        if hit.get("highlight"):
            text.stylize("bold yellow", hit["highlight"]["start"], hit["highlight"]["end"])
        parts.append(Padding(text, (0, 4)))
        for o in others:
            parts.append(Padding(Text(f"also: {o['source']} · paragraph {o['paragraph']}", style="dim"), (0, 4)))
        parts.append(Text(""))
    return Group(*parts)


if __name__ == "__main__":
    sys.exit(main())
