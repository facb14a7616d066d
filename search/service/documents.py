"""`PUT /documents/<doc_id>`, `POST /documents` (an NDJSON feed) and `DELETE
/documents/<doc_id>`: change the index under a running service. The index's writer
process (search/service/writer_process.py), or where none runs this process's writer
thread (search/service/writer.py), applies each write as an incremental update
(indexer/update.py), writes that arrive together as one, and publishes a new generation;
this worker serves it before answering, the others within a second or two. Disabled
unless SEARCH_API_KEY is set, and then only with that key.
"""

from __future__ import annotations

import json
import logging

from flask import Flask, request

from search.alerts import Matcher
from search.errors import BadRequest, NotSupported
from search.live import LiveSearcher
from search.query import checked
from search.service.contract import MAX_DOC_ID_CHARS, DocumentWrite, FeedLine
from search.service.requests import authorize, from_body, json_response
from search.service import writer_process
from search.service.writer import Writer

FEED_TYPES = ("application/x-ndjson", "application/jsonl")  # one JSON object a line
log = logging.getLogger("search.service")


class ServiceWriter:
    """The index's writer process when one is up, else this process's own writer thread;
    either way the answer comes from this worker's searcher of the generation written."""

    def __init__(self, live: LiveSearcher):
        self._live = live
        # an index in Milvus has no directory for a writer process or alerts: each replica
        # writes from its own thread, one at a time by the index's lease (indexer/milvus_update.py)
        published = (lambda summary: None) if live.remote else Matcher(live.root, live).published
        self._own = Writer(live.root, lambda: live.get().embedder, on_published=published)

    def write(self, documents=(), remove=()):
        try:
            if self._live.remote:
                raise writer_process.WriterUnreachable("an index in Milvus", recorded=False)
            summary = writer_process.write(self._live.root, documents, remove)
        except writer_process.WriterUnreachable as e:
            if e.recorded:  # recorded, yet not answering
                log.warning("%s: writing from this process", e)
            summary = self._own.write(documents, remove)
        searcher = self._live.serving(summary.generation) if summary.changed else self._live.get()
        return summary, searcher


def register(app: Flask, live: LiveSearcher) -> None:
    if app.config.get("API_KEY") and not live.remote:
        _load_writer()
    writer = ServiceWriter(live)

    @app.put("/documents/<doc_id:doc_id>")
    def put_document(doc_id: str):
        authorize(app)
        doc = parse_document(doc_id, app.config["MAX_DOCUMENT_BODY"])
        summary, searcher = writer.write(documents=[doc])
        status = "added" if doc_id in summary.added else "replaced" if doc_id in summary.replaced else "unchanged"
        return json_response({"doc_id": doc_id, "status": status, "generation": searcher.generation,
                              "passages": searcher.document(doc_id)["passages"]}, 201 if status == "added" else 200)

    @app.post("/documents")
    def post_documents():
        authorize(app)
        documents = parse_feed(app.config["MAX_FEED_BODY"])
        summary, searcher = writer.write(documents=documents)  # one generation for the whole feed
        ids = {d.doc_id for d in documents}
        added, replaced = [d for d in summary.added if d in ids], [d for d in summary.replaced if d in ids]
        return json_response({"generation": searcher.generation, "added": added, "replaced": replaced,
                              "unchanged": [d for d in summary.unchanged if d in ids]}, 201 if added else 200)

    @app.delete("/documents/<doc_id:doc_id>")
    def delete_document(doc_id: str):
        authorize(app)
        live.get().document(doc_id)  # 404 before queueing the write
        _, searcher = writer.write(remove=[doc_id])
        return json_response({"doc_id": doc_id, "status": "removed", "generation": searcher.generation})


def refuse(app: Flask, what: str, rules: list[tuple[str, str]]) -> None:
    """Routes an index held in Milvus does not serve yet: 501 with a JSON body saying so."""
    def refused(**_):
        raise NotSupported(f"{what} are not supported by a service answering from an index held in Milvus "
                           f"({app.config['STORE']}); rebuild it with `python -m indexer build SRC --store ...`")

    for method, rule in rules:
        app.add_url_rule(rule, f"refused {method} {rule}", refused, methods=[method])


def _load_writer() -> None:
    """Load the indexer's code now, once per worker, rather than in the first PUT: the
    worker's memory is then what it will stay at, and the first write is not the slowest."""
    import importlib

    from indexer.chunk import sentences

    importlib.import_module("indexer.update")
    sentences("Warm up the sentence splitter. It loads its rules once.", 0, 56)


def check_doc_id(doc_id: str) -> None:
    if not doc_id.strip() or len(doc_id) > MAX_DOC_ID_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in doc_id):
        raise BadRequest("invalid_doc_id", f"a document id is 1 to {MAX_DOC_ID_CHARS} printable characters")
    try:
        doc_id.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("invalid_doc_id", "a document id must be valid Unicode text") from None


def parse_document(doc_id: str, max_body: int):
    """The document a PUT body describes: {"text", "title"?, "url"?, "published"?, "author"?}."""
    check_doc_id(doc_id)
    request.max_content_length = max_body  # larger than a search's limit, still bounded
    return _document(doc_id, from_body(DocumentWrite))


def parse_feed(max_body: int) -> list:
    """The documents of a `POST /documents` body: one JSON object a line (NDJSON), each a
    PUT body with its "id". A bad line refuses the whole feed, naming the line."""
    request.max_content_length = max_body
    if request.mimetype not in FEED_TYPES:
        raise BadRequest("unsupported_media_type", f"send the feed as application/x-ndjson (one JSON object a "
                                                   f"line), not {request.mimetype or 'no content type'!r}")
    try:
        lines = request.get_data().decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise BadRequest("invalid_json", f"the feed is not UTF-8 text: {e}") from None
    documents = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                documents.append(_feed_line(line))
            except BadRequest as e:
                raise BadRequest(e.code, f"line {number}: {e}") from None
    if not documents:
        raise BadRequest("empty_feed", "the feed holds no documents: send one JSON object a line")
    return documents


def _feed_line(line: str):
    try:
        record = json.loads(line)
    except ValueError as e:
        raise BadRequest("invalid_json", f"not valid JSON: {e}") from None
    if not isinstance(record, dict):
        raise BadRequest("invalid_json", f"a line must be a JSON object, not {type(record).__name__}")
    line = checked(FeedLine, record)
    check_doc_id(line.id)
    return _document(line.id, line)


def _document(doc_id: str, body: DocumentWrite):
    from indexer.clean import clean
    from indexer.sources import Document

    title = (body.title or "").strip() or None
    if not clean(body.text, title).lines:
        raise BadRequest("empty_document", "text has no article text once page cruft is removed")
    url = body.url or None
    return Document(doc_id=doc_id, text=body.text, source=url or doc_id, title=title,
                    url=url, published=body.published or None, author=body.author or None)
