"""How a request becomes the contract's model: its JSON body, or its query string (whose
values are all strings: `k=5` is read as the integer 5, `collapse=false` as false, and a
repeatable filter as a list), checked by the models of search/query.py and
search/service/contract.py; and the API key that writes need."""

from __future__ import annotations

import hmac
import json
import re

from flask import Flask, Response, request

from search.errors import BadRequest, Forbidden, Unauthorized
from search.query import Contract, checked
from search.responses import dumps

REPEATABLE = {"doc_id", "source"}  # ?doc_id=a&doc_id=b: either document
COMMA_LISTS = {"facets"}  # ?facets=source,author
QUERY_NAMES = {"query": "q"}  # what the query string calls a field


def json_response(body: dict, status: int = 200) -> Response:
    return Response(dumps(body), status=status, mimetype="application/json")


def from_body(model: type[Contract], **defaults):
    """The JSON body as `model` (`defaults` for the fields it leaves out)."""
    return checked(model, defaults | json_object())


def from_query_string(model: type[Contract], **defaults):
    """The query string as `model`: known names, each once (but the repeatable filters)."""
    args = request.args
    names = {QUERY_NAMES.get(name, name): name for name in model.model_fields}
    reject_unknown(set(args), set(names), "parameter")
    repeated = sorted(key for key in args if len(args.getlist(key)) > 1 and key not in REPEATABLE)
    if repeated:
        raise BadRequest("repeated_parameter", f"parameter {repeated[0]!r} is given more than once")
    if "q" not in args:
        raise BadRequest("missing_query", "missing query: pass the question as ?q=...")
    values = dict(defaults)
    for key, name in names.items():
        if key in args:
            if name in REPEATABLE:
                values[name] = args.getlist(key)
            elif name in COMMA_LISTS:
                values[name] = [item.strip() for item in args[key].split(",") if item.strip()]
            else:
                values[name] = _typed(model.model_fields[name].annotation, args[key])
    return checked(model, values)


def _typed(kind, raw: str):
    """A query-string value in the field's type where it reads as one; as written
    otherwise, for the model to refuse with the field's own message."""
    if kind is int and re.fullmatch(r"[0-9]{1,6}", raw):
        return int(raw)
    if kind is float and len(raw) <= 64 and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?|-?\.[0-9]+", raw):
        return float(raw)
    if kind is bool:
        return {"true": True, "1": True, "false": False, "0": False}.get(raw.lower(), raw)
    return raw


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
