"""The HTTP API as an OpenAPI 3.1 document, served at `/openapi.json`.

Written out by hand next to the views it describes; tests/test_fuzz.py holds the two
together: schemathesis generates requests from this document against the live service
and checks every answer against it (status codes, content types, bodies).
"""

from __future__ import annotations

from search.query import MAX_K, MAX_OFFSET, MAX_QUERY_CHARS, NONBLANK
from search.retrieval.context import MAX_CHARS
from search.retrieval.fusion import MODES
from search.service.requests import DOCUMENT_FIELDS, MAX_DOC_ID_CHARS, MAX_DOCUMENT_CHARS

NULLABLE_STRING = {"type": ["string", "null"]}
DATE = "^[0-9]{4}-[01][0-9]-[0-3][0-9]$"
INTEGER = {"type": "integer"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    reasons = {400: "Bad input: the message names the problem", 401: "No API key", 403: "Writes disabled, or a wrong API key",
               404: "No such document", 405: "Method not allowed", 413: "Body too large",
               409: "The change would leave the index without documents",
               414: "Request line too long: send long questions with POST",
               503: "The index cannot be served"}
    return {str(s): _json(_ref("Error"), reasons[s]) for s in statuses}


def _object(properties: dict, required: list[str] | None = None) -> dict:
    return {"type": "object", "properties": properties, "required": required or list(properties),
            "additionalProperties": False}


# Offsets count Unicode code points of the document's text, as Python's str indexes it
# (not UTF-16 units: a JavaScript caller slices Array.from(text)).
OFFSET = {**INTEGER, "description": "a Unicode code point offset into the document's text (not UTF-16 units)"}

SCHEMAS = {
    "Error": _object({"error": _object({"code": {"type": "string"}, "message": {"type": "string"}})}),
    "Citation": _object({"doc_id": {"type": "string"}, "title": NULLABLE_STRING, "source": {"type": "string"},
                         "paragraph": INTEGER, "start": OFFSET, "end": OFFSET, "published": NULLABLE_STRING,
                         "author": NULLABLE_STRING}),
    "Highlight": _object({"start": OFFSET, "end": OFFSET, "doc_start": OFFSET, "doc_end": OFFSET,
                          "text": {"type": "string"}}),
    "Hit": _object({"rank": INTEGER, "score": {"type": "number"}, "text": {"type": "string"},
                    "citations": {"type": "array", "items": _ref("Citation"), "minItems": 1},
                    "highlight": {"oneOf": [_ref("Highlight"), {"type": "null"}]}}),
    "SearchResults": _object({"query": {"type": "string"}, "k": INTEGER, "offset": INTEGER,
                              "mode": {"enum": list(MODES)},
                              "collapse": {"type": "boolean"}, "took_ms": {"type": "number"},
                              "results": {"type": "array", "items": _ref("Hit")}}),
    "SearchRequest": {"type": "object", "required": ["query"], "additionalProperties": False, "properties": {
        "query": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS, "pattern": NONBLANK},
        "k": {"type": "integer", "minimum": 1, "maximum": MAX_K},
        "mode": {"enum": list(MODES)}, "collapse": {"type": "boolean"},
        "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
        "doc_id": {"oneOf": [{"type": "string", "minLength": 1},
                             {"type": "array", "items": {"type": "string", "minLength": 1}}]},
        "source": {"oneOf": [{"type": "string", "minLength": 1},
                             {"type": "array", "items": {"type": "string", "minLength": 1}}]},
        "published_from": {"type": "string", "pattern": DATE}, "published_to": {"type": "string", "pattern": DATE}}},
    "Context": _object({"query": {"type": "string"}, "context": {"type": "string"}, "chars": INTEGER,
                        "max_chars": INTEGER, "sources": {"type": "array", "items": _ref("ContextSource")}}),
    "ContextSource": _object({"n": INTEGER, "doc_id": {"type": "string"}, "title": NULLABLE_STRING,
                              "source": {"type": "string"}, "paragraph": INTEGER, "start": INTEGER, "end": INTEGER,
                              "published": NULLABLE_STRING, "author": NULLABLE_STRING, "score": {"type": "number"},
                              "complete": {"type": "boolean"},
                              "also": {"type": "array", "items": _object({"doc_id": {"type": "string"},
                                                                          "source": {"type": "string"},
                                                                          "paragraph": INTEGER})}}),
    "Document": _object({"doc_id": {"type": "string"}, "title": NULLABLE_STRING, "source": {"type": "string"},
                         "url": NULLABLE_STRING, "published": NULLABLE_STRING, "author": NULLABLE_STRING,
                         "text": {"type": "string"},
                         "passages": INTEGER}),
    "DocumentWrite": {"type": "object", "required": ["text"], "additionalProperties": False, "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": MAX_DOCUMENT_CHARS},
        **{key: {"type": "string"} for key in sorted(DOCUMENT_FIELDS - {"text"})}}},
    "WriteResult": {"type": "object", "required": ["doc_id", "status", "generation"], "additionalProperties": False,
                    "properties": {"doc_id": {"type": "string"},
                                   "status": {"enum": ["added", "replaced", "unchanged", "removed"]},
                                   "generation": NULLABLE_STRING, "passages": INTEGER}},
    "Health": _object({"status": {"const": "ok"}, "index": {"type": "string"}, "generation": NULLABLE_STRING,
                       "format_version": INTEGER, "model": {"type": "string"}, "dimension": INTEGER,
                       "documents": INTEGER, "passages": INTEGER, "built_at": {"type": "string"},
                       "vector_index": {"type": "string"}, "mode": {"enum": list(MODES)}, "reloads": INTEGER}),
}

