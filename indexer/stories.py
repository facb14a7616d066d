"""Stories: the articles that report one event, grouped as they arrive.

An article is compared with the stories so far by its words: tf-idf over stemmed terms
(idf from the articles seen so far), as a unit vector of its KEPT_TERMS heaviest terms,
against each story's centroid (the sum of its members' vectors). Names, places and
numbers are what tell two stories of one kind apart (two celebrities' rehab stays), and
tf-idf weighs them; on ECB+ the passages' meaning vectors added nothing (their best weight
was 0). The article joins the most similar story when the cosine reaches THRESHOLD, and
starts a story otherwise: the number of stories is never given. An article is never moved
once placed, so a story id is stable.

The stories compared are found through an inverted list of the stories' terms, by the
article's rarest terms only (PROBE_TERMS), so placing an article costs what their short
lists hold, not the number of stories. Where the state lives is the caller's:
`MemoryStories` for a build (then written to the store), the index's own store tables for
an update (`StoredStories`, tables described in search/index/story_store.py).
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections import Counter
from typing import Protocol

from search.index.story_store import SCHEMA, has_stories

# Chosen on ECB+'s train split, five arrival orders (tools/stories_eval.py); reported on test.
THRESHOLD = 0.25
KEPT_TERMS = 128  # an article's heaviest terms: what its vector, and its story's centroid, keep
# How many times a name counts (names(): capitalised words within a sentence, numbers);
# train chose 2 of 0 to 4, with THRESHOLD 0.25 and KEPT_TERMS 128 (of 64 and 128).
NAME_WEIGHT = 2
# The stories compared with an article are the CANDIDATES that share most of its
# PROBE_TERMS heaviest terms (its rarest names and words: short lists), so that placing
# costs what those lists hold rather than the number of stories. On ECB+ train, probing 8,
# 16, 32 or all 64 kept terms gave the same grouping.
PROBE_TERMS = 8
CANDIDATES = 64
# story_df's row for the number of articles placed (no term is empty): summed across
# segments and merges like the terms' counts, deleted articles included, so that a merge
# leaves the next placement exactly as it would have been
PLACED = ""
# added to every idf (as scikit-learn's smooth idf adds 1): with few articles seen, the terms
# two of them share would otherwise weigh nothing
IDF_FLOOR = 1.0


class StoryState(Protocol):
    """What placing an article needs to know of the stories so far."""

    def articles(self) -> int: ...  # articles placed so far

    def frequencies(self, terms: set[str]) -> dict[str, int]: ...  # articles holding each term

    def candidates(self, probe: dict[str, float], limit: int) -> list[int]: ...  # the `limit` best by `probe`

    def dots(self, vector: dict[str, float], stories: list[int]) -> dict[int, float]: ...  # vector . centroid

    def norms(self, stories: list[int]) -> dict[int, float]: ...  # squared centroid lengths

    def record(self, doc_id: str, story: int, weights: dict[str, float], terms: set[str], norm2: float) -> None: ...

    def new_story(self) -> int: ...


def weights(terms: list[str], frequencies: dict[str, int], articles: int) -> dict[str, float]:
    """An article's unit tf-idf vector over its KEPT_TERMS heaviest terms (sublinear tf,
    idf over `articles` articles of which `frequencies[t]` hold t, this one included)."""
    counts = Counter(terms)
    raw = {t: (1 + math.log(c)) * (math.log((1 + articles) / (1 + frequencies.get(t, 0))) + IDF_FLOOR)
           for t, c in counts.items()}
    kept = sorted(((v, t) for t, v in raw.items() if v > 0), reverse=True)[:KEPT_TERMS]
    norm = math.sqrt(sum(v * v for v, _ in kept)) or 1.0
    return {t: v / norm for v, t in kept}


def assign(state: StoryState, doc_id: str, terms: list[str], threshold: float = THRESHOLD) -> int:
    """Place one article (its BM25 terms) in a story of `state`; returns the story's id."""
    distinct = set(terms)
    known = state.frequencies(distinct)
    frequencies = {t: known.get(t, 0) + 1 for t in distinct}
    vector = weights(terms, frequencies, state.articles() + 1)
    probe = {t: vector[t] for t in sorted(vector, key=vector.get, reverse=True)[:PROBE_TERMS]}
    dots = state.dots(vector, sorted(state.candidates(probe, CANDIDATES))) if vector else {}
    norms = state.norms(sorted(dots))
    best, score = None, -1.0
    for story in sorted(dots):
        s = dots[story] / max(math.sqrt(norms[story]), 1e-12)
        if s > score:
            best, score = story, s
    if best is None or score < threshold:
        best, norm2 = state.new_story(), 1.0
    else:
        norm2 = norms[best] + 2 * dots[best] + 1.0  # |c + v|^2, v a unit vector
    state.record(doc_id, best, vector, distinct, norm2)
    return best


