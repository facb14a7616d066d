"""The HTTP service: a Flask application factory over the searcher of an index's current
generation (hot-reloaded, search/live.py).

Views parse and validate, call the searcher, and serialise its results; every error,
expected or not, leaves as JSON `{"error": {"code", "message"}}` with its status. Every
response carries an `X-Request-Id` (the caller's, when it sends a sane one), which the
access log line of the request repeats.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import re
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, Response, g, request
from flask_cors import CORS
from werkzeug.exceptions import HTTPException
from werkzeug.routing import PathConverter

from search import settings
from search.errors import BadRequest, SearchError
from search.live import LiveSearcher
from search.query import ContextRequest, Filters, SearchRequest, StoriesRequest
from search.responses import error_body, search_body
from search.searcher import Searcher
from search.service import metrics
from search.service.alert_routes import register as register_alerts
from search.service.documents import register as register_documents
from search.service.openapi import DOCUMENT
from search.service.requests import from_body, from_query_string, json_response
from search.service.web import register as register_web

log = logging.getLogger("search.service.app")
access_log = logging.getLogger("search.access")

# what create_app reads from SEARCH_* (search/settings.py): the variable without its prefix
APP_SETTINGS = ("INDEX", "STORE", "MODEL", "VERIFY", "MODE", "DEFAULT_K", "MAX_CONTENT_LENGTH", "MAX_DOCUMENT_BODY",
                "MAX_FEED_BODY", "API_KEY", "ACCESS_LOG", "CORS_ORIGINS", "RELOAD_CHECK_S", "WORKER_SEARCHES")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def create_app(config: dict | None = None) -> Flask:
    """Build the service: defaults, then `SEARCH_*` environment variables, then `config`.

    The searcher (model and index) is loaded here, once per process, so a worker that
    cannot serve fails at start-up with a clear message rather than on its first request.
    """
    app = Flask(__name__)
    # "/documents//etc/passwd" is an unknown id (404), not a redirect to a cleaned-up path
    app.url_map.merge_slashes = False
    app.url_map.converters["doc_id"] = DocIdConverter
    # SEARCH_* values are typed by search/settings.py, not JSON-decoded as Flask's
    # from_prefixed_env does (SEARCH_API_KEY=1e3 is the key "1e3", not the float 1000.0);
    # values given in code are typed the same way
    app.config.from_mapping({name: settings.value(f"SEARCH_{name}") for name in APP_SETTINGS})
    app.config.from_mapping(config or {})
    for name in APP_SETTINGS:
        if app.config[name] is not None:
            app.config[name] = settings.convert(settings.BY_NAME[f"SEARCH_{name}"], app.config[name])
    initial = app.config.get("SEARCHER")
    # an index held in Milvus (search/index/milvus_index.py) is named by its URI, no directory
    root = initial.root if initial else app.config["STORE"] or app.config["INDEX"]
    opener = functools.partial(Searcher.open, str(root), model=app.config["MODEL"],
                               verify=app.config["VERIFY"], mode=app.config["MODE"])
    live = LiveSearcher(root, opener, check_s=app.config["RELOAD_CHECK_S"], initial=initial)
    metrics.observe_index(live.get())

    def swapped(searcher: Searcher) -> None:
        metrics.observe_index(searcher)
        metrics.RELOADS.inc()

    live.on_swap = swapped
    app.extensions["searcher"] = live
    _register_errors(app)
    _register_request_log(app)
    _register_routes(app, live)
    register_documents(app, live)
    register_alerts(app, live)
    register_web(app, live)
    return app


class DocIdConverter(PathConverter):
    """A document id in a path: like <path:...>, but an id with a line break reaches the
    view (and its 400 naming the problem) instead of failing to route (a bare 404)."""

    regex = r"[^/][\s\S]*?"


def _register_routes(app: Flask, live: LiveSearcher) -> None:
    searching = _one_of(app.config["WORKER_SEARCHES"])

    @app.get("/search")
    @searching
    def search_get():
        return _search(from_query_string(SearchRequest, k=app.config["DEFAULT_K"]))

    @app.post("/search")
    @searching
    def search_post():
        return _search(from_body(SearchRequest, k=app.config["DEFAULT_K"]))

    def _search(asked: SearchRequest):
        return json_response(search_body(live.get(), asked.query, asked.k, asked.mode, asked.collapse, asked.offset,
                                         Filters.from_request(asked), asked.as_of, asked.dates, asked.sort,
                                         asked.group, asked.facets, asked.diversity, asked.mmr))

    @app.get("/context")
    @searching
    def context():
        asked = from_query_string(ContextRequest, k=app.config["DEFAULT_K"])
        return json_response(live.get().context(asked.query, asked.k, asked.max_chars, asked.mode, asked.collapse,
                                                Filters.from_request(asked), asked.as_of, asked.dates,
                                                asked.neighbours, asked.mmr))

    @app.get("/stories")
    @searching
    def stories():
        asked = from_query_string(StoriesRequest)
        found = live.get().stories(asked.query, asked.k, asked.mode, Filters.from_request(asked), asked.as_of,
                                   asked.dates)
        return json_response({"query": asked.query, "stories": found})

    @app.get("/stories/<story_id>")
    @searching
    def story(story_id: str):
        if not re.fullmatch(r"[0-9]{1,18}", story_id):
            raise BadRequest("invalid_story_id", f"a story id is a whole number, got {story_id!r}")
        return json_response(live.get().story(int(story_id)))

    @app.get("/documents/<doc_id:doc_id>")
    def document(doc_id: str):
        # a lookup by id in the store: nothing here names a file, so "../" is just an unknown id
        return json_response(live.get().document(doc_id))

    @app.get("/health")
    def health():
        return json_response({"status": "ok", **live.get().describe(), "reloads": live.reloads})

    @app.get("/openapi.json")
    def openapi():
        return json_response(DOCUMENT)

    @app.get("/metrics")
    def metrics_view():
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)


def _one_of(limit: int | None):
    """A decorator that runs the views it wraps on this process's `limit` search threads
    (None: on the request's own thread). A request thread waits, asleep, for its turn; the
    searches keep the same few threads, whose memory stays warm: handed round the request
    threads, each search found a cold malloc arena (glibc keeps one a thread), and at a
    million passages cost a fifth more CPU (docs/benchmarks.md)."""
    if not limit:
        return lambda view: view
    runner = ThreadPoolExecutor(limit, thread_name_prefix="search")

    def searching(view):
        @functools.wraps(view)
        def in_turn(*args, **kwargs):
            # the view runs in this request's context (its `request` and `g`), on a search thread
            return runner.submit(contextvars.copy_context().run, view, *args, **kwargs).result()
        return in_turn
    return searching


def _register_request_log(app: Flask) -> None:
    """Request ids, CORS when configured, metrics, and one access-log line per request."""
    enabled = app.config["ACCESS_LOG"]
    if enabled and not access_log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
        access_log.propagate = False
    origins = sorted({o.strip() for o in str(app.config["CORS_ORIGINS"] or "").split(",") if o.strip()})
    if origins:
        # flask-cors answers the browser's preflight (OPTIONS with Access-Control-Request-*)
        # with the methods and headers allowed, which a JSON POST /search or a PUT with a
        # key needs; plain responses get Access-Control-Allow-Origin and Vary: Origin
        CORS(app, origins="*" if "*" in origins else origins, methods=["GET", "POST", "PUT", "DELETE"],
             allow_headers=["Content-Type", "Authorization", "X-API-Key", "X-Request-Id"],
             expose_headers=["X-Request-Id"], max_age=600, vary_header=True)

    @app.before_request
    def start():
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def finish(response: Response) -> Response:
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        response.headers["X-Request-Id"] = g.get("request_id", "")
        route = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.observe_request(request.method, route, response.status_code, seconds)
        if enabled:
            # the path and query, never the headers (the API key) or a body
            access_log.info("%s %s %s %d %.1fms %s", request.remote_addr, request.method,
                            request.full_path.rstrip("?"), response.status_code, seconds * 1000, g.request_id)
        return response


def _register_errors(app: Flask) -> None:
    @app.errorhandler(SearchError)
    def domain_error(e: SearchError):
        response = json_response(error_body(e.code, str(e)), e.status)
        if e.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="search"'
        return response

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        code = re.sub(r"\W+", "_", (e.name or "error").lower()).strip("_")
        response = json_response(error_body(code, e.description or e.name), e.code or 500)
        for header in ("Allow", "Retry-After"):
            if e.get_response().headers.get(header):
                response.headers[header] = e.get_response().headers[header]
        return response

    @app.errorhandler(Exception)
    def unexpected(e: Exception):
        # The one place an unexpected error is caught: log it, answer JSON, never HTML.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response(error_body("internal_error", "internal error; the service log has the details"), 500)
