"""BM25 over passages and whole documents (sparse matrices scored in numpy).

SQLite FTS5 calls its bm25() once per matching row, ~1.8 us each: a long query over 21k
passages cost 12 ms, more than encoding the query. Like bm25s (whose file layout and
scores these are), every term's per-row score is computed at build time, so a query is a
sum of a few sparse rows (~0.2 ms). The term counts are kept beside the scores: an update
analyses only its new texts and rescores the rest from their counts (`LexicalIndex.extended`).

Text is analysed the way FTS5's `porter unicode61 remove_diacritics 2` did, so rankings
keep their meaning: case-folded runs of letters and digits, diacritics removed, Porter
stems, minus the Lucene stop words. A written unit the tokenizer splits ("710,000",
"KN-23", "U.S.") also yields its joined form ("710000", "kn23") as one more term, so an
exact figure or name matches as written, the way a phrase query did.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from pathlib import Path

import numpy as np

from search.errors import IndexCorrupt
from search.index import arrays, store
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
    folded = text.casefold()
    if folded.isascii():
        return folded
    return unicodedata.normalize("NFKD", folded).translate(_COMBINING)


class _CombiningMarks(dict):
    """str.translate's table deleting combining characters, filled in as characters are
    met: one C pass over a text, where testing each character in Python cost most of an
    index build (and listing all 1.1M code points up front cost 0.6 s)."""

    def __missing__(self, code: int) -> int | None:
        self[code] = value = None if unicodedata.combining(chr(code)) else code
        return value


_COMBINING = _CombiningMarks()


# word -> its Porter stem: a corpus repeats a few thousand words, and a dict look-up is
# 20 times cheaper than the stemmer. Cleared when full, to bound its memory.
_STEM_CACHE: dict[str, str] = {}
_STEM_CACHE_MAX = 500_000


def _stems(words: list[str]) -> list[str]:
    cache = _STEM_CACHE
    new = [w for w in dict.fromkeys(words) if w not in cache]
    found = dict(zip(new, _stemmer().stemWords(new))) if new else {}
    if len(cache) + len(found) > _STEM_CACHE_MAX:
        cache.clear()
    cache.update(found)
    get = cache.get
    # (a word missing from both: another thread cleared the cache in between)
    return [found[w] if w in found else get(w) or _stemmer().stemWord(w) for w in words]


def terms(text: str) -> list[str]:
    """The BM25 terms of a text, in order (repeats kept: they are term frequencies)."""
    return _terms_of(_fold(text).split())


def _terms_of(units: list[str]) -> list[str]:
    """`terms` of text already folded and split at white space: each unit's joined form
    when the tokenizer splits it, then its tokens' Porter stems (one call to the stemmer
    for the whole text)."""
    slots: list[str | None] = []  # a joined form, or None where the next stem goes
    tokens: list[str] = []
    for unit in units:
        if unit.isalnum():  # one token: what _TOKEN matches is exactly str.isalnum's characters
            parts = (unit,)
        else:
            parts = _TOKEN.findall(unit)
            if len(parts) > 1:
                slots.append("".join(parts))  # the unit as written, e.g. 710,000 -> 710000
        for token in parts:
            if token not in STOP_WORDS:
                slots.append(None)
                tokens.append(token)
    stems = iter(_stems(tokens))
    out = []
    for slot in slots:
        if slot is None:
            slot = next(stems)
            if not slot:  # Porter stems "s" to ""
                continue
        out.append(slot)
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




class LexicalIndex:
    """A BM25 index whose row i is the i-th text given to `build`."""

    # The files bm25s's `BM25.save` writes (and `load` reads).
    ARRAYS = {"data": "data.csc.index.npy", "indices": "indices.csc.index.npy", "indptr": "indptr.csc.index.npy"}
    VOCAB = "vocab.index.json"
    PARAMS = "params.index.json"
    # Each posting's term count, and each row's length in terms: what the scores are made of.
    COUNTS = "counts.index.npy"
    LENGTHS = "lengths.index.npy"

    def __init__(self, matrix: dict, vocab: dict[str, int]):
        self._matrix = matrix  # the term-by-row CSC arrays of BM25 scores, and "num_docs"
        self._vocab = vocab  # term -> its column
        self._postings: Postings | None = None  # what the scores were made of, when built here (to save)

    @classmethod
    def build(cls, texts: list[str]) -> "LexicalIndex":
        """The index of `texts`, row i the i-th."""
        return cls._from(Postings.of([terms(t) for t in texts]))

    @classmethod
    def extended(cls, postings: "Postings | None", kept: np.ndarray, texts: list[str]) -> "LexicalIndex | None":
        """An index of the rows `kept` of `postings` (an earlier index's term counts,
        `Postings.read`), in that order, then of `texts`: what a fresh build of those texts
        gives, for the cost of analysing `texts` only. None without postings (an index
        written before they were kept): build it afresh."""
        if postings is None:
            return None
        return cls._from(postings.taken(kept).joined([terms(t) for t in texts]))

    @classmethod
    def _from(cls, postings: "Postings") -> "LexicalIndex":
        index = cls(postings.scored(), postings.vocab)
        index._postings = postings
        return index

    def save(self, directory: Path) -> list[Path]:
        """Write the index (numpy arrays and JSON, nothing pickled: the scores in the
        files and layout bm25s's `BM25.save` writes, and the term counts that let an
        update extend it); the files written."""
        directory.mkdir(parents=True, exist_ok=True)
        matrix, postings = self._matrix, self._postings
        for key, name in self.ARRAYS.items():
            np.save(directory / name, matrix[key], allow_pickle=False)
        np.save(directory / self.COUNTS, postings.counts, allow_pickle=False)
        np.save(directory / self.LENGTHS, postings.lengths, allow_pickle=False)
        (directory / self.VOCAB).write_text(json.dumps(self._vocab, ensure_ascii=False), encoding="utf-8")
        params = {"k1": K1, "b": B, "method": "robertson", "idf_method": "robertson", "dtype": "float32",
                  "int_dtype": "int32", "num_docs": matrix["num_docs"]}
        (directory / self.PARAMS).write_text(json.dumps(params, indent=4), encoding="utf-8")
        return sorted(p for p in directory.iterdir() if p.is_file())

    @classmethod
    def load(cls, directory: Path) -> "LexicalIndex":
        """Read what `save` wrote, the postings read where a search asks (arrays.Rows).
        Read here rather than by bm25s's `BM25.load`: importing bm25s brings scipy, 17 MB
        more in every service worker, and searching needs only these arrays (`summed`)."""
        params = json.loads((directory / cls.PARAMS).read_text(encoding="utf-8"))
        if params.get("method") != "robertson":  # `best_rows` adds no non-occurrence part
            raise IndexCorrupt(f"{directory} holds a {params.get('method')!r} BM25 index, not robertson")
        # the postings read with pread, a term's at a time (arrays.Rows: not mapped into
        # every worker); the term pointers in memory
        matrix = {"indptr": arrays.load(directory / cls.ARRAYS["indptr"]),
                  **{key: arrays.Rows(directory / cls.ARRAYS[key]) for key in ("indices", "data")}}
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
        held, weights, _ = self._query_postings(query_terms)
        if not len(held):
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        return summed(held, weights, self._matrix["num_docs"], depth, mask)

    def scores_of(self, query_terms: tuple[str, ...], rows: np.ndarray) -> np.ndarray:
        """The scores `best_of` gives `rows` (sorted, distinct), for any number of rows and
        whatever their rank: each row looked up in its terms' postings instead of every
        posting summed (fusion asks this of the candidates' articles only)."""
        held, weights, ends = self._query_postings(query_terms)
        return scores_at(list(zip(np.split(held, ends), np.split(weights, ends))), rows)

    def _query_postings(self, query_terms: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The postings of the query's terms (each term once, in the query's order), one
        term's after the other: their rows, their scores, and where each term's but the
        first begins."""
        vocab, matrix = self._vocab, self._matrix
        ids = list(dict.fromkeys(vocab[t] for t in query_terms if t in vocab))
        if not ids:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        spans = [(int(matrix["indptr"][t]), int(matrix["indptr"][t + 1])) for t in ids]
        return (_spans(matrix["indices"], spans), _spans(matrix["data"], spans),
                np.cumsum([b - a for a, b in spans])[:-1])

    @classmethod
    def load_counts(cls, directory: Path) -> tuple[dict, dict[str, int]]:
        """The term counts of a saved index: its CSC `indptr` (in memory) and `indices`,
        each posting's `counts` (read where asked, arrays.Rows), each row's `lengths`
        (memory-mapped: looked up row by row); and its vocabulary."""
        counts = {"indptr": arrays.load(directory / cls.ARRAYS["indptr"]),
                  "indices": arrays.Rows(directory / cls.ARRAYS["indices"]),
                  "counts": arrays.Rows(directory / cls.COUNTS),
                  "lengths": np.asarray(arrays.load(directory / cls.LENGTHS, mmap=True))}
        return counts, json.loads((directory / cls.VOCAB).read_text(encoding="utf-8"))


def best_rows(lists: list[tuple[np.ndarray, np.ndarray]], rows: int, depth: int,
              mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`top_rows` of the BM25 scores summed from `lists` (each query term's postings: its
    rows and its score in each) over `rows` rows, in float64 (bm25s's get_scores adds
    each term into float32: rounded). Robertson BM25 scores nothing for an absent term, so
    no non-occurrence part is added (bm25s's BM25L and BM25+ would need it)."""
    if not lists:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return summed(np.concatenate([r for r, _ in lists]), np.concatenate([w for _, w in lists]), rows, depth, mask)


def summed(held: np.ndarray, weights: np.ndarray, rows: int, depth: int,
           mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`top_rows` of the sums of `weights` by row (`held`: each posting's row), added in
    the postings' order. np.add.at (unbuffered since NumPy 1.25) takes the rows as they
    are stored; np.bincount, the same sums, would first copy every posting's row to int64."""
    scores = np.zeros(rows)
    np.add.at(scores, held, weights.astype(np.float64, copy=False))
    return top_rows(scores, depth, mask)


def scores_at(lists: list[tuple[np.ndarray, np.ndarray]], rows: np.ndarray) -> np.ndarray:
    """The BM25 scores of `rows` (sorted, distinct) summed from `lists` (each query term's
    postings, rows in order): `summed`'s sums for those rows, added in the same order."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.zeros(len(rows))
    for held, weights in lists:
        if not len(held):
            continue
        at = np.searchsorted(held, rows.astype(held.dtype, copy=False))
        inside = np.flatnonzero(at < len(held))
        hit = inside[held[at[inside]] == rows[inside]]
        out[hit] += weights[at[hit]]
    return out


def _spans(array, spans: list[tuple[int, int]]) -> np.ndarray:
    """The items of each span of a 1-d array (in memory, or read from its file), one after
    the other."""
    if isinstance(array, arrays.Rows):
        return array.spans(spans)
    return np.concatenate([array[a:b] for a, b in spans])


def top_rows(scores: np.ndarray, depth: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The best `depth` rows with a score above 0 (and true in `mask`), in row order, and
    their scores; of the rows tied at the cut, the first (so that the same scores keep the
    same rows, however the index is segmented)."""
    if mask is not None:
        scores = np.where(mask, scores, 0.0)
    floor = 0.0
    if len(scores) > 64 * depth:
        # the cut estimated from a sample, so that the rows kept to choose among are few; a
        # floor that keeps fewer than `depth` rows is dropped, so the answer stays exact
        sample = scores[::max(1, len(scores) // (16 * depth))]
        rank = len(sample) * 3 * depth // len(scores)  # the sample's rank three times as deep as the cut
        sample = sample[sample > 0]
        if rank < len(sample):
            floor = float(np.partition(sample, len(sample) - 1 - rank)[len(sample) - 1 - rank])
    # rows tied at the floor are kept (they may make the cut): many texts share their score
    # (copies, short passages with one matching word), and a strict floor dropped a
    # quarter of the bench's questions at a million passages to the slow path below
    matched = np.flatnonzero(scores >= floor) if floor > 0 else np.flatnonzero(scores > 0)
    if floor > 0 and len(matched) < depth:
        matched = np.flatnonzero(scores > 0)
    if len(matched) > depth:
        cut = np.partition(scores[matched], len(matched) - depth)[len(matched) - depth]
        above = matched[scores[matched] > cut]
        tied = matched[scores[matched] == cut][:depth - len(above)]
        matched = np.sort(np.concatenate((above, tied)))
    return matched, scores[matched]


def idf(rows: int, df):
    """Robertson's IDF as bm25s computes it, log(max(1, (N - df + 0.5) / (df + 0.5))): zero,
    not negative, for a term in over half the rows."""
    return np.log(np.maximum(1.0, (rows - df + 0.5) / (df + 0.5)))


class Postings:
    """Term counts by row: (row, column, count) triples sorted by column then row, each
    row's length in terms, and the vocabulary (term -> column)."""

    def __init__(self, rows: np.ndarray, columns: np.ndarray, counts: np.ndarray, lengths: np.ndarray,
                 vocab: dict[str, int]):
        self.rows, self.columns, self.counts, self.lengths, self.vocab = rows, columns, counts, lengths, vocab

    @classmethod
    def of(cls, corpus: list[list[str]], vocab: dict[str, int] | None = None, first_row: int = 0) -> "Postings":
        """The postings of analysed texts (`terms`), rows numbered from `first_row`;
        new terms are added to `vocab`."""
        vocab = {} if vocab is None else vocab
        lengths = np.fromiter(map(len, corpus), dtype=np.int64, count=len(corpus))
        ids = np.fromiter((vocab.setdefault(t, len(vocab)) for text in corpus for t in text), dtype=np.int64,
                          count=int(lengths.sum()))
        end = first_row + len(corpus)
        rows = np.repeat(np.arange(first_row, end, dtype=np.int64), lengths)
        keys, counts = np.unique(ids * end + rows, return_counts=True)  # sorted by column, then row
        columns, rows = np.divmod(keys, end) if len(keys) else (keys, keys)
        return cls(rows, columns, counts.astype(np.uint32), lengths, vocab)

    @classmethod
    def read(cls, directory: Path) -> "Postings | None":
        """The postings saved beside an index's scores; None for an index saved without them."""
        counts_file, lengths_file = directory / LexicalIndex.COUNTS, directory / LexicalIndex.LENGTHS
        if not (counts_file.exists() and lengths_file.exists()):
            return None
        indptr = arrays.load(directory / LexicalIndex.ARRAYS["indptr"])
        rows = arrays.load(directory / LexicalIndex.ARRAYS["indices"]).astype(np.int64)
        columns = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
        vocab = json.loads((directory / LexicalIndex.VOCAB).read_text(encoding="utf-8"))
        return cls(rows, columns, arrays.load(counts_file),
                   arrays.load(lengths_file).astype(np.int64), vocab)

    def taken(self, kept: np.ndarray) -> "Postings":
        """Rows `kept` only, renumbered 0.. in that order; terms no kept row holds leave the vocabulary."""
        position = np.full(len(self.lengths), -1, dtype=np.int64)
        position[np.asarray(kept, dtype=np.int64)] = np.arange(len(kept))
        keep = position[self.rows] >= 0
        rows, columns, counts = position[self.rows[keep]], self.columns[keep], self.counts[keep]
        used = np.unique(columns)
        renumber = np.full(max(len(self.vocab), 1), -1, dtype=np.int64)
        renumber[used] = np.arange(len(used))
        terms_by_column = {column: term for term, column in self.vocab.items()}
        vocab = {terms_by_column[int(c)]: i for i, c in enumerate(used.tolist())}
        columns = renumber[columns]
        if len(kept) > 1 and (np.diff(kept) < 0).any():  # reordered: sort each column's rows again
            order = np.lexsort((rows, columns))
            rows, columns, counts = rows[order], columns[order], counts[order]
        return Postings(rows, columns, counts, self.lengths[kept], vocab)

    def joined(self, corpus: list[list[str]]) -> "Postings":
        """These rows, then the rows of analysed texts `corpus`."""
        vocab = dict(self.vocab)
        more = Postings.of(corpus, vocab, first_row=len(self.lengths))
        rows = np.concatenate((self.rows, more.rows))
        columns = np.concatenate((self.columns, more.columns))
        # two runs sorted by column then row, every new row after the old: a stable sort by
        # column merges them (timsort: one pass over two runs)
        order = np.argsort(columns, kind="stable")
        return Postings(rows[order], columns[order], np.concatenate((self.counts, more.counts))[order],
                        np.concatenate((self.lengths, more.lengths)), vocab)

    def document_frequencies(self) -> np.ndarray:
        """column -> how many rows hold its term."""
        return np.bincount(self.columns, minlength=len(self.vocab))

    def term_frequencies(self) -> tuple[np.ndarray, np.ndarray]:
        """Each posting's tf and its row's length normalisation k1 (1 - b + b dl / avgdl):
        BM25's term part is tf / (tf + norm)."""
        n = len(self.lengths)
        average = float(self.lengths.mean()) if n and self.lengths.any() else 1.0
        return self.counts.astype(np.float64), K1 * ((1 - B) + B * self.lengths[self.rows] / average)

    def scored(self) -> dict:
        """The CSC arrays of Robertson BM25 scores, as bm25s computes them: `idf` times
        tf / (tf + k1 (1 - b + b dl / avgdl))."""
        n = len(self.lengths)
        df = self.document_frequencies()
        tf, norm = self.term_frequencies()
        data = (idf(n, df)[self.columns] * tf / (norm + tf)).astype(np.float32)
        indptr = np.concatenate(([0], np.cumsum(df))).astype(np.int64)
        return {"data": data, "indices": self.rows.astype(np.int32), "indptr": indptr, "num_docs": n}


def _texts(conn, part: str, title_context: bool, first: int = 0) -> list[str]:
    """The texts BM25 indexes for `part`, from passage id (or document row) `first` on."""
    if part == store.PASSAGE_LEXICAL:
        title = "CASE WHEN d.title IS NOT NULL AND d.title != '' THEN d.title || char(10) ELSE '' END"
        prefix = title if title_context else "''"
        sql = f"SELECT {prefix} || p.text FROM passages p JOIN documents d USING (doc_id) WHERE p.id >= ? ORDER BY p.id"
    else:
        sql = "SELECT coalesce(title || char(10), '') || text FROM documents WHERE rowid > ? ORDER BY rowid"
    return [text for (text,) in conn.execute(sql, (first,))]


def write_lexical(conn, directory: Path, title_context: bool, previous=None,
                  kept_passages: np.ndarray = (), kept_documents: np.ndarray = ()) -> list[str]:
    """BM25 indexes of the stored passages (as embedded) and of whole documents, over a
    store whose ids and rows run densely from 0.

    An update passes `previous` (part -> the previous generation's `Postings`, or None)
    and which of its passage ids and document rows the new store keeps, in their new
    order (the rows after them are new): only the new texts are analysed then."""
    written = []
    for part, kept in ((store.PASSAGE_LEXICAL, kept_passages), (store.DOCUMENT_LEXICAL, kept_documents)):
        kept = np.asarray(kept, dtype=np.int64)
        index = None
        if previous is not None:
            index = LexicalIndex.extended(previous(part), kept, _texts(conn, part, title_context, len(kept)))
        if index is None:
            index = LexicalIndex.build(_texts(conn, part, title_context))
        written += index.save(directory / part)
    return [str(p.relative_to(directory)) for p in written]


def write_segment_lexical(conn, directory: Path, title_context: bool, first_passage: int,
                          first_document: int) -> list[str]:
    """BM25 term counts of a new segment: the passages from id `first_passage` on and the
    documents from row `first_document` on, numbered from 0 in the segment."""
    written = []
    for part, first in ((store.PASSAGE_LEXICAL, first_passage), (store.DOCUMENT_LEXICAL, first_document)):
        written += LexicalIndex.build(_texts(conn, part, title_context, first)).save(directory / part)
    return [str(p.relative_to(directory)) for p in written]
