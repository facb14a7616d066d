"""Page cruft removal: which lines of a saved article are article text.

Pure functions of text (no I/O, no model). Lines are kept as character spans into the
original text, so every passage built from them can cite exact offsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Whole-line UI text from news pages: buttons, teasers, section labels. Compared
# case-insensitively against the stripped line.
UI_LINES = {
    "close", "no time to read?", "get a summary", "comments", "more", "share", "share this article",
    "advertisement", "read more", "subscribe", "sign up", "sign in", "log in", "menu", "search",
    "skip to content", "skip to main content", "listen", "print", "email", "loading", "show comments",
    "view comments", "related", "related articles", "most read", "trending", "follow us",
}
# A line that starts page navigation: it and everything after it are not the article.
NAVIGATION_LINES = {"previous article", "next article", "related articles", "more from this author"}
# Photo credits ("ED JONES/Getty Images", "Photo: Reuters") standing on a line of their own.
CREDIT = re.compile(r"^(?:photo(?:graph)?\s*:?\s*)?[^.]{0,60}?"
                    r"(?:/|\bvia\s+)?(?:getty images|afp|reuters|ap photo|epa|shutterstock|alamy)\W*$", re.I)
# Newsroom boilerplate that stands as a paragraph of its own and says nothing about the
# story ("Newsweek has contacted the Russian foreign ministry for comment.").
BOILERPLATE = re.compile(
    r"^[^.]{0,120}\b(?:ha(?:s|ve) (?:contacted|reached out to)|did not (?:immediately )?respond to)\b"
    r"[^.]{0,80}\bfor comments?\b[^.]{0,40}\.?$|^this (?:story|article) has been updated\b.{0,80}$", re.I)
# A sentence ends with . ! ? or an ellipsis, possibly inside closing quotes or brackets.
SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")
ELLIPSIS = re.compile(r"(?:…|\.\.\.)$")
# Lines of this many words or fewer, with no full stop or question mark, are UI words
# ("close", "Christianluscher", "Breaking: Beyond Headlines!"), never article text.
LONE_WORDS = 3
# A headline is one line without a full stop, of a headline's length.
HEADLINE_WORDS = range(3, 26)


@dataclass(frozen=True)
class Line:
    start: int  # offsets of the stripped line in the original text
    end: int
    text: str
    after_blank: bool  # a blank line (or the start of the text) comes before it


@dataclass(frozen=True)
class Cleaned:
    """The article's title (a headline line, if it has one) and its body lines."""

    title: str | None
    lines: list[Line]  # kept body lines in order
    # index pairs (i, i+1) into `lines` with nothing removed between them: a heading
    # or byline may only join a neighbour it is contiguous with
    contiguous: set[int]


def split_lines(text: str) -> list[Line]:
    """The non-blank lines of `text` with their stripped offsets."""
    lines, offset, after_blank = [], 0, True
    for raw in text.split("\n"):
        # a byte-order mark opens the file, not the article; offsets still count it, so
        # that text[start:end] of the file as read is the passage
        body = raw.lstrip("\ufeff") if offset == 0 else raw
        stripped = body.strip()
        if stripped:
            start = offset + len(raw) - len(body.lstrip())
            lines.append(Line(start, start + len(stripped), stripped, after_blank))
        after_blank = not stripped
        offset += len(raw) + 1
    return lines


def _norm(s: str) -> str:
    return " ".join(s.casefold().split())


def _is_ui(line: str) -> bool:
    n = _norm(line)
    if n in UI_LINES or CREDIT.match(line) or BOILERPLATE.match(line):
        return True
    return len(n.split()) <= LONE_WORDS and not re.search(r"[.?][\"'”’)\]]*$", n)


def _repeats_next(a: Line, b: Line) -> bool:
    """`b` repeats `a` on the very next line: a photo caption printed twice, the first
    copy sometimes truncated with an ellipsis."""
    if b.after_blank:
        return False
    na, nb = _norm(a.text), _norm(b.text)
    if na == nb:
        return True
    head = ELLIPSIS.sub("", na).rstrip()
    return bool(ELLIPSIS.search(na)) and len(head) >= 20 and nb.startswith(head)


def is_headline(text: str) -> bool:
    return len(text.split()) in HEADLINE_WORDS and not SENTENCE_END.search(text.rstrip("!?"))


def clean(text: str, title: str | None = None) -> Cleaned:
    """Drop page cruft from an article and find its headline.

    Args:
        text: the article as saved (a page's text, one paragraph or UI element a line).
        title: the title when the source gives one; otherwise the first line is taken
            as the headline when it looks like one.

    Returns:
        The title and the kept body lines (offsets into `text`).
    """
    lines = split_lines(text)
    for i, line in enumerate(lines):  # navigation: the article ends here
        if _norm(line.text) in NAVIGATION_LINES:
            lines = lines[:i]
            break
    drop = {i for i, line in enumerate(lines) if _is_ui(line.text)}
    for i in range(len(lines) - 1):
        if _repeats_next(lines[i], lines[i + 1]):
            drop |= {i, i + 1}
    seen: set[str] = set()
    kept: list[int] = []
    for i, line in enumerate(lines):
        n = _norm(line.text)
        if i in drop or n in seen:  # a line repeated further down (a headline shown twice)
            continue
        seen.add(n)
        kept.append(i)
    # A headline stands alone: the line after it does not run on in lower case.
    if title is None and kept and is_headline(lines[kept[0]].text) and (
            len(kept) == 1 or lines[kept[1]].after_blank or not lines[kept[1]].text[:1].islower()):
        title = lines[kept.pop(0)].text
    elif title is not None and kept and _norm(lines[kept[0]].text) == _norm(title):
        kept.pop(0)  # the body repeats the title the source already gave
    contiguous = {j for j in range(len(kept) - 1) if kept[j + 1] == kept[j] + 1}
    return Cleaned(title, [lines[i] for i in kept], contiguous)