class MemoryStories:
    """The stories' state in memory: a build's, before it is written to the store."""

    def __init__(self, first_story: int = 0):
        self.story_of: dict[str, int] = {}
        self.df: Counter = Counter()
        self.postings: dict[str, dict[int, float]] = {}  # term -> story -> centroid weight
        self.norm2: dict[int, float] = {}
        self.next_story = first_story

    def articles(self) -> int:
        return len(self.story_of)

    def frequencies(self, terms: set[str]) -> dict[str, int]:
        return {t: self.df[t] for t in terms if t in self.df}

    def candidates(self, probe: dict[str, float], limit: int) -> list[int]:
        return _best(self._partial(probe), limit)

    def _partial(self, probe: dict[str, float]) -> dict[int, float]:
        out: dict[int, float] = {}
        for t, v in probe.items():
            for story, w in self.postings.get(t, {}).items():
                out[story] = out.get(story, 0.0) + v * w
        return out

    def dots(self, vector: dict[str, float], stories: list[int]) -> dict[int, float]:
        out = dict.fromkeys(stories, 0.0)
        for t, v in vector.items():
            row = self.postings.get(t, {})
            # a common term's list holds most stories: look the few candidates up in it
            # instead, so that an article costs what it is compared with, not the archive
            pairs = ((story, row[story]) for story in stories if story in row) if len(row) > len(stories) \
                else ((story, w) for story, w in row.items() if story in out)
            for story, w in pairs:
                out[story] += v * w
        return out

    def norms(self, stories: list[int]) -> dict[int, float]:
        return {s: self.norm2[s] for s in stories}

    def record(self, doc_id: str, story: int, weights: dict[str, float], terms: set[str], norm2: float) -> None:
        self.story_of[doc_id] = story
        self.df.update(terms)
        for t, w in weights.items():
            row = self.postings.setdefault(t, {})
            row[story] = row.get(story, 0.0) + w
        self.norm2[story] = norm2

    def new_story(self) -> int:
        self.next_story += 1
        return self.next_story - 1


class StoredStories(MemoryStories):
    """The stories recorded in an index's stores (`parts`: their connections, in segment
    order), with the placements made since in memory until `place` records them."""

    def __init__(self, parts: list[sqlite3.Connection], next_story: int = 0):
        super().__init__(next_story)
        self._parts = [conn for conn in parts if has_stories(conn)]
        self._placed = sum(n for conn in self._parts
                           for (n,) in conn.execute("SELECT articles FROM story_df WHERE term = ?", (PLACED,)))

    def articles(self) -> int:
        return self._placed + super().articles()

    def frequencies(self, terms: set[str]) -> dict[str, int]:
        out = super().frequencies(terms)
        for term, n in self._each("SELECT term, articles FROM story_df WHERE term IN ({ids})", sorted(terms)):
            out[term] = out.get(term, 0) + n
        return out

    def candidates(self, probe: dict[str, float], limit: int) -> list[int]:
        partial = self._partial(probe)
        for conn in self._parts:
            for story, dot in _weighted(conn, probe, "SELECT st.story, SUM(st.weight * a.w) FROM a JOIN story_terms "
                                                     "st ON st.term = a.term GROUP BY st.story"):
                partial[story] = partial.get(story, 0.0) + dot
        return _best(partial, limit)

    def dots(self, vector: dict[str, float], stories: list[int]) -> dict[int, float]:
        out = super().dots(vector, stories)
        if not stories:
            return out
        sql = ("SELECT st.story, SUM(st.weight * a.w) FROM a JOIN story_terms st ON st.term = a.term "
               f"WHERE st.story IN ({','.join('?' * len(stories))}) GROUP BY st.story")
        for conn in self._parts:
            for story, dot in _weighted(conn, vector, sql, stories):
                out[story] += dot
        return out

    def norms(self, stories: list[int]) -> dict[int, float]:
        out = {s: self.norm2[s] for s in stories if s in self.norm2}
        for conn in reversed(self._parts):  # the latest recorded length
            wanted = [s for s in stories if s not in out]
            if not wanted:
                break
            out.update(_in(conn, "SELECT story, norm2 FROM story_norms WHERE story IN ({ids})", wanted))
        return out

    def _each(self, sql: str, values: list):
        for conn in self._parts:
            yield from _in(conn, sql, values)


