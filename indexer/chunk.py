"""Chunking: the cleaned lines of an article become passages with exact offsets.

One passage per paragraph. A fragment too short to stand alone (a subheading, a
byline) joins its neighbour; a paragraph longer than the model's window is split at
sentence boundaries. Pure text logic: the token counter is passed in.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Callable, Iterable

from .clean import SENTENCE_END, Cleaned

CHUNKER_VERSION = 1
# The sentence splitters an index can be built with (BuildOptions.segmenter). Long
# paragraphs are cut and sentences embedded at their boundaries, so an index records the
# one it was built with and its updates keep to it. pysbd, the only one before there was
# a choice, gave the same answers (docs/benchmarks.md) at a twentieth of the speed.
SEGMENTERS = ("nupunkt", "blingfire", "pysbd")
DEFAULT_SEGMENTER = "nupunkt"
LEGACY_SEGMENTER = "pysbd"
# Fewer words than this and a paragraph is a fragment (a byline, a dateline) even when
# it ends like a sentence; a paragraph that does not end like a sentence (a heading)
# is a fragment below HEADING_WORDS.
FRAGMENT_WORDS = 8
HEADING_WORDS = 25


@dataclass(frozen=True)
class Passage:
    paragraph: int  # 1-based ordinal of its (first) paragraph in the cleaned article
    start: int      # original[start:end] is the passage's text
    end: int


@dataclass
class _Para:
    ordinal: int
    start: int
    end: int
    joins_next: bool  # nothing was removed between it and the next paragraph


def paragraphs(cleaned: Cleaned) -> list[_Para]:
    """Kept lines as paragraphs. A line that breaks mid-sentence and runs on in
    lower case on the next line is hard-wrapped text, not a paragraph of its own."""
    out: list[_Para] = []
    lines = cleaned.lines
    for i, line in enumerate(lines):
        contiguous = i in cleaned.contiguous
        if out and _continues(lines[i - 1].text, line) and (i - 1) in cleaned.contiguous:
            out[-1].end, out[-1].joins_next = line.end, contiguous
        else:
            out.append(_Para(len(out) + 1, line.start, line.end, contiguous))
    return out


def _continues(previous: str, line) -> bool:
    return not line.after_blank and not SENTENCE_END.search(previous) and line.text[:1].islower()


def is_fragment(text: str) -> bool:
    words = len(text.split())
    return words < FRAGMENT_WORDS or (words < HEADING_WORDS and not SENTENCE_END.search(text))


def join_fragments(text: str, paras: list[_Para]) -> list[_Para]:
    """Join each fragment to the paragraph it introduces (the next one), or, at the end
    of a run, to the one it closes (the previous one). Only across nothing removed."""
    out: list[_Para] = []
    pending: _Para | None = None  # fragments waiting for the paragraph they introduce
    for para in paras:
        if pending is not None:
            para = _Para(pending.ordinal, pending.start, para.end, para.joins_next)
            pending = None
        if is_fragment(text[para.start:para.end]) and para.joins_next:
            pending = para
            continue
        if is_fragment(text[para.start:para.end]) and out and out[-1].joins_next:
            out[-1].end, out[-1].joins_next = para.end, para.joins_next
            continue
        out.append(para)
    if pending is not None:  # the last paragraph is a fragment joined to nothing after it
        out.append(pending)
    return out


@functools.lru_cache(maxsize=None)
def _splitter(name: str) -> Callable[[str], Iterable[tuple[int, int]]]:
    """`name`'s sentence spans (character offsets) of a string."""
    if name == "nupunkt":
        import nupunkt

        return nupunkt.sent_spans
    if name == "blingfire":
        import blingfire

        return lambda piece: blingfire.text_to_sentences_and_offsets(piece)[1]
    if name == "pysbd":
        import pysbd

        segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
        return lambda piece: [(s.start, s.end) for s in segmenter.segment(piece)]
    raise ValueError(f"unknown sentence splitter {name!r} (one of {', '.join(SEGMENTERS)})")


def sentences(text: str, start: int, end: int, segmenter: str = DEFAULT_SEGMENTER) -> list[tuple[int, int]]:
    """Sentence spans (absolute offsets, whitespace trimmed) of text[start:end]."""
    spans = []
    for s, e in _splitter(segmenter)(text[start:end]):
        chunk = text[start + s:start + e]
        lead = len(chunk) - len(chunk.lstrip())
        a, b = start + s + lead, start + s + len(chunk.rstrip())
        if b > a:
            spans.append((a, b))
    return spans or [(start, end)]


def split_long(text: str, start: int, end: int, count_tokens: Callable[[str], int],
               max_tokens: int, segmenter: str = DEFAULT_SEGMENTER,
               count_each: Callable[[list[str]], list[int]] | None = None) -> list[tuple[int, int]]:
    """Pack whole sentences into pieces of at most `max_tokens` word pieces; a single
    sentence over the limit is cut between words. A piece's count is the sum of its
    sentences' (word pieces never span the space or punctuation between sentences), so
    each sentence is tokenised once rather than every piece again as it grows."""
    if count_tokens(text[start:end]) <= max_tokens:
        return [(start, end)]
    pieces: list[tuple[int, int]] = []
    counts: list[int] = []
    spans = sentences(text, start, end, segmenter)
    each = count_each or (lambda texts: [count_tokens(t) for t in texts])
    for (a, b), count in zip(spans, each([text[a:b] for a, b in spans])):
        if pieces and counts[-1] + count <= max_tokens:
            pieces[-1], counts[-1] = (pieces[-1][0], b), counts[-1] + count
        elif count <= max_tokens:
            pieces.append((a, b))
            counts.append(count)
        else:
            cut = _split_words(text, a, b, count_tokens, max_tokens)
            pieces.extend(cut)
            counts.extend(count_tokens(text[x:y]) for x, y in cut)
    return pieces


def _split_words(text, start, end, count_tokens, max_tokens):
    pieces, a, last = [], None, None
    for m in re.finditer(r"\S+", text[start:end]):
        ws, we = start + m.start(), start + m.end()
        if a is not None and count_tokens(text[a:we]) > max_tokens:
            pieces.append((a, last))
            a = None
        a = ws if a is None else a
        last = we
    if a is not None:
        pieces.append((a, last))
    return pieces


def chunk(text: str, cleaned: Cleaned, count_tokens: Callable[[str], int], max_tokens: int,
          segmenter: str = DEFAULT_SEGMENTER, count_each: Callable[[list[str]], list[int]] | None = None
          ) -> list[Passage]:
    """The passages of one cleaned article, in order. `count_each`, where the tokenizer
    has one: `count_tokens` of many texts in one call."""
    passages = []
    for para in join_fragments(text, paragraphs(cleaned)):
        for a, b in split_long(text, para.start, para.end, count_tokens, max_tokens, segmenter, count_each):
            passages.append(Passage(para.ordinal, a, b))
    return passages
