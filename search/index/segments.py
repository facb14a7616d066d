"""A generation as segments: an update writes what it adds, not the index again.

A generation's own top-level files (vectors.faiss, sentences.npy, lexical/) are its
first segment, the base, as every build writes it. An update adds one more segment
under `segments/sNNNNNN/` holding only the new passages: their vectors, sentence vectors
and BM25 term counts, ids continuing where the last segment ended. The segments of the
previous generation are carried over as hard links (the same files, never rewritten),
and the passages an update removes or replaces are listed in `deleted.npy` (passage ids)
and `deleted_documents.npy` (document rows) instead of being cut out of them. Each
segment has its own store.sqlite too (search/index/segment_store.py).

Ids are never reused until a merge (indexer/update.py) renumbers everything into one
base again. Scores do not depend on the segmenting: BM25 is scored at query time from
every segment's term counts with the corpus-wide statistics of what is live (document
frequencies, average length), and the dense search spans every segment.

The manifest records the layout (`segments`, `next`); a manifest without it (every build,
and every index written before segments) is one base segment and nothing deleted.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.index import arrays, store
from search.index.yielding import give_way

DIRECTORY = "segments"
# Passages of the segments beside the base that a searcher holds as one flat index in
# memory (~1.5 KB each) rather than searching each segment's file.
IN_MEMORY_DELTAS = 20_000
DELETED = "deleted.npy"  # passage ids removed since their segment was written
DELETED_DOCUMENTS = "deleted_documents.npy"  # document rows (rowid - 1) likewise
OWN_STORES = "segment_stores"  # the manifest's mark of segments with stores of their own


@dataclass(frozen=True)
class Segment:
    name: str  # "" for the generation's own files (the base), else "segments/sNNNNNN"
    passages: tuple[int, int]  # [first, end) passage ids
    sentences: tuple[int, int]  # [first, end) sentence ids
    documents: tuple[int, int]  # [first, end) document rows (rowid - 1)

    @property
    def size(self) -> int:
        """How many passage ids it spans (its deleted passages included)."""
        return self.passages[1] - self.passages[0]

    def path(self, directory: Path) -> Path:
        return Path(directory) / self.name if self.name else Path(directory)

    def record(self) -> dict:
        return {"name": self.name, "passages": list(self.passages), "sentences": list(self.sentences),
                "documents": list(self.documents)}


@dataclass(frozen=True)
class Layout:
    segments: tuple[Segment, ...]
    deleted: np.ndarray  # passage ids
    deleted_documents: np.ndarray  # document rows
    # each segment has its own store (else one store.sqlite holds every live row: how the
    # first segmented generations were written, read as they are, merged by their next update)
    own_stores: bool = True

    @classmethod
    def of(cls, manifest: dict, directory: Path) -> "Layout":
        counts = manifest["counts"]
        if "segments" not in manifest:
            sentences = counts.get("sentences")
            if sentences is None:  # an older manifest: the sentence vectors say how many
                from search.index.sentence_vectors import SentenceVectors

                vectors = SentenceVectors.open(directory)
                sentences = len(vectors) if vectors is not None else 0
            base = Segment("", (0, counts["passages"]), (0, sentences), (0, counts["documents"]))
            return cls((base,), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        segments = tuple(Segment(s["name"], tuple(s["passages"]), tuple(s["sentences"]), tuple(s["documents"]))
                         for s in manifest["segments"])
        return cls(segments, _ids(directory / DELETED), _ids(directory / DELETED_DOCUMENTS),
                   bool(manifest.get(OWN_STORES)))

    @property
    def simple(self) -> bool:
        """One segment and nothing deleted: what a build writes, read as it always was."""
        return len(self.segments) == 1 and not len(self.deleted) and not len(self.deleted_documents)

    @property
    def passage_capacity(self) -> int:
        return self.segments[-1].passages[1]

    @property
    def sentence_capacity(self) -> int:
        return self.segments[-1].sentences[1]

    @property
    def document_capacity(self) -> int:
        return self.segments[-1].documents[1]

    def live(self) -> np.ndarray:
        """A mask over passage ids: True for the passages that are live."""
        mask = np.ones(self.passage_capacity, dtype=bool)
        mask[self.deleted] = False
        return mask

    def live_documents(self) -> np.ndarray:
        mask = np.ones(self.document_capacity, dtype=bool)
        mask[self.deleted_documents] = False
        return mask

    def record(self) -> dict:
        """The manifest's part of this layout."""
        return {"segments": [s.record() for s in self.segments], OWN_STORES: self.own_stores}


