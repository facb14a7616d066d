"""Time expressions in a question ("last week", "since October", "in 2022", "yesterday",
"on Tuesday", "in the past three months") as a range of publication dates, relative to
the question's `as_of` date.

The phrases are found here; the dates in them are read by dateparser (a maintained
parser of dates in text), which also says their grain (a day, a week, a month, a year),
from which the range follows. Only phrases that hold a date are taken: "after being
suspended" or "since the pandemic began" are not time expressions, and neither is a
comparison ("than a year ago").

A question names the time of an event ("who resigned on Tuesday", "what did Putin say in
2022"), and news of an event is published on the day or after it, sometimes long after
(a hearing in 2022 about January 6, 2021). So "on", "in", "during", "yesterday", "last
week" and "N days ago" keep what was published from the start of the time named up to
`as_of`; "since" and "after" the same from their date; "before" and "between" bound
both ends, as the words say.
"""

from __future__ import annotations

import calendar
import datetime
import re
from dataclasses import dataclass
from functools import lru_cache

MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
WEEKDAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "few": 3, "several": 3}
_NUMBER = rf"(?:\d{{1,3}}|{'|'.join(NUMBERS)})"
_UNIT = r"(?:day|week|month|year)s?"
# a date phrase: a month (with a day and a year), a weekday, a year, or a relative one
_DATE = (rf"(?:(?:early |mid-?|late )?(?:{MONTHS})(?: \d{{1,2}}(?:st|nd|rd|th)?)?(?:,? \d{{4}})?"
         rf"|(?:{WEEKDAYS})|\d{{4}}|yesterday|last (?:week|month|year)|{_NUMBER} {_UNIT} ago)")
# news of an event is published after it: a range that ends on a day ("between ... and
# June 5") keeps what was published this many days later
LAG_DAYS = 2


@dataclass(frozen=True)
class Interpreted:
    """What a question's time expression was understood as."""

    phrase: str
    published_from: str | None
    published_to: str | None

    def to_dict(self) -> dict:
        return {"phrase": self.phrase, "published_from": self.published_from, "published_to": self.published_to}


_PATTERNS = [  # (kind, pattern), most specific first
    ("between", re.compile(rf"\bbetween (?P<a>{_DATE}) and (?P<b>{_DATE})\b", re.I)),
    ("past", re.compile(rf"\b(?:in |over |during )?the (?:past|last) (?P<n>{_NUMBER}) (?P<unit>{_UNIT})\b", re.I)),
    ("since", re.compile(rf"\bsince (?P<a>{_DATE})\b", re.I)),
    ("before", re.compile(rf"\b(?:before|until|prior to) (?P<a>{_DATE})\b", re.I)),
    ("after", re.compile(rf"\bafter (?P<a>{_DATE})\b", re.I)),
    ("during", re.compile(rf"\b(?:in|on|during) (?P<a>{_DATE})\b", re.I)),
    ("during", re.compile(rf"(?<!than )(?<!to )(?<!with )(?<!from )(?<!versus )(?<!vs\. )\b"
                          rf"(?P<a>yesterday|last (?:week|month|year)|{_NUMBER} {_UNIT} ago)\b", re.I)),
]


# a word without which no pattern above matches
_ANY_DATE = re.compile(rf"\b(?:{MONTHS}|{WEEKDAYS}|yesterday|last|past|ago|\d{{4}})\b", re.I)


def interpret(query: str, as_of: str) -> Interpreted | None:
    """The publication range the question's first time expression asks for, or None
    (also for one whose dates fall outside the calendar: "after December 9999")."""
    try:
        return _interpret(query, datetime.date.fromisoformat(as_of))
    except (ValueError, OverflowError):
        return None


def _interpret(query: str, base: datetime.date) -> Interpreted | None:
    if not _ANY_DATE.search(query):  # most questions: one quick look instead of seven
        return None
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(query):
            found = _range(kind, match, base)
            if found is not None:
                start, end = found
                end = min(end, base) if end is not None else None
                if start is not None and end is not None and start > end:
                    continue  # e.g. "in December" asked in November of the same year: last year's
                return Interpreted(match.group(0), start and start.isoformat(), end and end.isoformat())
    return None


def _range(kind: str, match: re.Match, base: datetime.date):
    if kind == "past":
        n = _number(match.group("n"))
        unit = match.group("unit").lower().rstrip("s")
        return _shift(base, unit, -n), base
    span = _span(match.group("a"), base)
    if span is None:
        return None
    start, end = span
    if kind == "between":
        other = _span(match.group("b"), base)
        return (start, other[1] + datetime.timedelta(days=LAG_DAYS)) if other else None
    if kind == "since":
        return start, base
    if kind == "before":
        return None, start - datetime.timedelta(days=1)
    if kind == "after":
        return end + datetime.timedelta(days=1), base
    return start, base  # an event's time: its news from then on


def _span(phrase: str, base: datetime.date) -> tuple[datetime.date, datetime.date] | None:
    """The days a date phrase covers, by its grain."""
    parsed = _parse(re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", phrase.lower()), base)
    if parsed is None:
        return None
    day, grain = parsed
    if grain == "year":
        return datetime.date(day.year, 1, 1), datetime.date(day.year, 12, 31)
    if grain == "month":
        last = calendar.monthrange(day.year, day.month)[1]
        return datetime.date(day.year, day.month, 1), datetime.date(day.year, day.month, last)
    if grain == "week":
        monday = day - datetime.timedelta(days=day.weekday())
        return monday, monday + datetime.timedelta(days=6)
    return day, day


@lru_cache(maxsize=4096)
def _parse(phrase: str, base: datetime.date) -> tuple[datetime.date, str] | None:
    """(date, grain) of a phrase by dateparser, relative to `base`, from the past."""
    from dateparser.date import DateDataParser

    bare = re.sub(r"^(early|mid-?|late) ", "", phrase)
    if re.fullmatch(r"\d{4}", bare):  # a year alone: dateparser would take it for this month of it
        return datetime.date(int(bare), 1, 1), "year"
    moment = datetime.datetime.combine(base, datetime.time(12))
    data = DateDataParser(languages=["en"], settings={
        "RELATIVE_BASE": moment, "PREFER_DATES_FROM": "past", "PREFER_DAY_OF_MONTH": "first",
        "RETURN_TIME_AS_PERIOD": False}).get_date_data(bare)
    if data.date_obj is None:
        return None
    day = data.date_obj.date()
    if re.fullmatch(rf"(?:{MONTHS})(?: \d{{1,2}})?", bare) and day > base:
        day = day.replace(year=day.year - 1)  # "in December" asked in November: last December
    return day, data.period or "day"


def _number(text: str) -> int:
    return int(text) if text.isdigit() else NUMBERS[text.lower()]


def _shift(day: datetime.date, unit: str, n: int) -> datetime.date:
    if unit == "day":
        return day + datetime.timedelta(days=n)
    if unit == "week":
        return day + datetime.timedelta(weeks=n)
    months = day.year * 12 + day.month - 1 + (n if unit == "month" else 12 * n)
    year, month = divmod(months, 12)
    return datetime.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))
