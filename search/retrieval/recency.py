"""Time in the ranking: a question that asks for what is recent ("latest", "this week",
"recently", "now", "so far") favours the articles published near its `as_of` date (today,
unless the caller says otherwise). The preference is applied after fusion, to the fused
score, never inside it; a question without such words ranks exactly as it would without
time.
"""

from __future__ import annotations

import calendar
import datetime
import functools
import re
import threading

import numpy as np

from search.ranked import Ranking, ranking
from search.retrieval.fusion import normalise

RECENT = re.compile(
    r"\b(latest|newest|most recent|recent(ly)?|lately|this (week|weekend|month|year)|today|tonight|yesterday"
    r"|last (night|week|weekend)|now|currently|so far|upcoming|new(ly)? (announced|released))\b",
    re.IGNORECASE)


def wants_recent(query: str) -> bool:
    """Whether the question asks for what is recent."""
    return RECENT.search(query) is not None


@functools.lru_cache(maxsize=1 << 16)  # an archive's articles share far fewer dates than they are
def day(date: str | None) -> float:
    """A YYYY-MM-DD... date as a day number (NaN when there is none or it does not parse);
    a day past its month's end (2025-02-30) counts as the month's last."""
    match = re.match(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", str(date or ""))
    if not match:
        return float("nan")
    year, month, dom = map(int, match.groups())
    if not 1 <= month <= 12 or not 1 <= year:
        return float("nan")
    return float(datetime.date(year, month, min(max(dom, 1), calendar.monthrange(year, month)[1])).toordinal())


def today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


class PublicationDates:
    """Each passage's article's publication date as a day number (NaN: undated), read
    from the store on first use, and the orderings that use it. Dates are read and parsed
    per article (`dated(first_row)`: (document row, published) of the dated documents from
    that row on), then spread to passages by `document_row` (passage id -> its row)."""

    def __init__(self, dated, document_row: np.ndarray, documents: int, known: np.ndarray | None = None):
        self._dated, self._document_row, self._documents = dated, document_row, documents
        self._known = known  # the first documents' days, as an earlier generation read them
        self._document_days: np.ndarray | None = None
        self._days: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def days(self) -> np.ndarray:
        if self._days is None:
            with self._lock:  # the first search that needs them reads them; the others wait
                if self._days is None:
                    by_row = np.full(self._documents, np.nan)
                    first = 0 if self._known is None else len(self._known)
                    by_row[:first] = self._known
                    parsed: dict[str, float] = {}
                    for row, published in self._dated(first):
                        if published not in parsed:
                            parsed[published] = day(published)
                        by_row[row] = parsed[published]
                    self._document_days, self._known = by_row, None
                    self._days = by_row[self._document_row]
        return self._days

    def known(self, count: int) -> np.ndarray | None:
        """The days of the first documents (at most `count`) as far as this reader has
        them, read or lent by an earlier reader, for the next generation's reader, which
        reads the rest."""
        days = self._document_days if self._document_days is not None else self._known
        return None if days is None else days[:count]

    def in_time(self, query: str, ranked: Ranking, as_of: str | None, weight: float, half_life_days: float) -> Ranking:
        """`ranked` with recent articles favoured, for a question that asks for them."""
        if not wants_recent(query):
            return ranked
        return favour_recent(ranked, self.days, as_of or today(), weight, half_life_days)

    def newest_first(self, ranked: Ranking, depth: int) -> Ranking:
        """The best `depth` passages, newest article first (undated last), the more
        relevant first within a day; their scores stay their relevance."""
        ids, scores = ranked[0][:depth], ranked[1][:depth]
        order = np.lexsort((-scores, -np.nan_to_num(self.days[ids], nan=-np.inf)))
        return ids[order], scores[order]


def favour_recent(ranked: Ranking, published: np.ndarray, as_of: str, weight: float, half_life_days: float) -> Ranking:
    """`ranked` with recent articles lifted: each passage's score (scaled to 0..1 over the
    candidates) plus `weight` times how fresh its article is on `as_of` (`published[id]`:
    day numbers, NaN for undated): 1 on the day, 1/2 a half-life away, towards 0 long
    before or after; an undated article counts as long ago. Scaled to 0..1 again, the
    best 1. An addition rather than a factor: the fused scores' least candidate is 0,
    which no factor could lift."""
    ids, scores = ranked
    if not len(ids) or weight <= 0:
        return ranked
    age = np.abs(day(as_of) - published[ids])
    fresh = np.where(np.isnan(age), 0.0, np.exp2(-np.nan_to_num(age, nan=0.0) / half_life_days))
    return ranking(ids, normalise(normalise(scores) + weight * fresh))