def _ids(path: Path) -> np.ndarray:
    return arrays.load(path).astype(np.int64) if path.exists() else np.zeros(0, dtype=np.int64)


def save_deleted(directory: Path, deleted: np.ndarray, deleted_documents: np.ndarray) -> list[str]:
    np.save(directory / DELETED, np.unique(np.asarray(deleted, dtype=np.int64)), allow_pickle=False)
    np.save(directory / DELETED_DOCUMENTS, np.unique(np.asarray(deleted_documents, dtype=np.int64)),
            allow_pickle=False)
    return [DELETED, DELETED_DOCUMENTS]


# ---- readers over all segments -------------------------------------------------------------

class SegmentedVectors:
    """The passage vectors of every segment (faiss stores whose ids are global), as one store."""

    def __init__(self, parts: list, layout: Layout, filtered: bool = False):
        self._parts = parts  # a FaissStore per segment, in id order
        # always ask a part for the live ids only (a Milvus collection shared with later
        # generations holds ids this one does not know)
        self._filtered = filtered
        self._ranges = [s.passages for s in layout.segments]
        self._live = layout.live()
        self._deleted_in = [bool(len(layout.deleted) and (~self._live[s.passages[0]:s.passages[1]]).any())
                            for s in layout.segments]
        self._count = int(self._live.sum())
        self.index = getattr(parts[0], "index", None)  # the base's faiss index, for what asks of its kind
        self.in_memory = None  # (segments, faiss index) of the segments held as one flat index
        self.coded: dict = {}  # segment -> its store, of those coded in the base's clusters

    def search(self, vectors, k, allowed=None):
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        mask = self._live if allowed is None else (np.asarray(allowed, dtype=bool) & self._live)
        filtered = self._filtered or allowed is not None
        if self.in_memory is not None and not filtered:
            return self._with_above(vectors, k)
        return self._merged(len(self._parts), vectors, k, mask, filtered)

    def _merged(self, count: int, vectors, k, mask, filtered: bool):
        """The best `k` of the first `count` parts, each part's best k merged (a tie to the
        earlier part)."""
        found = [self._search_part(part, vectors, k, mask, filtered, deleted, first, end)
                 for part, deleted, (first, end) in zip(self._parts[:count], self._deleted_in, self._ranges)]
        scores = np.concatenate([s for s, _ in found], axis=1)
        ids = np.concatenate([i for _, i in found], axis=1)
        scores = np.where(ids >= 0, scores, -np.inf)
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        top_scores, top_ids = np.take_along_axis(scores, best, 1), np.take_along_axis(ids, best, 1)
        top_ids[~np.isfinite(top_scores)] = -1
        return np.where(top_ids >= 0, top_scores, 0).astype(np.float32), top_ids

    def _with_above(self, vectors, k: int):
        """The best `k` of the parts before the in-memory segments, with the in-memory
        segments' passages that enter them put in place: what sorting all of them together
        gives (an earlier part's passage first on a tie), for the cost of the few that
        enter. Every question asks this under ingestion."""
        deltas = self._parts[-1]
        if len(self._parts) == 2:
            (first, end), deleted = self._ranges[0], self._deleted_in[0]
            scores, ids = self._search_part(self._parts[0], vectors, k, self._live, False, deleted, first, end)
        else:
            scores, ids = self._merged(len(self._parts) - 1, vectors, k, self._live, False)
        out_scores = np.zeros((len(vectors), k), dtype=np.float32)
        out_ids = np.full((len(vectors), k), -1, dtype=np.int64)
        for q, (here, at) in enumerate(self._above(deltas, vectors, scores, ids, k)):
            held = ids[q] >= 0
            got_scores, got_ids = scores[q][held], ids[q][held]
            if len(here):  # (here: best first; got: faiss's order, best first)
                at_place = np.searchsorted(-got_scores, -here, side="right")
                got_scores, got_ids = np.insert(got_scores, at_place, here), np.insert(got_ids, at_place, at)
            n = min(k, len(got_ids))
            out_scores[q, :n], out_ids[q, :n] = got_scores[:n], got_ids[:n]
        return out_scores, out_ids

    def _above(self, part, vectors, scores: np.ndarray, ids: np.ndarray, k: int) -> list:
        """For each query, the in-memory segments' live passages that would enter the base's
        best `k` (`scores`, `ids`): those scoring above its k-th (all of them where it found
        fewer), best first and a tie to the higher id, as faiss orders. Under steady
        ingestion they are a few thousand rows searched by every question; a top-k search
        of them to the full depth (1,000), merged with the base's, added a fifth to the
        base's own search."""
        floor = np.full(len(vectors), -np.inf)
        for q in range(len(vectors)):
            valid = scores[q][ids[q] >= 0]  # (best first; a deleted passage is -1)
            if len(valid) >= k:
                floor[q] = valid[k - 1]
        lims, distances, labels = part.above(vectors, float(floor.min()))
        rows = []
        for q in range(len(vectors)):
            here, at = distances[lims[q]:lims[q + 1]], labels[lims[q]:lims[q + 1]]
            keep = (here > floor[q]) & self._live[at]
            here, at = here[keep], at[keep]
            order = np.lexsort((-at, -here))
            rows.append((here[order], at[order]))
        return rows

    def _search_part(self, part, vectors, k, mask, filtered: bool, deleted: bool, first: int, end: int):
        """One segment's best k allowed passages. A few deletions: k more than them asked for
        and the deleted dropped (faiss's selector slows a flat scan down several times)."""
        if filtered:
            return part.search(vectors, k, mask)
        if not deleted:
            return part.search(vectors, k)
        gone = int(end - first - np.count_nonzero(self._live[first:end]))
        if gone > 4 * k:
            return part.search(vectors, k, mask)
        scores, ids = part.search(vectors, k + gone)
        dead = (ids >= 0) & ~self._live[np.maximum(ids, 0)]
        ids = np.where(dead, -1, ids)
        return np.where(dead, -np.inf, scores), ids

    def scores(self, vector, ids):
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros(len(ids), dtype=np.float32)
        for part, (first, end) in zip(self._parts, self._ranges):
            here = (ids >= first) & (ids < end)
            if here.any():
                out[here] = part.scores(vector, ids[here])
        return out

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of passages `ids`, in that order."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(self._parts) == 1:
            return self._parts[0].vectors(ids)
        out = np.zeros((len(ids), self._parts[0].index.d), dtype=np.float32)
        for part, (first, end) in zip(self._parts, self._ranges):
            here = (ids >= first) & (ids < end)
            if here.any():
                out[here] = part.vectors(ids[here])
        return out

    def count(self) -> int:
        return self._count

    def describe(self) -> dict:
        return {**self._parts[0].describe(), "segments": len(self._parts)}