def _best(scores: dict[int, float], limit: int) -> list[int]:
    return sorted(scores, key=lambda story: (-scores[story], story))[:limit]


def _weighted(conn: sqlite3.Connection, vector: dict[str, float], sql: str, params: list = ()) -> list[tuple]:
    """`sql` run with `a(term, w)` holding `vector` (at most KEPT_TERMS rows: inside
    SQLite's limit on bound parameters)."""
    values = ",".join(["(?, ?)"] * len(vector))
    flat = [x for item in vector.items() for x in item]
    return conn.execute(f"WITH a(term, w) AS (VALUES {values}) {sql}", (*flat, *params)).fetchall()


def _in(conn: sqlite3.Connection, sql: str, values: list) -> list[tuple]:
    out = []
    for start in range(0, len(values), 500):  # SQLite's limit on bound parameters
        chunk = values[start:start + 500]
        out += conn.execute(sql.format(ids=",".join("?" * len(chunk))), chunk).fetchall()
    return out


# A capitalised word that does not open a sentence, or a number: a name, a place, a date, a
# toll. Sentence openers are left out (every sentence has one, and most are not names).
_NAME = re.compile(r"(?<![.!?\"“:\n]\s)(?<![.!?\"“:\n])(?<!^)\b([A-Z][\w'’-]*|[0-9][0-9,.]*[0-9]|[0-9])", re.M)


def names(text: str) -> list[str]:
    """The names and numbers of `text` as terms of their own ("name:capaldi"), so that
    they count beside the words they also are: what tells two stories of one kind apart."""
    return ["name:" + m.group(1).lower() for m in _NAME.finditer(text)]


def article_terms(title: str | None, text: str) -> list[str]:
    """What an article is compared by: the BM25 terms of its title and text, and its
    names, each NAME_WEIGHT times."""
    from search.index.lexical import terms

    whole = f"{title or ''}\n{text}"
    return terms(whole) + names(whole) * NAME_WEIGHT


def place(conn: sqlite3.Connection, state: MemoryStories, progress: bool = False) -> None:
    """Place the articles of the store `conn` that have no story yet, in the order they
    were stored, in `state`'s stories, and record what that added in `conn`."""
    from tqdm import tqdm

    conn.executescript(SCHEMA)
    unplaced = conn.execute("SELECT doc_id, title, text FROM documents WHERE doc_id NOT IN "
                            "(SELECT doc_id FROM stories) ORDER BY rowid").fetchall()
    for doc_id, title, text in tqdm(unplaced, desc="stories", unit=" articles", disable=not progress):
        assign(state, doc_id, article_terms(title, text))
    conn.executemany("INSERT OR REPLACE INTO stories VALUES (?, ?)", state.story_of.items())
    conn.executemany("INSERT INTO story_terms VALUES (?, ?, ?) "
                     "ON CONFLICT (term, story) DO UPDATE SET weight = weight + excluded.weight",
                     [(t, story, w) for t, row in state.postings.items() for story, w in row.items()])
    conn.executemany("INSERT OR REPLACE INTO story_norms VALUES (?, ?)", state.norm2.items())
    conn.executemany("INSERT INTO story_df VALUES (?, ?) "
                     "ON CONFLICT (term) DO UPDATE SET articles = articles + excluded.articles",
                     [*state.df.items(), (PLACED, len(state.story_of))])
