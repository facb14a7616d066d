"""What a request may carry and how it is read: the JSON body, the query string, the
filters, the API key, and the limits the routes share. The search routes (app), the
write routes (documents) and the schema (openapi) all take them from here."""

from __future__ import annotations

import hmac
import json
import re

from flask import Flask, Response, request

from search.errors import BadRequest, Forbidden, Unauthorized
from search.query import Filters
from search.responses import dumps

MAX_DOCUMENT_CHARS = 1_000_000
MAX_DOC_ID_CHARS = 200
DOCUMENT_FIELDS = {"text", "title", "url", "published", "author"}
FILTERS = {"doc_id", "source", "published_from", "published_to"}
SEARCH_FIELDS = {"query", "k", "mode", "collapse", "offset"} | FILTERS
SEARCH_PARAMS = {"q", "k", "mode", "collapse", "offset"} | FILTERS
CONTEXT_PARAMS = {"q", "k", "mode", "collapse", "max_chars"} | FILTERS
REPEATABLE = {"doc_id", "source"}  # ?doc_id=a&doc_id=b: either document


def json_response(body: dict, status: int = 200) -> Response:
    return Response(dumps(body), status=status, mimetype="application/json")


def query_args(known: set[str]):
    """The query string, checked: known names, each once (but the repeatable filters), q given."""
    args = request.args
    reject_unknown(set(args), known, "parameter")
    repeated = sorted(key for key in args if len(args.getlist(key)) > 1 and key not in REPEATABLE)
    if repeated:
        raise BadRequest("repeated_parameter", f"parameter {repeated[0]!r} is given more than once")
    if "q" not in args:
        raise BadRequest("missing_query", "missing query: pass the question as ?q=...")
    return args


def filters_from(values) -> Filters:
    return Filters.of(values("doc_id"), values("source"), (values("published_from") or [None])[0],
                      (values("published_to") or [None])[0])


def parse_int(name: str, raw: str | None, default: int) -> int:
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,6}", raw):
        raise BadRequest(f"invalid_{name}", f"{name} must be a whole number, got {raw!r}")
    return int(raw)  # the range is checked with the query


def integral(value):
    """JSON has one number type: 5.0 is the integer 5."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def parse_bool(name: str, raw: str) -> bool:
    value = {"true": True, "1": True, "false": False, "0": False}.get(raw.lower())
    if value is None:
        raise BadRequest(f"invalid_{name}", f"{name} must be true or false, got {raw!r}")
    return value


def reject_unknown(given: set[str], known: set[str], what: str) -> None:
    unknown = sorted(given - known)
    if unknown:
        raise BadRequest(f"unknown_{what}",
                         f"unknown {what} {unknown[0]!r}; accepted: {', '.join(sorted(known))}")


def json_object() -> dict:
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


def authorize(app: Flask) -> None:
    """Writes need SEARCH_API_KEY: 403 when none is configured, 401 without a key, 403 with
    a wrong one. The comparison takes the same time whatever the key's first wrong byte."""
    key = app.config.get("API_KEY")
    if not key:
        raise Forbidden("writes_disabled", "document writes are disabled: start the service with SEARCH_API_KEY set")
    given = request.headers.get("X-API-Key") or ""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        given = token.strip()
    if not given:
        raise Unauthorized("missing_api_key", "this route needs the API key: send Authorization: Bearer <key>")
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), str(key).encode("utf-8")):
        raise Forbidden("wrong_api_key", "the API key is wrong")