DOC_ID = {"name": "doc_id", "in": "path", "required": True,
          "schema": {"type": "string", "minLength": 1, "maxLength": MAX_DOC_ID_CHARS}}
FILTER_PARAMETERS = [
    {"name": "doc_id", "in": "query", "style": "form", "explode": True, "description": "any of these documents",
     "schema": {"type": "array", "items": {"type": "string", "minLength": 1}}},
    {"name": "source", "in": "query", "style": "form", "explode": True, "description": "any of these sources",
     "schema": {"type": "array", "items": {"type": "string", "minLength": 1}}},
    {"name": "published_from", "in": "query", "schema": {"type": "string", "pattern": DATE}},
    {"name": "published_to", "in": "query", "schema": {"type": "string", "pattern": DATE}},
]
QUESTION_PARAMETERS = [
    {"name": "q", "in": "query", "required": True, "description": "the question",
     "schema": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS, "pattern": NONBLANK}},
    {"name": "k", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 5}},
    {"name": "mode", "in": "query", "schema": {"enum": list(MODES)}},
    {"name": "collapse", "in": "query", "schema": {"type": "boolean", "default": True}},
]
SEARCH_PARAMETERS = QUESTION_PARAMETERS + FILTER_PARAMETERS + [
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}},
]
CONTEXT_PARAMETERS = QUESTION_PARAMETERS + FILTER_PARAMETERS + [
    {"name": "max_chars", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_CHARS,
                                                    "default": 4000}},
]
WRITE_SECURITY = [{"bearer": []}, {"apiKey": []}]

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "newsearch", "version": "1",
             "description": "Semantic search over news articles: ranked passages with the exact span they "
                            "came from. Every error is {\"error\": {\"code\", \"message\"}}."},
    "paths": {
        "/search": {
            "get": {"operationId": "search", "summary": "The passages that best answer a question",
                    "parameters": SEARCH_PARAMETERS,
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
                    "parameters": CONTEXT_PARAMETERS,
                    "responses": {"200": _json(_ref("Context"), "Prompt-ready context"), **_errors(400, 414, 503)}},
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
        "/": {"get": {"operationId": "page", "summary": "The search page",
                      "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        "/read/{doc_id}": {"get": {
            "operationId": "read", "summary": "A document as a page, the cited passage marked",
            "parameters": [DOC_ID, {"name": "start", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                           {"name": "end", "in": "query", "schema": {"type": "integer", "minimum": 1}}],
            "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
                          **_errors(400, 404)}}},
        "/health": {"get": {"operationId": "health", "summary": "The index served",
                            "responses": {"200": _json(_ref("Health"), "Serving")}}},
        "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics",
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"operationId": "openapi", "summary": "This document",
                                  "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")}}},
    },
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
    },
}