class SegmentedSentences:
    """The sentence vectors of every segment as one array of rows by global sentence id."""

    def __init__(self, parts: list, layout: Layout):
        self._parts = parts
        self.segments = layout.segments
        self._starts = np.array([s.sentences[0] for s in layout.segments], dtype=np.int64)
        self._capacity = layout.sentence_capacity

    def __len__(self) -> int:
        return self._capacity

    @property
    def dimension(self) -> int:
        return self._parts[0].dimension

    def _route(self, index):
        ids = (np.arange(*index.indices(self._capacity)) if isinstance(index, slice)
               else np.asarray(index, dtype=np.int64))
        part = np.searchsorted(self._starts, ids, side="right") - 1
        return ids, part

    def _gather(self, index, call, width: int | None):
        ids, part = self._route(index)
        first = int(part[0]) if len(part) else 0
        if len(part) and (part == first).all():  # the usual case: one segment holds them all
            return call(self._parts[first], ids - self._starts[first])
        out = np.zeros((len(ids), width) if width else len(ids), dtype=np.float32)
        for p in np.unique(part).tolist():
            here = part == p
            out[here] = call(self._parts[p], ids[here] - self._starts[p])
        return out

    def rows(self, index) -> np.ndarray:
        return self._gather(index, lambda part, local: part.rows(local), self.dimension)

    def scores(self, index, query) -> np.ndarray:
        return self._gather(index, lambda part, local: part.scores(local, query), None)

    def quantized(self, index) -> tuple[np.ndarray, np.ndarray]:
        ids, part = self._route(index)
        codes = np.zeros((len(ids), self.dimension), dtype=np.int8)
        scales = np.zeros(len(ids), dtype=np.float32)
        for p in np.unique(part).tolist():
            here = part == p
            codes[here], scales[here] = self._parts[p].quantized(ids[here] - self._starts[p])
        return codes, scales


