"""Prompt-ready context: a search's passages as numbered text a chatbot can paste into a
model's prompt and cite by number, within a character budget.

    [1] The total number of Russian casualties is now estimated at 710,000 ...
    Source: "North Korean dictator ..." · 000_c7708b97d51473e9.txt · paragraph 7 · 2024-11-20

Each entry is a whole passage, or its leading whole sentences when the whole would not
fit: never cut mid-sentence. `sources[n-1]` maps `[n]` to the exact span of its document
(`text[start:end]` of `GET /documents/<doc_id>`).
"""

from __future__ import annotations

DEFAULT_MAX_CHARS = 4000
MAX_CHARS = 100_000


def source_line(citation) -> str:
    parts = [f"“{citation.title}”" if citation.title else None, citation.source,
             f"paragraph {citation.paragraph}", citation.author, citation.published]
    return "Source: " + " · ".join(p for p in parts if p)


def build(hits, sentence_spans, max_chars: int) -> tuple[str, list[dict]]:
    """The context text and its sources.

    Args:
        hits: search results, best first.
        sentence_spans: for each hit, its passage's sentences as (start, end) offsets in
            the document, in order.
        max_chars: the length the text may not exceed.
    """
    entries, sources, used = [], [], 0
    for hit, spans in zip(hits, sentence_spans):
        n = len(entries) + 1
        citation = hit.citations[0]
        tail = "\n" + source_line(citation)
        separator = 2 if entries else 0
        room = max_chars - used - separator - len(f"[{n}] ") - len(tail)
        text, end = _fitting(hit.text, citation.start, spans, room)
        if text is None:
            break
        entry = f"[{n}] {text}{tail}"
        entries.append(entry)
        used += separator + len(entry)
        sources.append({"n": n, "doc_id": citation.doc_id, "title": citation.title, "source": citation.source,
                        "paragraph": citation.paragraph, "start": citation.start, "end": end,
                        "published": citation.published, "author": citation.author, "score": hit.score,
                        "complete": end == citation.end,
                        "also": [{"doc_id": c.doc_id, "source": c.source, "paragraph": c.paragraph}
                                 for c in hit.citations[1:]]})
    return "\n\n".join(entries), sources


def _fitting(text: str, start: int, spans: list[tuple[int, int]], room: int) -> tuple[str | None, int]:
    """The passage, or its leading whole sentences, within `room` characters, and the
    document offset where that text ends; (None, start) if not even one sentence fits."""
    if len(text) <= room:
        return text, start + len(text)
    best = None
    for _, end in spans:
        if end - start > room:
            break
        best = end
    if best is None:
        return None, start
    return text[:best - start], best
