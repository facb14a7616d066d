"""What a search may ask: the question, k, the mode, the page and the filters.

One description (pydantic models) checks what a caller gives, whichever way it comes in
(Python, HTTP, `ask`, MCP), names the problem with the project's error codes, and is the
schema `/openapi.json` publishes for the search routes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Callable, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    ValidationError,
)

from search.errors import BadRequest
from search.retrieval.context import DEFAULT_MAX_CHARS, MAX_CHARS
from search.retrieval.fusion import MODES

MAX_K = 100
FACETS = ("source", "author", "published_month")
MAX_STORIES = 20  # stories a /stories listing may ask for
MAX_ALERT_K = 20  # the depth an alert may ask a new article to reach
MAX_NEIGHBOURS = 5  # paragraphs either side a /context passage may bring
MAX_QUERY_CHARS = 1000
# Results are pages of one ranking 1,000 passages deep: offset + k (k <= 100) stays in it.
MAX_OFFSET = 900
DEFAULT_K = 5
# A query needs one character that is not white space (Python's idea of it, which
# includes the separators \x1c-\x1f); spelled out so that /openapi.json states the same
# rule to the JSON Schema regex dialect.
NONBLANK = r"[^\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
DATE = r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"  # a day past its month's end counts as its last


def _integral(value):
    """JSON has one number type: 5.0 is the integer 5 (but 5.5, "5" and true are not integers)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _integer(low: int, high: int):
    # the constraints before the validator, so that the schema states them as minimum and maximum
    return Annotated[int, Strict(), Field(ge=low, le=high, description=f"an integer from {low} to {high}"),
                     BeforeValidator(_integral)]


Mode = Annotated[Literal[MODES], Field(description=f"one of {', '.join(MODES)}")]
Names = Annotated[Annotated[str, Strict(), Field(min_length=1)] | list[Annotated[str, Strict(), Field(min_length=1)]],
                  Field(description="a non-empty string or a list of them")]
# maximal marginal relevance (off by default): its weight on relevance, the rest on novelty
Mmr = Annotated[float, Strict(), Field(ge=0, le=1, allow_inf_nan=False, description="a number from 0 to 1")]
Date = Annotated[str, Strict(), Field(pattern=DATE, description="a date as YYYY-MM-DD")]


class Contract(BaseModel):
    """A JSON object with exactly these fields, whose validation errors become the
    project's: `invalid_<field>` saying what the field must be, unless `field_errors`
    gives a field codes of its own (by pydantic's error type)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    field_errors: ClassVar[dict[str, Callable[[str, object], BadRequest]]] = {}


class Question(Contract):
    """A question and how to rank and filter its answers (what every search route takes)."""

    query: Annotated[str, Strict(), Field(min_length=1, max_length=MAX_QUERY_CHARS, pattern=NONBLANK), Field(description="the question")]
    k: _integer(1, MAX_K) = DEFAULT_K
    # no value means the searcher's default (SEARCH_MODE); an explicit null is refused
    mode: Mode = None
    collapse: Annotated[StrictBool, Field(description="true or false")] = True
    doc_id: Names = None  # any of these documents
    source: Names = None  # any of these sources (file names or URLs)
    # YYYY-MM-DD, inclusive; documents without a date never match
    published_from: Date = None
    published_to: Date = None
    # the date the question is asked on (default: today): what "recent" and "last week" are measured from
    as_of: Date = None
    # "interpreted": a time expression in the question ("last week", "in 2022") filters the
    # publication dates (the response says how); "literal": the words are only words
    dates: Annotated[Literal["interpreted", "literal"], Field(description="interpreted or literal")] = "interpreted"


class SearchRequest(Question):
    """`/search`: a page of the ranked passages."""

    offset: _integer(0, MAX_OFFSET) = 0
    # "relevance" (the default) or "date": the passages that answer, newest first
    sort: Annotated[Literal["relevance", "date"], Field(description="relevance or date")] = "relevance"
    # "article": one result per article, its best passage, the article's other answering passages after it;
    # "story": one result per story, its best passage, citing the story's other articles that answer
    group: Annotated[Literal["none", "article", "story"], Field(description="none, article or story")] = "none"
    # at most this many results from one source (off by default), so one outlet's paragraphs do not fill a page
    diversity: Annotated[int, Strict(), Field(ge=1, le=MAX_K, description=f"an integer from 1 to {MAX_K}"),
                         BeforeValidator(_integral)] = None
    mmr: Mmr = None
    # counts of what the query matched by these fields, e.g. ["source", "published_month"]
    facets: Annotated[list[Literal[FACETS]], Field(description=f"a list of {', '.join(FACETS)}")] = []


class StoriesRequest(Question):
    """`/stories`: the stories that answer a question, each as a timeline of its articles."""

    k: _integer(1, MAX_STORIES) = 5


class ContextRequest(Question):
    """`/context`: the passages as cited text within a character budget."""

    max_chars: _integer(1, MAX_CHARS) = DEFAULT_MAX_CHARS
    # each passage with this many paragraphs of its article before and after it
    neighbours: _integer(0, MAX_NEIGHBOURS) = 0
    mmr: Mmr = None


def checked(model: type[Contract], values: dict):
    """`values` as `model`, or the BadRequest that names the first problem."""
    try:
        return model.model_validate(values)
    except ValidationError as e:
        raise bad_request(model, e) from None


def bad_request(model: type[Contract], error: ValidationError) -> BadRequest:
    """The project's error for a failed validation: an unknown field first, then the
    fields with codes of their own (the question, a document's text), then the first
    field in the model's order."""
    errors = error.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), None) or \
        next((e for e in errors if e["loc"][:1] and e["loc"][0] in model.field_errors), None) or errors[0]
    name, value = str(first["loc"][0]) if first["loc"] else "", first.get("input")
    if first["type"] == "extra_forbidden":
        return BadRequest("unknown_field", f"unknown field {name!r}; accepted: {', '.join(sorted(model.model_fields))}")
    if name in model.field_errors:
        return model.field_errors[name](first["type"], value)
    return BadRequest(f"invalid_{name}", f"{name} must be {model.model_fields[name].description}, got {value!r}")


