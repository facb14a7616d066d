"""What a search returns: ranked `Hit`s, each with the `Citation`s of every source that
says it (HTTP, `ask`, MCP and Python callers serialise the same dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field

from search.retrieval.highlight import Highlight


@dataclass(frozen=True)
class Citation:
    doc_id: str
    title: str | None
    source: str  # file name, or the article's URL when it has one
    paragraph: int  # 1-based paragraph ordinal in the cleaned article
    start: int  # the document's original text[start:end] is the passage
    end: int
    published: str | None = None  # as the source dated it
    author: str | None = None


@dataclass(frozen=True)
class Hit:
    rank: int
    # dense: cosine similarity (mixed with the best sentence's); hybrid and lexical: the
    # fused score (search.retrieval.fusion.fuse) scaled to 0..1 over the candidates, the best 1
    score: float
    text: str
    # every source that says this, best first (one unless near-duplicates were collapsed)
    citations: list[Citation] = field(default_factory=list)
    highlight: Highlight | None = None  # the sentence that best answers the query
    # group=article: the article's other passages that answer, best first (else None)
    more: list[dict] | None = None
    story: int | None = None  # the story its article is in (None: the index records none)

    def to_dict(self) -> dict:
        # what dataclasses.asdict gives, without its deep copy of every value (0.85 ms a
        # response of 5 hits: the fields are flat dataclasses of str and int)
        out = {"rank": self.rank, "score": self.score, "text": self.text,
               "citations": [dict(vars(c)) for c in self.citations],
               "highlight": dict(vars(self.highlight)) if self.highlight is not None else None,
               "story": self.story}
        if self.more is not None:
            out["more"] = self.more
        return out
