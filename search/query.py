"""What a search may ask: the question, k, the mode, the page and the filters, each
checked where a caller's values come in (Python, HTTP, `ask`, MCP alike), with the
limits the HTTP schema states."""

from __future__ import annotations

import re
from dataclasses import dataclass

from search.errors import BadRequest
from search.retrieval.fusion import MODES

MAX_K = 100
MAX_QUERY_CHARS = 1000
# A query needs one character that is not white space (Python's idea of it, which
# includes the separators \x1c-\x1f); spelled out so that /openapi.json states the same
# rule to the JSON Schema regex dialect.
NONBLANK = r"[^\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_NONBLANK = re.compile(NONBLANK)


@dataclass(frozen=True)
class Filters:
    """Which documents a search may answer from; empty fields do not filter."""

    doc_id: tuple[str, ...] = ()  # any of these documents
    source: tuple[str, ...] = ()  # any of these sources (file names or URLs)
    published_from: str | None = None  # YYYY-MM-DD, inclusive; documents without a date never match
    published_to: str | None = None

    def __bool__(self) -> bool:
        return bool(self.doc_id or self.source or self.published_from or self.published_to)

    @classmethod
    def of(cls, doc_id=None, source=None, published_from=None, published_to=None) -> "Filters":
        """From what a caller gave (a string or a list for the ids and sources), checked."""
        def strings(name: str, value) -> tuple[str, ...]:
            values = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, (list, tuple)) \
                else () if value is None else None
            if values is None or not all(isinstance(v, str) and v for v in values):
                raise BadRequest(f"invalid_{name}", f"{name} must be a non-empty string or a list of them")
            return values

        filters = cls(strings("doc_id", doc_id), strings("source", source), published_from, published_to)
        for name in ("published_from", "published_to"):
            value = getattr(filters, name)
            if value is not None and not (isinstance(value, str) and _DATE.fullmatch(value)):
                raise BadRequest(f"invalid_{name}", f"{name} must be a date as YYYY-MM-DD, got {value!r}")
        return filters


_DATE = re.compile(r"[0-9]{4}-[01][0-9]-[0-3][0-9]")
# Results are pages of one ranking 1,000 passages deep: offset + k (k <= 100) stays in it.
MAX_OFFSET = 900


def validate_query(query, k, mode: str = "hybrid") -> tuple[str, int]:
    """Check a query, k and mode as a caller gave them; raise BadRequest saying what is wrong."""
    if not isinstance(query, str):
        raise BadRequest("invalid_query", "query must be a string")
    if not _NONBLANK.search(query):
        raise BadRequest("empty_query", "query is empty: ask a question in words")
    if len(query) > MAX_QUERY_CHARS:
        raise BadRequest("query_too_long", f"query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("invalid_query", "query contains a lone surrogate: send valid Unicode text") from None
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise BadRequest("invalid_k", f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    check_mode(mode)
    return query, k


def check_offset(offset, k: int) -> None:
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise BadRequest("invalid_offset", f"offset must be an integer from 0 to {MAX_OFFSET}, got {offset!r}")


def check_mode(mode) -> None:
    if mode not in MODES:
        raise BadRequest("invalid_mode", f"mode must be one of {', '.join(MODES)}, got {mode!r}")
