"""The HTTP API as an OpenAPI 3.1 document, served at `/openapi.json`.

Built from the contract's models (search/query.py for the questions,
search/service/contract.py for documents and every response), the same models that
check requests; tests/test_fuzz.py holds the service to it: schemathesis generates
requests from this document against the live service and checks every answer against it
(status codes, content types, bodies).
"""

from __future__ import annotations

from pydantic import BaseModel

from search.query import ContextRequest, Question, SearchRequest, StoriesRequest
from search.alerts import SINCE
from search.service.contract import EXAMPLE, MAX_DOC_ID_CHARS, RESPONSES, AlertWrite, DocumentWrite, FeedLine
from search.service.requests import COMMA_LISTS, QUERY_NAMES, REPEATABLE

REF = "#/components/schemas/{model}"


def _schemas(*models: type[BaseModel]) -> dict:
    """Each model's JSON Schema and those of the models inside it, by name."""
    out: dict = {}
    for model in models:
        schema = model.model_json_schema(ref_template=REF)
        out |= schema.pop("$defs", {})
        out[model.__name__] = schema
    return out


def _parameters(model: type[Question]) -> list[dict]:
    """A question model as query-string parameters: `q` for the query, the repeatable
    filters as exploded arrays (?doc_id=a&doc_id=b)."""
    properties = model.model_json_schema(ref_template=REF)["properties"]
    parameters = []
    for name, field in model.model_fields.items():
        schema = dict(properties[name])
        if name in REPEATABLE:
            item = next(s for s in schema.pop("anyOf") if s.get("type") == "string")
            schema = {"type": "array", "items": item, **({"description": schema["description"]}
                                                         if "description" in schema else {})}
        if "default" in schema and schema["default"] is None:  # "the searcher's default", not a value
            del schema["default"]
        parameter = {"name": QUERY_NAMES.get(name, name), "in": "query", "schema": schema}
        if field.is_required():
            parameter["required"] = True
        if name in REPEATABLE:
            parameter |= {"style": "form", "explode": True}
        if name in COMMA_LISTS:
            parameter |= {"style": "form", "explode": False}  # ?facets=source,author
        parameters.append(parameter)
    return parameters


def _ref(name: str) -> dict:
    return {"$ref": REF.format(model=name)}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    reasons = {400: "Bad input: the message names the problem", 401: "No API key", 403: "Writes disabled, or a wrong API key",
               404: "No such document, story or alert", 405: "Method not allowed", 413: "Body too large",
               409: "The change would leave the index without documents",
               414: "Request line too long: send long questions with POST",
               503: "The index cannot be served"}
    return {str(s): _json(_ref("Error"), reasons[s]) for s in statuses}


DOC_ID = {"name": "doc_id", "in": "path", "required": True, "example": "thames-seals",
          "schema": {"type": "string", "minLength": 1, "maxLength": MAX_DOC_ID_CHARS}}
ALERT_ID = {"name": "alert_id", "in": "path", "required": True, "example": "0123456789abcdef",
            "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"}}
