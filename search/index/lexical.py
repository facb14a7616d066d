"""BM25 over passages and whole documents, by bm25s (sparse matrices scored in numpy).

SQLite FTS5 calls its bm25() once per matching row, ~1.8 us each: a long query over 21k
passages cost 12 ms, more than encoding the query. bm25s precomputes every term's
per-document scores at build time, so a query is a sum of a few sparse rows (~0.2 ms).

Text is analysed the way FTS5's `porter unicode61 remove_diacritics 2` did, so rankings
keep their meaning: case-folded runs of letters and digits, diacritics removed, Porter
stems, minus the Lucene stop words. A written unit the tokenizer splits ("710,000",
"KN-23", "U.S.") also yields its joined form ("710000", "kn23") as one more term, so an
exact figure or name matches as written, the way a phrase query did.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import unicodedata
from pathlib import Path

import numpy as np

from search.errors import IndexCorrupt
from search.index import store
from search.ranked import ranking

# Lucene's default English stop set: words that match nearly every passage.
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with".split())
# What FTS5's unicode61 tokenizer keeps as a token: runs of letters and digits.
_TOKEN = re.compile(r"[^\W_]+")
# FTS5's bm25() parameters.
K1, B = 1.2, 0.75


@functools.lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("porter")


def _fold(text: str) -> str:
    """Case-fold and drop diacritics ("Zelenskyy’s Café" -> "zelenskyy’s cafe")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def terms(text: str) -> list[str]:
    """The BM25 terms of a text, in order (repeats kept: they are term frequencies)."""
    return _terms_of(_fold(text).split())


def _terms_of(units: list[str]) -> list[str]:
    """`terms` of text already folded and split at white space."""
    stem = _stemmer().stemWords
    out: list[str] = []
    for unit in units:
        tokens = _TOKEN.findall(unit)
        if len(tokens) > 1:
            out.append("".join(tokens))  # the unit as written, e.g. 710,000 -> 710000
        out.extend(s for s in stem([t for t in tokens if t not in STOP_WORDS]) if s)  # Porter stems "s" to ""
    return out


# Words that make a sentence a question, not what it asks about ("What did ... say",
# "How many ... could ..."): matched as terms, they favour passages that merely share the
# phrasing. Dropped from queries only; written in capitals ("WHO") they stay, as a name.
QUESTION_WORDS = frozenset(
    "what which who whom whose when where why how do does did done has have had would could should can might "
    "must shall am been being according".split())


def search_terms(query: str) -> tuple[str, ...]:
    """The BM25 terms of a query: `terms` without its question words (or their
    contractions: "Who's")."""
    units, folded = query.split(), _fold(query).split()
    if len(folded) != len(units):  # folding made or joined a space (rare): fold unit by unit
        folded = [_fold(unit) for unit in units]
    return tuple(_terms_of([low for unit, low in zip(units, folded)
                            if unit.isupper() or not _is_question_word(low)]))


def _is_question_word(folded_unit: str) -> bool:
    token = _TOKEN.search(folded_unit)
    return token is not None and token.group() in QUESTION_WORDS


def query_terms(text: str) -> set[str]:
    """The content words of a query, unstemmed, for word-overlap highlighting."""
    return {t for t in _TOKEN.findall(_fold(text)) if t not in STOP_WORDS}


NO_TERMS = "\x00"