class SegmentedLexical:
    """BM25 over every segment's term counts, scored with the statistics of what is live
    (document frequencies, average length): a fresh build of the same texts gives the
    same scores, bit for bit. A term's scores are computed from its postings the first
    time a question asks for it in this generation and kept (up to CACHE_BYTES), so that
    opening a generation costs nothing per posting and a question mostly costs what it
    costs on one index: a sum of its terms' rows. A term's postings over the segments
    (rows, counts, lengths) are kept across generations (_SegmentTerms): under steady
    ingestion every worker opens a new generation every second or two, and the first
    searches of each paid for gathering again, segment by segment, what they had gathered
    a second before."""

    CACHE_BYTES = 64 << 20  # a term's scores: 12 bytes a posting

    def __init__(self, parts: list, starts: list[int], capacity: int, live: np.ndarray, keys: tuple[str, ...],
                 read: "_SegmentTerms | None" = None):
        from search.index.lexical import B, K1

        self._parts = parts  # (arrays, vocab) per segment: indptr, indices, counts, lengths
        self._starts = starts
        self._capacity = capacity
        self._live = live
        self._keys = keys  # what identifies each segment's files across generations
        self._read = read or _SegmentTerms()
        spans = [(start, start + len(arrays["lengths"])) for (arrays, _), start in zip(parts, starts)]
        self._deleted = any(not live[a:b].all() for a, b in spans)
        self._n = int(live.sum())
        # the live rows' total length, summed exactly (integers) as a fresh build's mean is
        total = sum(int(arrays["lengths"][live[a:b]].sum()) for (arrays, _), (a, b) in zip(parts, spans))
        self._average = total / self._n if self._n and total else 1.0
        self._k1, self._b = K1, B
        self._cache = _Kept(self.CACHE_BYTES)  # term -> (rows, scores)

    @classmethod
    def open(cls, layout: Layout, directory: Path, part: str, documents: bool = False,
             previous: "SegmentedLexical | None" = None) -> "SegmentedLexical":
        """`previous`: the last generation's, whose segments of the same files (hard-linked)
        are not read again."""
        from search.index.lexical import LexicalIndex

        known = getattr(previous, "_by_segment", {})
        parts = [known.get(segment) or LexicalIndex.load_counts(segment.path(directory) / part)
                 for segment in layout.segments]
        read = previous._read if previous is not None else None
        # (a searcher carries this only to a generation with the same base files, whose
        # other segments' names are never used again for other files: search/searcher.py)
        keys = tuple(s.name for s in layout.segments)
        if documents:
            starts = [s.documents[0] for s in layout.segments]
            opened = cls(parts, starts, layout.document_capacity, layout.live_documents(), keys, read)
        else:
            opened = cls(parts, [s.passages[0] for s in layout.segments], layout.passage_capacity, layout.live(),
                         keys, read)
        opened._by_segment = dict(zip(layout.segments, parts))
        return opened

    def _term(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """The rows holding `term` (live ones, in row order) and its score in each."""
        found = self._cache.get(term)
        if found is not None:
            return found
        rows, tf, dl = self._read.postings(term, self._keys, self._parts, self._starts)
        if self._deleted:
            keep = self._live[rows]
            rows, tf, dl = rows[keep], tf[keep], dl[keep]
        df = np.array([len(rows)], dtype=np.int64)
        idf = np.log(np.maximum(1.0, (self._n - df + 0.5) / (df + 0.5)))[0]  # as Postings.scored
        norm = self._k1 * ((1 - self._b) + self._b * dl / self._average)
        found = rows, (idf * tf / (norm + tf)).astype(np.float32)
        self._cache.put(term, found, 12 * len(rows))
        return found

    def best_of(self, query_terms: tuple[str, ...], depth: int,
                mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """As LexicalIndex.best_of."""
        from search.index.lexical import best_rows

        return best_rows([self._term(term) for term in dict.fromkeys(query_terms)], self._capacity, depth, mask)

    def scores_of(self, query_terms: tuple[str, ...], rows: np.ndarray) -> np.ndarray:
        """As LexicalIndex.scores_of."""
        from search.index.lexical import scores_at

        return scores_at([self._term(term) for term in dict.fromkeys(query_terms)], rows)


class _Kept:
    """Values kept by key up to `limit` bytes, the least recently used dropped first; for
    the threads of a worker at once."""

    def __init__(self, limit: int):
        self._limit = limit
        self._items: OrderedDict = OrderedDict()  # key -> (value, its bytes)
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key, value, size: int, replace: bool = False) -> None:
        with self._lock:
            if key in self._items:
                if not replace:
                    return
                self._bytes -= self._items.pop(key)[1]
            self._items[key] = value, size
            self._bytes += size
            while self._bytes > self._limit and len(self._items) > 1:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped


class _SegmentTerms:
    """A term's postings over a generation's segments as their files hold them (global
    rows, counts and row lengths as float64, exactly what the scores are computed from),
    one array each in segment order, kept across generations up to CACHE_BYTES. The next
    generation's segments are mostly the last one's and one more (or the newest few folded
    into one): only the segments a term's postings have not seen are read for it."""

    CACHE_BYTES = 64 << 20  # 24 bytes a posting

    def __init__(self):
        self._kept = _Kept(self.CACHE_BYTES)  # term -> (segment keys, their ends, rows, counts, lengths)

    def postings(self, term: str, keys: tuple[str, ...], parts: list, starts: list[int]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`term`'s (rows, counts, lengths) in the segments `keys`, whose counts are `parts`
        ((arrays, vocab) each) and first rows `starts`, deleted rows included."""
        found = self._kept.get(term)
        if found is not None and found[0] == keys:
            return found[2:]
        ends = [] if found is None else list(found[1][:_common(found[0], keys)])  # the segments still read
        held = ends[-1] if ends else 0
        pieces = [tuple(a[:held] for a in found[2:])] if held else []
        for (arrays, vocab), start in zip(parts[len(ends):], starts[len(ends):]):
            column = vocab.get(term)
            if column is not None:
                a, b = arrays["indptr"][column], arrays["indptr"][column + 1]
                local = arrays["indices"][a:b]
                pieces.append((local.astype(np.int64) + start, arrays["counts"][a:b].astype(np.float64),
                               arrays["lengths"][local].astype(np.float64)))
                held += len(local)
            ends.append(held)
        if len(pieces) == 1:
            rows, tf, dl = pieces[0]
        elif pieces:
            rows, tf, dl = (np.concatenate(p) for p in zip(*pieces))
        else:
            rows, tf, dl = np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
        self._kept.put(term, (keys, tuple(ends), rows, tf, dl), 24 * len(rows), replace=True)
        return rows, tf, dl


def _common(before: tuple[str, ...], now: tuple[str, ...]) -> int:
    """How many segments the two lists begin with alike."""
    if before == now[:len(before)]:  # the usual case: segments added after them
        return len(before)
    same = 0
    for a, b in zip(before, now):
        if a != b:
            break
        same += 1
    return same


def postings(layout: Layout, directory: Path, part: str, only: tuple[Segment, ...] | None = None):
    """Every segment's BM25 term counts of `part` as one `Postings` over global rows (the
    deleted ones included: a merge leaves them out), or None when a segment has none.
    `only`: these consecutive segments, rows numbered from the first one's start."""
    from search.index.lexical import Postings

    chosen = layout.segments if only is None else only
    parts = [Postings.read(segment.path(directory) / part) for segment in chosen]
    if any(p is None for p in parts):
        return None
    if len(parts) == 1:
        return parts[0]
    first = 0 if only is None else _start(chosen[0], part)
    vocab: dict[str, int] = {}
    rows, columns, counts = [], [], []
    for p, segment in zip(parts, chosen):
        start = _start(segment, part) - first
        by_column = sorted(p.vocab, key=p.vocab.get)
        remap = np.array([vocab.setdefault(term, len(vocab)) for term in by_column], dtype=np.int64)
        rows.append(p.rows + start)
        columns.append(remap[p.columns] if len(remap) else p.columns)
        counts.append(p.counts)
    rows, columns, counts = np.concatenate(rows), np.concatenate(columns), np.concatenate(counts)
    order = np.lexsort((rows, columns))
    return Postings(rows[order], columns[order], counts[order], np.concatenate([p.lengths for p in parts]), vocab)


def _start(segment: Segment, part: str) -> int:
    return segment.documents[0] if part == store.DOCUMENT_LEXICAL else segment.passages[0]


def fold(layout: Layout, directory: Path, target: Path, name: str, vectors: bool = True,
         only: tuple[Segment, ...] | None = None, coded: bool = False) -> tuple[Segment, list[str]]:
    """Write the segments after the base (`only`: these consecutive ones of them) as one
    segment `name` under `target` (their deleted rows kept, still marked deleted: folding
    costs what the segments hold, not the index); returns it and the files written (names
    within `target`). `vectors`: false when the passage vectors are in a Milvus collection,
    not the segments. `coded`: the vectors coded in the clusters of the base, an IVF index
    (a segment folded so before is carried as it is coded), not flat."""
    import faiss

    from search.index import vector_index
    from search.index.lexical import LexicalIndex
    from search.index.vector_store import FaissStore

    deltas = only or layout.segments[1:]
    out = Path(target) / name
    out.mkdir(parents=True)
    written = []
    for part in (store.PASSAGE_LEXICAL, store.DOCUMENT_LEXICAL):
        written += [str(p.relative_to(target)) for p in
                    LexicalIndex._from(postings(layout, directory, part, only=deltas)).save(out / part)]
        give_way()
    if vectors:
        stores = [FaissStore.read(s.path(directory)) for s in deltas]
        base = FaissStore.read(layout.segments[0].path(directory)) if coded else None  # (held: ivf is a view)
        ivf = faiss.try_extract_index_ivf(base.index) if coded else None
        index = (vector_index.trained_like(ivf) if ivf is not None
                 else faiss.IndexIDMap2(faiss.IndexFlatIP(stores[0].index.d)))
        for segment, part in zip(deltas, stores):
            before = faiss.try_extract_index_ivf(part.index)  # (a segment a fold coded before)
            if ivf is None or before is None or not vector_index.add_coded(index, before):
                ids = np.arange(*segment.passages, dtype=np.int64)
                index.add_with_ids(np.ascontiguousarray(part.vectors(ids), dtype=np.float32), ids)
            give_way()
        written += [f"{name}/{f}" for f in FaissStore(index).save(out)]
    sentences = open_sentences(layout, directory)
    if sentences is not None:
        first, end = deltas[0].sentences[0], deltas[-1].sentences[1]
        codes, scales = sentences.quantized(np.arange(first, end))
        np.save(out / store.SENTENCE_VECTORS, codes, allow_pickle=False)
        np.save(out / store.SENTENCE_SCALES, scales, allow_pickle=False)
        written += [f"{name}/{store.SENTENCE_VECTORS}", f"{name}/{store.SENTENCE_SCALES}"]
    folded = Segment(name, (deltas[0].passages[0], deltas[-1].passages[1]),
                     (deltas[0].sentences[0], deltas[-1].sentences[1]),
                     (deltas[0].documents[0], deltas[-1].documents[1]))
    return folded, written


def open_vectors(layout: Layout, manifest: dict, directory: Path, nprobe: int | None = None, base=None,
                 previous=None):
    """The generation's vector store; `base`: its base's store already open (the previous
    generation's, whose base files these are); `previous`: that generation's vector store,
    whose in-memory segments this one carries rather than reading them again."""
    from search.index import vector_store

    base = base or vector_store.open_store(manifest, directory, nprobe)
    if layout.simple:
        return base
    if isinstance(base, vector_store.MilvusStore):  # one collection holds every segment's vectors
        whole = Segment("", (0, layout.passage_capacity), (0, 0), (0, 0))
        return SegmentedVectors([base], Layout((whole,), layout.deleted, layout.deleted_documents), filtered=True)
    deltas = layout.segments[1:]
    # a segment a fold coded in an IVF base's clusters is searched as a part of its own, as
    # the base is; the flat ones after it (the updates' and folds' since) together in memory
    known = getattr(previous, "coded", {})
    coded = []
    for segment in deltas:
        part = known.get(segment) or _coded(segment, directory, nprobe)
        if part is None:
            break
        coded.append(part)
    flat = deltas[len(coded):]
    if flat and sum(s.size for s in flat) <= IN_MEMORY_DELTAS:
        # one flat index in memory for the updates' small segments: one search, not one each
        index = _deltas_in_memory(flat, directory, base.index.d, getattr(previous, "in_memory", None))
        together = Segment("", (flat[0].passages[0], flat[-1].passages[1]), (0, 0), (0, 0))
        opened = SegmentedVectors([base, *coded, vector_store.FaissStore(index)],
                                  Layout((layout.segments[0], *deltas[:len(coded)], together), layout.deleted,
                                         layout.deleted_documents))
        opened.in_memory = flat, index
    else:
        parts = [base, *coded] + [vector_store.FaissStore.read(segment.path(directory), nprobe) for segment in flat]
        opened = SegmentedVectors(parts, layout)
    opened.coded = dict(zip(deltas, coded))
    return opened


def _coded(segment: Segment, directory: Path, nprobe: int | None):
    """The segment's vector store if its vectors are coded in clusters, else None."""
    from search.index import vector_store

    return vector_store.FaissStore.read(segment.path(directory), nprobe) if is_coded(segment, directory) else None


def is_coded(segment: Segment, directory: Path) -> bool:
    """Whether the segment's passage vectors are coded in clusters (an IVF index) rather
    than flat (faiss's file of a flat one opens with IndexIDMap2's tag); false for vectors
    held in Milvus."""
    try:
        with open(segment.path(directory) / store.VECTORS, "rb") as f:
            return f.read(4) != b"IxM2"
    except FileNotFoundError:
        return False


def _deltas_in_memory(deltas: tuple[Segment, ...], directory: Path, dimension: int, carried=None):
    """A flat index of the segments' vectors. `carried`: (segments, index) of the previous
    generation's: when they lead these, their vectors are copied from it and only the new
    segments' files read (a generation under steady ingestion adds one segment to a dozen)."""
    import faiss

    from search.index import vector_store

    index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    start = 0
    if carried is not None and deltas[:len(carried[0])] == carried[0]:
        held = carried[1]
        if held.ntotal:
            index.add_with_ids(faiss.downcast_index(held.index).reconstruct_n(0, held.ntotal),
                               faiss.vector_to_array(held.id_map))
        start = len(carried[0])
    for segment in deltas[start:]:
        ids = np.arange(*segment.passages, dtype=np.int64)
        index.add_with_ids(vector_store.FaissStore.read(segment.path(directory)).vectors(ids), ids)
    return index


def open_sentences(layout: Layout, directory: Path, previous=None):
    """`previous`: the previous generation's sentence vectors, whose segments (the same
    files, hard-linked, held open) this one shares."""
    from search.index.sentence_vectors import SentenceVectors

    known = dict(zip(previous.segments, previous._parts)) if isinstance(previous, SegmentedSentences) else {}

    def part(segment: Segment):
        return known[segment] if segment in known else SentenceVectors.open(segment.path(directory))

    base = part(layout.segments[0])
    if base is None or layout.simple:
        return base
    return SegmentedSentences([base] + [part(segment) for segment in layout.segments[1:]], layout)


def open_lexical(layout: Layout, directory: Path, part: str, previous=None):
    """`previous`: the BM25 index of this part an earlier generation's reader opened, whose
    segments this generation shares."""
    from search.index.lexical import LexicalIndex

    if layout.simple:
        return LexicalIndex.load(directory / part)
    return SegmentedLexical.open(layout, directory, part, documents=part == store.DOCUMENT_LEXICAL,
                                 previous=previous if isinstance(previous, SegmentedLexical) else None)