def _query_error(kind: str, query) -> BadRequest:
    if kind == "missing":
        return BadRequest("missing_query", 'missing "query": send {"query": "...", "k": 5}')
    if kind == "string_too_long":
        return BadRequest("query_too_long", f"query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}")
    if kind in ("string_too_short", "string_pattern_mismatch"):
        return BadRequest("empty_query", "query is empty: ask a question in words")
    if kind == "string_unicode":  # pydantic refuses lone surrogates
        return BadRequest("invalid_query", "query contains a lone surrogate: send valid Unicode text")
    return BadRequest("invalid_query", "query must be a string")


Question.field_errors = {"query": _query_error}


@dataclass(frozen=True)
class Filters:
    """Which documents a search may answer from; empty fields do not filter."""

    doc_id: tuple[str, ...] = ()  # any of these documents
    source: tuple[str, ...] = ()  # any of these sources (file names or URLs)
    published_from: str | None = None  # YYYY-MM-DD, inclusive; documents without a date never match
    published_to: str | None = None
    # whether undated documents pass the date range too: so for a range read from the
    # question's words (a guess a document without a date cannot be judged by), never
    # for one a caller gives
    undated: bool = False

    def __bool__(self) -> bool:
        return bool(self.doc_id or self.source or self.published_from or self.published_to)

    def within(self, interpreted) -> "Filters":
        """These filters with the publication range a question's words were read as
        (search/retrieval/when.py), undated documents kept; unchanged for None."""
        if interpreted is None:
            return self
        return dataclasses.replace(self, published_from=interpreted.published_from,
                                   published_to=interpreted.published_to, undated=True)

    @classmethod
    def of(cls, doc_id=None, source=None, published_from=None, published_to=None) -> "Filters":
        """From what a caller gave (a string or a list for the ids and sources), checked."""
        given = {"doc_id": doc_id, "source": source, "published_from": published_from, "published_to": published_to}
        return cls.from_request(checked(Question, {"query": "?", **{k: v for k, v in given.items() if v is not None}}))

    @classmethod
    def from_request(cls, request: Question) -> "Filters":
        def names(value) -> tuple[str, ...]:
            return () if value is None else (value,) if isinstance(value, str) else tuple(value)

        return cls(names(request.doc_id), names(request.source), request.published_from, request.published_to)


def validate_query(query, k, mode: str = "hybrid") -> tuple[str, int]:
    """Check a query, k and mode as a caller gave them; raise BadRequest saying what is wrong."""
    question = checked(Question, {"query": query, "k": k, "mode": mode})
    return question.query, question.k


def check_search(query, **options) -> SearchRequest:
    """A search as a Python caller asked it (`options` as `SearchRequest` names them; None:
    the default), checked in one pass; BadRequest naming the first problem."""
    return checked(SearchRequest, {"query": query} | {name: value for name, value in options.items()
                                                      if value is not None})


def check_mode(mode) -> None:
    checked(Question, {"query": "?", "mode": mode})