class LexicalIndex:
    """A bm25s index whose row i is the i-th text given to `build`."""

    # The files bm25s's `BM25.save` writes (and `load` reads).
    ARRAYS = {"data": "data.csc.index.npy", "indices": "indices.csc.index.npy", "indptr": "indptr.csc.index.npy"}
    VOCAB = "vocab.index.json"
    PARAMS = "params.index.json"

    def __init__(self, matrix: dict, vocab: dict[str, int], retriever=None):
        self._matrix = matrix  # bm25s's term-by-row CSC arrays, and "num_docs"
        self._vocab = vocab  # term -> its column
        self._retriever = retriever  # the bm25s index, when built here (to save)

    @classmethod
    def build(cls, texts: list[str]) -> "LexicalIndex":
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each build at DEBUG level

        retriever = bm25s.BM25(k1=K1, b=B, method="robertson")
        corpus = [terms(t) for t in texts]
        if corpus and not any(corpus):
            # bm25s cannot index a corpus without a single term (symbols, stop words only:
            # an index left with such documents after an update); one term no query can
            # produce (queries are letter and digit runs) keeps it searchable, matching nothing
            corpus[0] = [NO_TERMS]
        retriever.index(corpus, show_progress=False)
        return cls(retriever.scores, retriever.vocab_dict, retriever)

    def save(self, directory: Path) -> list[Path]:
        """Write the index (numpy arrays and JSON, nothing pickled); the files written."""
        directory.mkdir(parents=True, exist_ok=True)
        self._retriever.save(str(directory), allow_pickle=False)
        return sorted(p for p in directory.iterdir() if p.is_file())

    @classmethod
    def load(cls, directory: Path) -> "LexicalIndex":
        """Read what `save` wrote, the arrays memory-mapped. Read here rather than by
        bm25s's `BM25.load`: importing bm25s brings scipy, 17 MB more in every service
        worker, and searching needs only these arrays (see `_scores`)."""
        params = json.loads((directory / cls.PARAMS).read_text(encoding="utf-8"))
        if params.get("method") != "robertson":  # `_scores` adds no non-occurrence part
            raise IndexCorrupt(f"{directory} holds a {params.get('method')!r} BM25 index, not robertson")
        # plain arrays over the mapped pages: each slice of an np.memmap builds another
        # memmap object, ~0.5 ms a query over the 40-odd slices a search takes
        matrix = {key: np.asarray(np.load(directory / name, mmap_mode="r", allow_pickle=False))
                  for key, name in cls.ARRAYS.items()}
        matrix["num_docs"] = params["num_docs"]
        return cls(matrix, json.loads((directory / cls.VOCAB).read_text(encoding="utf-8")))

    def search(self, query: str, depth: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the best `depth` texts, best first, ties by row; rows
        matching no query term, or false in `mask`, are left out."""
        return ranking(*self.best(query, depth, mask))

    def best(self, query: str, depth: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The rows `search` ranks and their scores, in row order. Fusion looks scores up
        by row and never needs them by score: this spares a search two sorts."""
        return self.best_of(search_terms(query), depth, mask)

    def best_of(self, query_terms: tuple[str, ...], depth: int,
                mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`best` for a query already analysed (`search_terms`): a search asks the
        passages' index and the articles' with the same terms."""
        vocab = self._vocab
        ids = list(dict.fromkeys(vocab[t] for t in query_terms if t in vocab))  # each term once
        empty = np.zeros(0, dtype=np.int64), np.zeros(0)
        if not ids:
            return empty
        scores = self._scores(ids)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        matched = np.flatnonzero(scores > 0)
        if not len(matched):
            return empty
        if len(matched) > depth:
            matched = np.sort(matched[np.argpartition(-scores[matched], depth - 1)[:depth]])
        return matched, scores[matched]

    def _scores(self, term_ids: list[int]) -> np.ndarray:
        """Every row's BM25 score for the terms: the sum of their precomputed rows in
        bm25s's term-by-row sparse matrix. Summed here with one bincount over the terms'
        postings (in float64) rather than bm25s's get_scores, which adds each term with
        np.add.at into a float32 array that is then converted: ~0.2 ms less a search at
        100k rows. Robertson BM25 scores nothing for an absent term, so no
        non-occurrence part is added (bm25s's BM25L and BM25+ would need it)."""
        matrix = self._matrix
        indptr, indices, data = matrix["indptr"], matrix["indices"], matrix["data"]
        rows = np.concatenate([indices[indptr[t]:indptr[t + 1]] for t in term_ids])
        weights = np.concatenate([data[indptr[t]:indptr[t + 1]] for t in term_ids])
        return np.bincount(rows, weights, minlength=matrix["num_docs"])


def write_lexical(conn, directory: Path, title_context: bool) -> list[str]:
    """BM25 indexes of the stored passages (as embedded) and of whole documents."""
    title = "CASE WHEN d.title IS NOT NULL AND d.title != '' THEN d.title || char(10) ELSE '' END"
    prefix = title if title_context else "''"
    passages = [text for (text,) in conn.execute(
        f"SELECT {prefix} || p.text "
        "FROM passages p JOIN documents d USING (doc_id) ORDER BY p.id")]
    written = LexicalIndex.build(passages).save(directory / store.PASSAGE_LEXICAL)
    written += LexicalIndex.build([text for (text,) in conn.execute(
        "SELECT coalesce(title || char(10), '') || text FROM documents ORDER BY rowid")]).save(
        directory / store.DOCUMENT_LEXICAL)
    return [str(p.relative_to(directory)) for p in written]
