"""The search page (`GET /`, search/service/static/) and the reading view it links every source
to: `GET /read/<doc_id>?start=&end=` shows the whole document with the cited passage
marked and scrolled into view. Server-side HTML is escaped piece by piece (markupsafe):
article text is never markup."""

from __future__ import annotations

from flask import Flask, Response, request
from markupsafe import Markup, escape

from search.errors import BadRequest
from search.live import LiveSearcher

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <link rel="stylesheet" href="/static/style.css">
</head>
<body>
  <main>
    <p><a href="/">← New search</a></p>
    <article>
      <h1>{title}</h1>
      <p class="meta">{meta}</p>
      <div class="body">{body}</div>
    </article>
  </main>
</body>
</html>
"""


def register(app: Flask, live: LiveSearcher) -> None:
    @app.get("/")
    def page():
        return app.send_static_file("index.html")

    @app.get("/read/<doc_id:doc_id>")
    def read(doc_id: str):
        document = live.get().document(doc_id)
        text = document["text"]
        start, end = _span(request.args, len(text))
        body = escape(text) if start == end else escape(text[:start]) + _mark(text[start:end]) + escape(text[end:])
        source = document["url"] or document["source"]
        meta = " · ".join(str(escape(part)) for part in (document.get("author"), document.get("published")) if part)
        link = (f'<a href="{escape(source)}" rel="noopener noreferrer">{escape(source)}</a>'
                if source.startswith(("https://", "http://")) else str(escape(source)))
        html = PAGE.format(title=escape(document["title"] or doc_id), meta=(meta + " · " if meta else "") + link,
                           body=body)
        return Response(html, mimetype="text/html")


def _mark(passage: str):
    return Markup('<mark id="passage" tabindex="-1">') + escape(passage) + Markup("</mark>")


def _span(args, length: int) -> tuple[int, int]:
    """The passage's offsets from ?start=&end= (none: nothing marked)."""
    if "start" not in args and "end" not in args:
        return 0, 0
    try:
        start, end = int(args.get("start", "")), int(args.get("end", ""))
    except ValueError:
        raise BadRequest("invalid_span", "start and end must be whole numbers (a citation's offsets)") from None
    if not 0 <= start < end <= length:
        raise BadRequest("invalid_span", f"start and end must satisfy 0 <= start < end <= {length}")
    return start, end
