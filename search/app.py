"""The HTTP service: a Flask application factory over one `Searcher`.

Views parse and validate, call the searcher, and serialise its results; every error,
expected or not, leaves as JSON `{"error": {"code", "message"}}` with its status.
"""

from __future__ import annotations

import json
import logging
import re

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from .errors import BadRequest, SearchError
from .responses import dumps, error_body, search_body
from .searcher import Searcher

log = logging.getLogger("search.app")

DEFAULTS = {
    "INDEX": "index",  # SEARCH_INDEX
    "MODEL": None,  # SEARCH_MODEL: default is the bundled all-MiniLM-L6-v2
    "VERIFY": True,  # SEARCH_VERIFY: check the index's checksums at start-up
    "MODE": "hybrid",  # SEARCH_MODE: default ranking, hybrid | dense | lexical
    "DEFAULT_K": 5,
    # Queries are at most 1,000 characters: no legitimate body comes near this.
    "MAX_CONTENT_LENGTH": 64 * 1024,
}
SEARCH_FIELDS = {"query", "k", "mode", "collapse"}
SEARCH_PARAMS = {"q", "k", "mode", "collapse"}


def create_app(config: dict | None = None) -> Flask:
    """Build the service: defaults, then `SEARCH_*` environment variables, then `config`.

    The searcher (model and index) is loaded here, once per process, so a worker that
    cannot serve fails at start-up with a clear message rather than on its first request.
    """
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("SEARCH")
    app.config.from_mapping(config or {})
    searcher = app.config.get("SEARCHER") or Searcher.open(
        str(app.config["INDEX"]), model=app.config["MODEL"], verify=bool(app.config["VERIFY"]),
        mode=str(app.config["MODE"]))
    app.extensions["searcher"] = searcher
    _register_errors(app)
    _register_routes(app, searcher)
    return app


def _json(body: dict, status: int = 200) -> Response:
    return Response(dumps(body), status=status, mimetype="application/json")


def _register_routes(app: Flask, searcher: Searcher) -> None:
    @app.get("/search")
    def search_get():
        args = request.args
        _reject_unknown(set(args), SEARCH_PARAMS, "parameter")
        repeated = sorted(key for key in args if len(args.getlist(key)) > 1)
        if repeated:
            raise BadRequest("repeated_parameter", f"parameter {repeated[0]!r} is given more than once")
        if "q" not in args:
            raise BadRequest("missing_query", "missing query: pass the question as ?q=...")
        return _json(search_body(searcher, args["q"], _parse_k(args.get("k"), app.config["DEFAULT_K"]),
                                 args.get("mode"), _parse_bool("collapse", args.get("collapse", "true"))))

    @app.post("/search")
    def search_post():
        body = _json_object()
        _reject_unknown(set(body), SEARCH_FIELDS, "field")
        if "query" not in body:
            raise BadRequest("missing_query", 'missing "query": send {"query": "...", "k": 5}')
        collapse = body.get("collapse", True)
        if not isinstance(collapse, bool):
            raise BadRequest("invalid_collapse", f"collapse must be true or false, got {collapse!r}")
        return _json(search_body(searcher, body["query"], body.get("k", app.config["DEFAULT_K"]),
                                 body.get("mode"), collapse))

    @app.get("/documents/<path:doc_id>")
    def document(doc_id: str):
        return _json(searcher.document(doc_id))

    @app.get("/health")
    def health():
        return _json({"status": "ok", **searcher.describe()})


def _parse_k(raw: str | None, default: int) -> int:
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,6}", raw):
        raise BadRequest("invalid_k", f"k must be an integer from 1 to 100, got {raw!r}")
    return int(raw)  # the range is checked with the query


def _parse_bool(name: str, raw: str) -> bool:
    value = {"true": True, "1": True, "false": False, "0": False}.get(raw.lower())
    if value is None:
        raise BadRequest(f"invalid_{name}", f"{name} must be true or false, got {raw!r}")
    return value


def _reject_unknown(given: set[str], known: set[str], what: str) -> None:
    unknown = sorted(given - known)
    if unknown:
        raise BadRequest(f"unknown_{what}",
                         f"unknown {what} {unknown[0]!r}; accepted: {', '.join(sorted(known))}")


def _json_object() -> dict:
    if request.mimetype != "application/json":
        raise BadRequest("unsupported_media_type",
                         f"send the body as application/json, not {request.mimetype or 'no content type'!r}")
    try:
        body = json.loads(request.get_data())
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("invalid_json", f"body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise BadRequest("invalid_json", f"body must be a JSON object, not {type(body).__name__}")
    return body


def _register_errors(app: Flask) -> None:
    @app.errorhandler(SearchError)
    def domain_error(e: SearchError):
        return _json(error_body(e.code, str(e)), e.status)

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        code = re.sub(r"\W+", "_", (e.name or "error").lower()).strip("_")
        response = _json(error_body(code, e.description or e.name), e.code or 500)
        for header in ("Allow", "Retry-After"):
            if e.get_response().headers.get(header):
                response.headers[header] = e.get_response().headers[header]
        return response

    @app.errorhandler(Exception)
    def unexpected(e: Exception):
        # The one place an unexpected error is caught: log it, answer JSON, never HTML.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _json(error_body("internal_error", "internal error; the service log has the details"), 500)
