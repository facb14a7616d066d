"""The HTTP contract beyond the search questions (search/query.py): a document's write
body, checked here, and every response body, described for `/openapi.json` (which
schemathesis holds the live service to, tests/test_fuzz.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, Strict
from pydantic_core import PydanticCustomError

from search.errors import BadRequest
from search.query import MAX_ALERT_K, MAX_QUERY_CHARS, NONBLANK, Contract, Date, Names, Question, _integer
from search.retrieval.fusion import MODES

MAX_DOCUMENT_CHARS = 1_000_000
MAX_DOC_ID_CHARS = 200
# Offsets count Unicode code points of the document's text, as Python's str indexes it
# (not UTF-16 units: a JavaScript caller slices Array.from(text)).
Offset = Annotated[int, Field(description="a Unicode code point offset into the document's text (not UTF-16 units)")]


def _article(text: str) -> str:
    if not text.strip():
        raise PydanticCustomError("empty", "is empty")
    if "\x00" in text or sum(ord(c) < 32 and c not in "\n\r\t\f" for c in text) > len(text) // 100:
        raise PydanticCustomError("binary", "holds control characters")
    return text


def _text_error(kind: str, text) -> BadRequest:
    if kind == "string_too_long":
        return BadRequest("document_too_long", f"text is {len(text)} characters long; the limit is {MAX_DOCUMENT_CHARS}")
    if kind == "binary":
        return BadRequest("binary_document", "text holds control characters: send the article's text, not a file")
    if kind == "string_unicode":  # pydantic refuses lone surrogates
        return BadRequest("invalid_document", "text contains a lone surrogate: send valid Unicode text")
    return BadRequest("empty_document", 'missing or empty "text": send the article\'s text')


Metadata = Annotated[str, Strict(), Field(description="a string")] | None


EXAMPLE = {"title": "Harbour seals return to the Thames", "published": "2024-11-02",
           "text": "A survey counted 1,234 harbour seals along the Thames estuary this summer, the most since "
                   "records began, conservationists said.\n"}


class DocumentWrite(Contract):
    """`PUT /documents/<doc_id>`: an article to add or replace."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    field_errors = {"text": _text_error}

    text: Annotated[str, Strict(), Field(min_length=1, max_length=MAX_DOCUMENT_CHARS, description="the article's text"),
                    AfterValidator(_article)]
    title: Metadata = None
    url: Metadata = None
    published: Metadata = None
    author: Metadata = None


class FeedLine(DocumentWrite):
    """A line of a `POST /documents` feed: a document's write body with its id."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "thames-seals", **EXAMPLE}]})

    field_errors = {"text": _text_error, "id": lambda kind, value: BadRequest(
        "invalid_doc_id", f'every line needs its document\'s "id": 1 to {MAX_DOC_ID_CHARS} printable characters')}

    id: Annotated[str, Strict(), Field(min_length=1, max_length=MAX_DOC_ID_CHARS, description="the document's id")]


class AlertWrite(Contract):
    """`POST /alerts`: a question every new article is matched against."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"query": "seal pups in the Thames", "k": 10}]})
    field_errors = {"query": Question.field_errors["query"]}

    query: Annotated[str, Strict(), Field(min_length=1, max_length=MAX_QUERY_CHARS, pattern=NONBLANK),
                     Field(description="the question")]
    # a new article matches when it is among the question's first k results (and close in meaning)
    k: _integer(1, MAX_ALERT_K) = 10
    source: Names = None
    published_from: Date = None
    published_to: Date = None
    # called with {"alert", "matches"} (POST, JSON) when new articles match
    webhook: Annotated[str, Strict(), Field(max_length=2000, pattern=r"^https?://[^\x00-\x20\x7f]+$",
                                            description="an http:// or https:// URL")] = None


class Alert(Contract):
    id: str
    query: str
    k: int
    filters: dict
    webhook: str | None
    created: str


class AlertMatch(Contract):
    doc_id: str
    published: str | None
    text: str
    citations: list[Citation]
    matched_at: str


class AlertMatches(Contract):
    alert: str
    since: str | None
    matches: list[AlertMatch]


class Error(Contract):
    class Detail(Contract):
        code: str
        message: str

    error: Detail


class Citation(Contract):
    doc_id: str
    title: str | None
    source: str
    paragraph: int
    start: Offset
    end: Offset
    published: str | None
    author: str | None


class Highlight(Contract):
    start: Offset
    end: Offset
    doc_start: Offset
    doc_end: Offset
    text: str


class MorePassage(Contract):
    """Another passage of a result's article that answers (group=article)."""

    text: str
    paragraph: int
    start: Offset
    end: Offset
    score: float


class Hit(Contract):
    rank: int
    score: float
    text: str
    citations: Annotated[list[Citation], Field(min_length=1)]
    highlight: Highlight | None
    more: list[MorePassage] = None  # group=article only
    story: int | None  # the story (event) its article reports; None for an index without stories


class Interpretation(Contract):
    """What a time expression in the question was taken to mean (dates=literal: none)."""

    phrase: str
    published_from: str | None
    published_to: str | None


class FacetCount(Contract):
    value: str | None
    count: int


class SearchResults(Contract):
    query: str
    k: int
    offset: int
    mode: Literal[MODES]
    collapse: bool
    sort: Literal["relevance", "date"]
    group: Literal["none", "article", "story"]
    diversity: int | None
    mmr: float | None
    as_of: str
    interpreted: Interpretation | None
    # facets=...: for each field asked, the articles of the best `facet_depth` passages by value
    facets: dict[str, list[FacetCount]] = None
    facet_depth: int = None
    took_ms: float
    results: list[Hit]


class Also(Contract):
    doc_id: str
    source: str
    paragraph: int


class ContextSource(Contract):
    n: int
    doc_id: str
    title: str | None
    source: str
    paragraph: int
    start: int
    end: int
    published: str | None
    author: str | None
    score: float
    complete: bool
    also: list[Also]


class Context(Contract):
    query: str
    context: str
    chars: int
    max_chars: int
    sources: list[ContextSource]


class TimelineEntry(Contract):
    doc_id: str
    published: str | None
    source: str
    title: str | None
    text: str  # the article's passage that answered the question (GET /stories/<id>: its lead)
    paragraph: int  # where that passage is: documents.text[start:end] == text
    start: int
    end: int


class Story(Contract):
    """One event's articles (placed as they were indexed), in order of publication."""

    id: int
    label: str  # the headline of its first article
    first_published: str | None
    last_published: str | None
    articles: int
    sources: int
    timeline: list[TimelineEntry]


class Stories(Contract):
    query: str
    stories: list[Story]


class Document(Contract):
    doc_id: str
    title: str | None
    source: str
    url: str | None
    published: str | None
    author: str | None
    text: str
    passages: int


class WriteResult(Contract):
    doc_id: str
    status: Literal["added", "replaced", "unchanged", "removed"]
    generation: str | None
    passages: int = None  # absent from a removal's answer


class FeedResult(Contract):
    """`POST /documents`: what one feed changed, in one new generation."""

    generation: str | None
    added: list[str]
    replaced: list[str]
    unchanged: list[str]


class Health(Contract):
    status: Literal["ok"]
    index: str
    generation: str | None
    format_version: int
    model: str
    dimension: int
    documents: int
    passages: int
    built_at: str
    vector_index: str
    mode: Literal[MODES]
    reloads: int


RESPONSES = (Error, SearchResults, Context, Stories, Story, Alert, AlertMatches, Document, WriteResult, FeedResult,
             Health)
