"""Questions about who wrote an article, answered by the article's by-line.

"Who wrote the piece about ...?" names an article by its subject and asks for its author.
The passage that says who wrote it ("By Jane Doe", "Jane Doe is the Post's defence
editor") shares nothing with the subject, so neither BM25 nor the model ranks it near the
article's best passage. For such a question the by-line passage of each leading article
is put just above that article's best passage.

Pure functions of text and rankings; the searcher reads the passages.
"""

from __future__ import annotations

import re

import numpy as np

from search.ranked import Ranking

# How many of the ranking's first articles have their by-line brought forward: the
# question names one article, and the next ones cover a near-miss of the article.
ARTICLES = 3

_WRITE = r"(?:wrote|writes|has written|authored|penned)"
_ROLE = r"(?:author|writer|columnist|reporter|correspondent|journalist)"
_PIECE = r"(?:article|piece|op-?ed|opinion|column|commentary|editorial|story|report|essay|analysis|feature)"
ASKS_AUTHOR = re.compile(
    # who wrote the opinion piece ..., who wrote about ...
    rf"\bwho\s+(?:had\s+|has\s+)?{_WRITE}\s+(?:about\b|(?:the|this|that|a|an)\s+(?:[\w'’-]+\s+){{0,3}}?{_PIECE}s?\b)"
    rf"|\bwho\s+(?:is|was|are|were)\s+the\s+{_ROLE}s?\b"  # who is the author of
    rf"|\bwhich\s+(?:\w+\s+)?{_ROLE}s?\s+{_WRITE}\b"  # which reporter wrote
    rf"|\b(?:written|authored|penned)\s+by\s+whom\b"
    rf"|\bwhose\s+(?:[\w'’-]+\s+)?{_PIECE}s?\b"  # whose opinion piece
    rf"|\b(?:by-?line|{_ROLE})s?\s+of\s+(?:the|this|that)\s+(?:[\w'’-]+\s+){{0,3}}?{_PIECE}s?\b",  # the author of the op-ed
    re.I)

# A name: two to four capitalised words (initials and particles allowed between them).
_NAME = r"(?P<name>[A-Z][\w'’.-]+(?:\s+(?:(?:de|da|van|von|der|al|bin|le|la)\s+)?[A-Z][\w'’.-]+){1,3})"
_JOB = r"(?:editor|correspondent|columnist|reporter|writer|journalist|contributor|author|critic|bureau chief)s?"
# The forms a by-line takes on a line of its own, each naming the author, and the most
# words such a line has: a longer one that starts alike is the story's own sentence
# ("By Monday Kyiv had pulled its troops back ...").
BYLINES = [(re.compile(pattern), words) for pattern, words in (
    (rf"(?i:by|written by|words by)\s+{_NAME}", 10),  # By Jane Doe
    (rf"(?i:reporting|writing|additional reporting)\s+by\s+{_NAME}", 16),  # Reporting by Jane Doe; Editing by ...
    (rf"{_NAME}\s+(?:is|was)\s+(?:a|an|the)\b[^.\n]{{0,80}}?\b(?i:{_JOB})\b", 24),  # Jane Doe is the Post's editor
    (rf"{_NAME}\s+(?:writes|reports)\s+(?:for|on|about)\b", 24),  # Jane Doe writes for the Post
)]


def asks_for_author(question: str) -> bool:
    """Whether `question` asks who wrote an article."""
    return ASKS_AUTHOR.search(question) is not None


def byline_name(line: str) -> str | None:
    """The author a by-line names, when `line` is one; else None."""
    line = line.strip()
    words = len(line.split())
    for pattern, most in BYLINES:
        found = pattern.match(line) if words <= most else None
        if found:
            return found.group("name").rstrip(".,;")
    return None


def is_byline(text: str, author: str | None = None) -> bool:
    """Whether a passage holds its article's by-line: a line of a by-line's form, or one
    that starts with the author the article's metadata names."""
    lines = text.splitlines()
    if any(byline_name(line) for line in lines):
        return True
    name = (author or "").strip().casefold()
    return len(name) > 2 and any(_starts_with_name(line, name) for line in lines)


def _starts_with_name(line: str, name: str) -> bool:
    """Whether a short line starts with `name` (case-folded), as a whole word."""
    folded = line.strip().casefold().removeprefix("by ")
    rest = folded[len(name):]
    return len(line.split()) <= 10 and folded.startswith(name) and not rest[:1].isalnum()


def author_of(lines: list[str]) -> str | None:
    """The author a by-line among `lines` names (an article's opening or closing lines), or None."""
    return next(filter(None, map(byline_name, lines)), None)


def leading_articles(ranked: Ranking, document_row: np.ndarray, articles: int = ARTICLES) -> list[tuple[int, int]]:
    """(article row, position of its best passage in `ranked`) for the first `articles`
    articles of a best-first ranking."""
    seen: dict[int, int] = {}
    for at, pid in enumerate(ranked[0].tolist()):
        row = int(document_row[pid])
        if row not in seen:
            seen[row] = at
            if len(seen) == articles:
                break
    return list(seen.items())


def bylines_first(ranked: Ranking, bylines: dict[int, int], document_row: np.ndarray) -> Ranking:
    """`ranked` with each article's by-line passage (`bylines`: article row -> passage id)
    moved to just above the article's best passage, with that passage's score."""
    ids, scores = ranked
    if not bylines:
        return ranked
    out_ids, out_scores = [], []
    placed: set[int] = set()
    for pid, score in zip(ids.tolist(), scores.tolist()):
        row = int(document_row[pid])
        if row in bylines:
            if row not in placed:  # the article's best passage: its by-line goes first
                placed.add(row)
                out_ids.append(bylines[row])
                out_scores.append(score)
            if pid == bylines[row]:  # (already placed)
                continue
        out_ids.append(pid)
        out_scores.append(score)
    return np.array(out_ids, dtype=ids.dtype), np.array(out_scores, dtype=scores.dtype)