HTML = {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
WRITE_SECURITY = [{"bearer": []}, {"apiKey": []}]

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "newsearch", "version": "1",
             "description": "Semantic search over news articles: ranked passages with the exact span they "
                            "came from. Every error is {\"error\": {\"code\", \"message\"}}."},
    "paths": {
        "/search": {
            "get": {"operationId": "search", "summary": "The passages that best answer a question",
                    "parameters": _parameters(SearchRequest),
                    "responses": {"200": _json(_ref("SearchResults"), "Ranked passages"),
                                  **_errors(400, 414, 503)}},
            "post": {"operationId": "searchPost", "summary": "The same search, the question in a JSON body",
                     "requestBody": {"required": True,
                                     "content": {"application/json": {"schema": _ref("SearchRequest")}}},
                     "responses": {"200": _json(_ref("SearchResults"), "Ranked passages"),
                                   **_errors(400, 413, 503)}},
        },
        "/context": {
            "get": {"operationId": "context", "summary": "The passages as numbered, cited text for a prompt",
                    "parameters": _parameters(ContextRequest),
                    "responses": {"200": _json(_ref("Context"), "Prompt-ready context"), **_errors(400, 414, 503)}},
        },
        "/stories": {
            "get": {"operationId": "stories", "summary": "The stories (events) that answer a question, each a timeline",
                    "parameters": _parameters(StoriesRequest),
                    "responses": {"200": _json(_ref("Stories"), "Stories, best first"), **_errors(400, 414, 503)}},
        },
        "/stories/{story_id}": {
            "get": {"operationId": "getStory", "summary": "One story: its articles in order of publication",
                    "parameters": [{"name": "story_id", "in": "path", "required": True, "example": 0,
                                    "schema": {"type": "integer", "minimum": 0, "maximum": 10 ** 18 - 1}}],
                    "responses": {"200": _json(_ref("Story"), "The story"), **_errors(400, 404)}},
        },
        "/alerts": {
            "post": {"operationId": "createAlert",
                     "summary": "Store a question that every new article is matched against (needs the API key)",
                     "security": WRITE_SECURITY,
                     "requestBody": {"required": True,
                                     "content": {"application/json": {"schema": _ref("AlertWrite")}}},
                     "responses": {"201": _json(_ref("Alert"), "Stored"), **_errors(400, 401, 403, 413)}},
        },
        "/alerts/{alert_id}": {
            "get": {"operationId": "getAlert", "summary": "An alert", "parameters": [ALERT_ID],
                    "responses": {"200": _json(_ref("Alert"), "The alert"), **_errors(400, 404)}},
            "delete": {"operationId": "deleteAlert", "summary": "Remove an alert and its matches (needs the API key)",
                       "parameters": [ALERT_ID], "security": WRITE_SECURITY,
                       "responses": {"200": _json({"type": "object"}, "Deleted"), **_errors(400, 401, 403, 404)}},
        },
        "/alerts/{alert_id}/matches": {
            "get": {"operationId": "alertMatches", "summary": "The new articles that matched an alert, oldest first",
                    "parameters": [ALERT_ID, {"name": "since", "in": "query", "schema": {
                        "type": "string", "pattern": f"^{SINCE.pattern}$", "description": "a date or UTC time: matches "
                                                                                  "made then or later"}}],
                    "responses": {"200": _json(_ref("AlertMatches"), "Matches"), **_errors(400, 404)}},
        },
        "/documents": {
            "post": {"operationId": "postDocuments",
                     "summary": "Add or replace many documents in one write (a feed; needs the API key)",
                     "security": WRITE_SECURITY,
                     # one FeedLine a line (NDJSON): described as the list of its lines
                     "requestBody": {"required": True, "content": {"application/x-ndjson": {
                         "schema": {"type": "array", "minItems": 1, "items": _ref("FeedLine"),
                                    "description": "one FeedLine object a line",
                                    "examples": [[{"id": "thames-seals", **EXAMPLE}]]}}}},
                     "responses": {"200": _json(_ref("FeedResult"), "Replaced, or unchanged"),
                                   "201": _json(_ref("FeedResult"), "Some added"),
                                   **_errors(400, 401, 403, 409, 413)}},
        },
        "/documents/{doc_id}": {
            "get": {"operationId": "getDocument", "summary": "A whole indexed document",
                    "parameters": [DOC_ID],
                    "responses": {"200": _json(_ref("Document"), "The document"), **_errors(400, 404)}},
            "put": {"operationId": "putDocument", "summary": "Add or replace a document (needs the API key)",
                    "parameters": [DOC_ID], "security": WRITE_SECURITY,
                    "requestBody": {"required": True,
                                    "content": {"application/json": {"schema": _ref("DocumentWrite")}}},
                    "responses": {"200": _json(_ref("WriteResult"), "Replaced, or unchanged"),
                                  "201": _json(_ref("WriteResult"), "Added"),
                                  **_errors(400, 401, 403, 409, 413)}},
            "delete": {"operationId": "deleteDocument", "summary": "Remove a document (needs the API key)",
                       "parameters": [DOC_ID], "security": WRITE_SECURITY,
                       "responses": {"200": _json(_ref("WriteResult"), "Removed"),
                                     **_errors(400, 401, 403, 404, 409)}},
        },
        "/": {"get": {"operationId": "page", "summary": "The search page", "responses": {"200": HTML}}},
        "/read/{doc_id}": {"get": {
            "operationId": "read", "summary": "A document as a page, the cited passage marked",
            "parameters": [DOC_ID, {"name": "start", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                           {"name": "end", "in": "query", "schema": {"type": "integer", "minimum": 1}}],
            "responses": {"200": HTML, **_errors(400, 404)}}},
        "/health": {"get": {"operationId": "health", "summary": "The index served",
                            "responses": {"200": _json(_ref("Health"), "Serving")}}},
        "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics",
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"operationId": "openapi", "summary": "This document",
                                  "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")}}},
    },
    "components": {
        "schemas": _schemas(SearchRequest, DocumentWrite, FeedLine, AlertWrite, *RESPONSES),
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
    },
}
