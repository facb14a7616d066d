"""The core: a `Searcher` over one index directory.

HTTP, the `ask` CLI and Python callers all go through `Searcher.search`, and all of them
serialise the same `Hit` and `Citation` dataclasses.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import weakref
from collections import OrderedDict
from pathlib import Path

import numpy as np

from search import settings
from search.embedding.embedder import Embedder, canonical_model_name, get_embedder
from search.errors import DocumentNotFound, StoryNotFound
from search.hits import Citation, Hit
from search.index import generations, milvus_index, segments, store
from search.index.segment_store import SegmentedStore
from search.index.lexical import LexicalIndex, search_terms
from search.query import ContextRequest, Filters, StoriesRequest, check_mode, check_search, checked
from search.ranked import Ranking, by_id, ranking, union
from search.retrieval import byline, context, feedback, idle, recency, when
from search.retrieval import mmr as mmr_order  # `mmr` is search's parameter
from search.retrieval.collapse import Duplicates, at_most_per_source, count_facets, per_article
from search.retrieval.fusion import Weights, blended, fuse
from search.retrieval.highlight import Highlight, best_sentence
from search.retrieval.stories import per_story, timeline


# The last searcher this process opened on each index (weakly: it lives as long as it
# serves), whose reading of the store the next generation's searcher can reuse.
_LATEST: dict[str, weakref.ref] = {}


@functools.lru_cache(maxsize=None)
def _limit_blas_threads() -> None:
    """BLAS on one thread, once a process (the count is the process's): threadpoolctl
    inspects every loaded library each call, a twentieth of a served reload's CPU."""
    import threadpoolctl

    threadpoolctl.threadpool_limits(1, user_api="blas")


class Searcher:
    """Semantic search over an index built by `python -m indexer build`: a directory, or
    collections in Milvus (search/index/milvus_index.py)."""

    # How deep each ranking goes before fusion and collapse: deep enough that the fusion's
    # standardisation sees the spread of scores, and collapsed copies never leave fewer than k.
    DEPTH = 1000
    # Dense hits whose best sentence is mixed into their score: the first 300 of 1,000.
    # Below them the sentence cannot lift a passage into the results; reading all 1,000
    # costs time on every query and changes nothing measurable.
    SENTENCE_DEPTH = 300
    # sort=date orders the passages that answer: the best this many by relevance
    DATE_SORT_DEPTH = 100
    # group=article lists at most this many of an article's other answering passages
    MORE_PER_ARTICLE = 3
    # facets count the articles of the best this many passages
    FACET_DEPTH = 100

    def __init__(self, index_dir: Path, manifest: dict, embedder: Embedder, mode: str = "hybrid",
                 previous: "Searcher | None" = None):
        import faiss

        self.index_dir = Path(index_dir)  # the generation's own directory
        self.root = self.index_dir  # the index directory callers named (Searcher.open sets it)
        self.generation: str | None = None  # its generation, None for a single-directory index
        self.manifest = manifest
        self.embedder = embedder
        self.mode = mode
        self.weights = Weights()  # how the ranking signals combine (search.retrieval.fusion)
        remote = manifest.get("store", {}).get("backend") == milvus_index.BACKEND
        # What the previous generation's searcher in this process read stays true of what
        # both hold in an update's generation (the same base files; ids are not reused
        # until a merge renumbers them): it is reused, and only the new is read.
        # (segments: an updated generation's parts, search/index/segments.py)
        self._layout = None if remote else segments.Layout.of(manifest, self.index_dir)
        self._count = 0 if remote else self._layout.passage_capacity  # passage ids run below it (some deleted)
        reuse = previous is not None and not remote and self._extends(previous)
        if remote:  # every part in Milvus collections (search/index/milvus_index.py)
            self._open_remote(manifest, previous)
        else:
            self._open_local(manifest, previous if reuse else None)
        # (an index in Milvus: the passages its catalog carried from the previous one's)
        known = previous._count if reuse else self._store.carried if remote and previous is not None else 0
        # A search is one or a few query vectors: faiss's OpenMP threads and numpy's BLAS
        # threads gain nothing on such small products, and they busy-wait after each call,
        # starving the query encoding that runs next (several times slower). BLAS's count is
        # the process's; faiss's is this thread's only (libgomp keeps it per thread), and
        # every search sets its own (vector_store._one_thread).
        faiss.omp_set_num_threads(1)
        _limit_blas_threads()
        # a query's vector depends on the model alone: the next generation's searcher keeps
        # the cache (and its lock: both answer requests while the swap happens)
        if previous is not None and previous.embedder is embedder:
            self._query_cache, self._cache_lock = previous._query_cache, previous._cache_lock
        else:
            self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
            self._cache_lock = threading.Lock()
        self.query_cache_size = settings.value("SEARCH_QUERY_CACHE")
        self._in_flight, self._in_flight_lock = 0, threading.Lock()  # searches running now
        self._sentence_range = self._sentence_ranges(previous, known) if self._sentence_vectors is not None else None
        # passage id -> its document's row in the document BM25 index (rowid - 1)
        pairs = self._store.document_rows(known)
        self._document_row = np.zeros(self._count, dtype=np.int64)
        if known:
            self._document_row[:known] = previous._document_row[:known]
        self._document_row[pairs[:, 0]] = pairs[:, 1]
        # the groups as recorded: an update's segment may regroup older passages, so what a
        # previous searcher read is reused only for the parts it read
        carried = self._store.shared_parts(previous._store) if reuse else 0
        self._recorded_groups = self._store.groups(previous._recorded_groups if carried else None, carried)
        self._duplicates = Duplicates.of(self._recorded_groups, self._store.live)
        # document row -> its story (-1: none), read likewise
        self._story_of_row = self._store.stories(previous._story_of_row if carried else None, carried)
        # (document rows below the previous generation's count are the same articles)
        known_documents = previous._document_lexical_size if known else 0
        self._dates = recency.PublicationDates(self._store.document_dates, self._document_row,
                                               self._document_lexical_size,
                                               previous._dates.known(known_documents) if known else None)

    def _open_local(self, manifest: dict, previous: "Searcher | None") -> None:
        """The parts of a generation directory; what `previous` (a searcher of the
        generation this one extends) read of them is reused."""
        # the passage vectors: this generation's faiss file, or the Milvus collection its
        # manifest names (search/index/vector_store.py)
        layout = self._layout
        self._vectors = segments.open_vectors(layout, manifest, self.index_dir, settings.value("SEARCH_NPROBE"),
                                              base=previous._base_vectors if previous else None,
                                              previous=previous._vectors if previous else None)
        self._base_vectors = self._vectors._parts[0] if isinstance(self._vectors, segments.SegmentedVectors) \
            else self._vectors
        # read where a query asks (pread): only its candidate passages' sentences
        self._sentence_vectors = segments.open_sentences(layout, self.index_dir,
                                                         previous._sentence_vectors if previous else None)
        # one read-only connection per thread and file, the carried segments' kept
        self._store = SegmentedStore(layout, self.index_dir, previous._store.connections if previous else None)
        self._passage_lexical = segments.open_lexical(layout, self.index_dir, store.PASSAGE_LEXICAL,
                                                      previous._passage_lexical if previous else None)
        self._document_lexical = segments.open_lexical(layout, self.index_dir, store.DOCUMENT_LEXICAL,
                                                       previous._document_lexical if previous else None)
        self._document_lexical_size = layout.document_capacity

    def _open_remote(self, manifest: dict, previous: "Searcher | None") -> None:
        """The collections; what `previous` (this replica's searcher of an earlier
        generation) read of them is carried, and only what the updates since changed is read."""
        remote = milvus_index.MilvusIndex(manifest, getattr(previous, "_remote", None))
        self._remote = remote
        self._count = remote.passage_capacity
        self._vectors = self._base_vectors = remote.vectors
        self._sentence_vectors = remote.sentences
        self._store = remote.store
        self._passage_lexical, self._document_lexical = remote.passage_lexical, remote.document_lexical
        self._document_lexical_size = remote.document_capacity

    def _extends(self, previous: "Searcher") -> bool:
        """Whether this generation is `previous`'s with segments added or passages deleted:
        the same base files (hard links of the same inode), no fewer passage ids."""
        import os

        if self.manifest.get("vector_index", {}).get("backend") == "milvus" or previous._count > self._count \
                or previous._layout is None:
            return False
        if previous._layout.segments[0] != self._layout.segments[0]:
            return False
        try:
            return all(os.stat(previous.index_dir / name).st_ino == os.stat(self.index_dir / name).st_ino
                       for name in (store.VECTORS, f"{store.PASSAGE_LEXICAL}/{LexicalIndex.COUNTS}"))
        except OSError:
            return False

    def _sentence_ranges(self, previous: "Searcher | None" = None, known: int = 0) -> np.ndarray:
        """[first sentence id, sentence count] per passage id: a passage's sentences are
        consecutive rows of sentences.npy (the first `known` passages' as `previous` read them)."""
        ranges = np.zeros((self._count, 2), dtype=np.int64)
        if known and previous._sentence_range is not None:
            ranges[:known] = previous._sentence_range[:known]
        else:
            known = 0
        runs = self._store.sentence_runs(known)
        ranges[runs[:, 0]] = runs[:, 1:]
        return ranges

    @classmethod
    def open(cls, index_dir: str | Path, model: str | None = None, verify: bool = True,
             mode: str = "hybrid", backend: str | None = None) -> "Searcher":
        """Open an index for searching, loading its model once per process.

        Args:
            index_dir: a directory written by `python -m indexer build`, or the URI of an
                index it wrote into Milvus (`--store milvus://host:port/NAME`).
            model: the model the caller means to search with (default: the bundled
                all-MiniLM-L6-v2); it must be the one the index was built with.
            verify: check the index files against the manifest's checksums.
            mode: the default ranking, "hybrid", "dense" or "lexical".
            backend: how the model runs, "onnx-int8", "torch" or "torch-bf16" (default:
                $SEARCH_EMBED_BACKEND, else search.embedding.embedder.DEFAULT_BACKEND).

        Raises:
            IndexNotFound: no index there (the message says what to run).
            IndexMismatch: built with another model, dimension or format version.
            IndexCorrupt: the files fail their checksums.
        """
        if milvus_index.is_milvus(index_dir):  # an index held in Milvus: nothing on disk
            return cls._open_milvus(index_dir, model, mode, backend)
        root = Path(index_dir)
        # the generation current now, leased: its files are read by their own paths, so an
        # update published while this searcher lives never changes what it reads, and
        # collection leaves them until the searcher is gone
        generation, index_dir, held = generations.lease(root)
        try:
            return cls._open(root, generation, index_dir, held, model, verify, mode, backend)
        except BaseException:
            if held is not None:
                held.close()
            raise

    @classmethod
    def _open(cls, root: Path, generation: str | None, index_dir: Path, held, model, verify, mode, backend):
        manifest = store.read_manifest(index_dir)
        model_name = canonical_model_name(model)
        store.check_model(index_dir, manifest, model_name)  # before paying for a model load
        if verify:
            store.verify_checksums(index_dir, manifest)
        check_mode(mode)
        embedder = get_embedder(model_name, backend)
        store.check_model(index_dir, manifest, model_name, embedder.dimension)
        previous = _LATEST.get(str(Path(root).resolve()))
        searcher = cls(index_dir, manifest, embedder, mode, previous=previous() if previous else None)
        searcher.root, searcher.generation = root, generation
        _LATEST[str(Path(root).resolve())] = weakref.ref(searcher)
        if held is not None:
            weakref.finalize(searcher, held.close)  # the lease goes with the last reference
        return searcher

    @classmethod
    def _open_milvus(cls, spec: str, model, mode, backend) -> "Searcher":
        manifest = milvus_index.read_manifest(spec)
        model_name = canonical_model_name(model)
        store.check_model(spec, manifest, model_name)
        check_mode(mode)
        embedder = get_embedder(model_name, backend)
        store.check_model(spec, manifest, model_name, embedder.dimension)
        previous = _LATEST.get(spec)
        searcher = cls(Path(spec.replace("://", "/")), manifest, embedder, mode,
                       previous=previous() if previous else None)
        searcher.root, searcher.generation = spec, manifest["store"].get("generation", manifest["store"]["token"])
        _LATEST[spec] = weakref.ref(searcher)
        return searcher

    @functools.cached_property
    def _sources(self) -> tuple[np.ndarray, dict[str, int]]:
        numbers: dict[str, int] = {}
        out = np.full(self._document_lexical_size, -1, dtype=np.int64)  # -1: a deleted row
        for row, source in self._store.sources():
            out[row] = numbers.setdefault(source, len(numbers))
        return out, numbers

    @property
    def _source_of_row(self) -> np.ndarray:
        """document row (as `_document_row` numbers them) -> a number for its source (equal
        numbers: the same source)."""
        return self._sources[0]

    @property
    def _source_numbers(self) -> dict[str, int]:
        return self._sources[1]

    @functools.cached_property
    def _doc_ids(self) -> dict[int, str]:
        """passage id -> doc_id, read once for the evaluation's document view."""
        return dict(self._store.doc_ids())

    def search(self, query: str, k: int = 5, mode: str | None = None, collapse: bool = True,
               highlight: bool = True, offset: int = 0, filters: Filters = Filters(),
               as_of: str | None = None, dates: str = "interpreted", sort: str = "relevance",
               group: str = "none", diversity: int | None = None, mmr: float | None = None) -> list[Hit]:
        """The `k` passages that best answer `query`, best first.

        Args:
            query: a question or keywords, at most 1,000 characters.
            k: how many results, 1..100.
            mode: "hybrid" (BM25 fused with dense), "dense" or "lexical"; default: the searcher's.
            collapse: merge passages that say the same thing into one result citing every source.
            highlight: pick each result's answering sentence.
            offset: skip this many results, 0..900 (paging: pages are slices of one
                ranking, so they never overlap).
            filters: answer only from these documents, sources or dates (`Filters`). A
                result the unfiltered search ranks keeps its place among the filtered ones;
                matching passages it does not rank follow them.
            as_of: the date the question is asked on, YYYY-MM-DD (default: today). A
                question that asks for what is recent ("latest", "this week") favours
                articles published near it (search/retrieval/recency.py).
            dates: "interpreted" (default): a time expression in the question ("last
                week", "since October", "in 2022") filters publication dates, relative to
                `as_of`, unless `filters` name dates themselves (`interpret` says what it
                understood); "literal": it does not.
            sort: "relevance" (default), or "date": the best `DATE_SORT_DEPTH` passages
                (everything that answers, for a news archive's "everything on X"), newest
                article first, undated last, relevance deciding within a day.
            group: "none" (default), or "article": one result per article, its best
                passage, with the article's other answering passages in `Hit.more`
                (a collapsed result counts for every article it cites); or "story":
                one result per story, citing after its own sources the best passage of
                each of the story's other articles that answer.
            diversity: at most this many results from one source (default: no limit).
            mmr: off by default; a weight from 0 to 1 reorders the best results by
                maximal marginal relevance, that weight on relevance and the rest on
                novelty (unlike the results above it), so that near-identical paragraphs
                do not fill a page (search/retrieval/mmr.py; 0.5 is the usual choice).
                With sort="date" its relevance is that order: newest first, a near-repeat
                of a result above it waits.

        Raises:
            BadRequest: empty or over-long query, k outside 1..100, unknown mode, bad
                offset, filter or date.
        """
        return self.search_batch([query], k, mode, collapse, highlight, offset, filters, as_of, dates, sort, group,
                                 diversity, mmr)[0]

    def search_batch(self, queries: list[str], k: int = 5, mode: str | None = None,
                     collapse: bool = True, highlight: bool = True, offset: int = 0,
                     filters: Filters = Filters(), as_of: str | None = None,
                     dates: str = "interpreted", sort: str = "relevance", group: str = "none",
                     diversity: int | None = None, mmr: float | None = None) -> list[list[Hit]]:
        """`search` for several queries at once."""
        mode = self.mode if mode is None else mode
        for query in queries:
            check_search(query, k=k, mode=mode, offset=offset, as_of=as_of, dates=dates, sort=sort, group=group,
                         diversity=diversity, mmr=mmr)
        # always the full depth, so that collapse on or off ranks alike
        depth = self.DEPTH
        vectors, rankings = self._vectors_and_rankings(queries, depth, mode)
        out = []
        for query, vector, ranked in zip(queries, vectors, rankings):
            asked = filters.within(self.interpret(query, as_of, dates, filters))
            ranked, allowed = self._within(query, vector, ranked, asked, depth, mode)
            fused = ranked = self._in_time(query, ranked, as_of)
            # a request for the first few results in the plain order never reads past the
            # head, which the feedback leaves as it is: no feedback search for it
            if group != "none" or diversity or mmr is not None or sort != "relevance" or offset + k > feedback.HEAD:
                ranked = self._with_feedback(vector, ranked, mode, asked, allowed)
            if sort == "date":
                ranked = self._dates.newest_first(ranked, self.DATE_SORT_DEPTH)
            out.append(self._hits(query, vector, ranked, k, collapse, highlight, offset, allowed, group, diversity,
                                  mmr, by_order=sort == "date", members_by=fused[0]))
        return out

    @staticmethod
    def interpret(query: str, as_of: str | None = None, dates: str = "interpreted",
                  filters: Filters = Filters()) -> when.Interpreted | None:
        """The publication range a time expression in `query` asks for (relative to
        `as_of`, default today), or None: none there, `dates="literal"`, or `filters`
        that name dates already."""
        if dates == "literal" or filters.published_from or filters.published_to:
            return None
        return when.interpret(query, as_of or recency.today())

    def _vectors_and_rankings(self, queries: list[str], depth: int, mode: str) -> tuple[np.ndarray, list[Ranking]]:
        """The queries' vectors and rankings. When no other search runs in this process
        and a core of the machine is idle (search/retrieval/idle.py), BM25 runs there while the
        model encodes (at 100k passages, 11.4 -> 10.4 ms for a lone caller over HTTP).
        Under load every core is busy and the hand-off would only add CPU, so it runs
        inline, as it does when the vectors are cached and the model has nothing to do."""
        with self._in_flight_lock:
            self._in_flight += 1
            alone = self._in_flight == 1
        try:
            lexical = None
            if alone and mode == "hybrid" and idle.spare_core() and not all(q in self._query_cache for q in queries):
                lexical = idle.helper().submit(self._lexical_best, queries, depth)
            vectors = self._query_vectors(queries)
            return vectors, self._rank(queries, vectors, depth, mode, lexical.result() if lexical else None)
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1

    def context(self, query: str, k: int = 5, max_chars: int = 4000, mode: str | None = None,
                collapse: bool = True, filters: Filters = Filters(), as_of: str | None = None,
                dates: str = "interpreted", neighbours: int = 0, mmr: float | None = None) -> dict:
        """The search's passages as numbered, cited text for a model's prompt (search/retrieval/context.py).
        With `neighbours`, each passage comes with that many paragraphs of its article
        before and after it (one span of the article), so a quote keeps its setting;
        with `mmr`, the passages are chosen as `search` chooses them with it.

        Returns:
            {"query", "context": the text, "chars": its length, "max_chars", "sources": one
            per [n], with the document span its text comes from}.

        Raises:
            BadRequest: as `search`, or max_chars outside 1..100,000.
        """
        checked(ContextRequest, {"query": query, "max_chars": max_chars, "neighbours": neighbours})
        hits = self.search(query, k, mode, collapse, highlight=False, filters=filters, as_of=as_of, dates=dates,
                           mmr=mmr)
        if neighbours:
            hits = self._with_neighbours(hits, neighbours)
        spans = [self._sentence_spans(h.citations[0]) for h in hits]
        text, sources = context.build(hits, spans, max_chars)
        return {"query": query, "context": text, "chars": len(text), "max_chars": max_chars, "sources": sources}

    def _allowed(self, filters: Filters) -> np.ndarray:
        """Passage id -> whether the filters let it answer (live passages only). Documents
        are looked up by their indexed id, sources and dates in the arrays read once per
        generation: no scan of the store per search."""
        allowed = self._store.live.copy()
        if filters.doc_id:
            chosen = np.zeros(self._count, dtype=bool)
            chosen[self._store.passages_of(filters.doc_id)] = True
            allowed &= chosen
        if filters.source:
            numbers = [self._source_numbers[s] for s in filters.source if s in self._source_numbers]
            allowed &= np.isin(self._source_of_row[self._document_row], numbers)
        if filters.published_from or filters.published_to:
            days = self._dates.days
            undated = np.isnan(days)
            inside = ~undated
            with np.errstate(invalid="ignore"):
                if filters.published_from:
                    inside &= days >= recency.day(filters.published_from)
                if filters.published_to:
                    inside &= days <= recency.day(filters.published_to)
            allowed &= inside | undated if filters.undated else inside
        return allowed

    def _filtered(self, query: str, vector: np.ndarray, ranked: Ranking, allowed: np.ndarray, depth: int,
                  mode: str, filters: Filters = Filters()) -> Ranking:
        """The unfiltered ranking's allowed passages in its order; when the filters leave
        fewer than `depth` there and more exist, a search among the allowed passages only
        adds the rest after them (their scores capped so the list stays in order)."""
        ids, scores = ranked
        keep = allowed[ids]
        ids, scores = ids[keep], scores[keep]
        wanted = min(depth, int(allowed.sum()))
        if len(ids) >= wanted:
            return ids, scores
        lexical = None
        where = self._where(filters)
        if mode != "dense":
            words = search_terms(query)
            lexical = [self._passage_lexical.best_of(words, depth, where=where) if where is not None
                       else self._passage_lexical.best_of(words, depth, allowed)]
        more_ids, more_scores = self._rank([query], vector[None, :], depth, mode, lexical, allowed=allowed,
                                           where=where)[0]
        new = ~np.isin(more_ids, ids)
        more_ids, more_scores = more_ids[new], more_scores[new]
        if len(scores):
            more_scores = np.minimum(more_scores, scores[-1])
        return np.concatenate((ids, more_ids)), np.concatenate((scores, more_scores))

    def rank(self, queries: list[str], depth: int, mode: str | None = None,
             weights: Weights | None = None, as_of: list[str | None] | None = None) -> list[list[tuple[str, float]]]:
        """Ranked (doc_id, score) lists, a document scored by its best passage: the
        evaluation harness's view, without the k limit of `search`. `as_of`: each
        question's date (None: today); time plays no part without it."""
        mode = self.mode if mode is None else mode
        vectors = self._query_vectors(queries) if mode != "lexical" else [None] * len(queries)
        out = []
        rankings = self._rank(queries, vectors, depth, mode, weights=weights)
        for n, (query, vector, date) in enumerate(zip(queries, vectors, as_of or [None] * len(queries))):
            asked, allowed = Filters(), None
            if as_of is not None:
                asked = Filters().within(self.interpret(query, date))
                rankings[n], allowed = self._within(query, vector, rankings[n], asked, depth, mode)
                rankings[n] = self._in_time(query, rankings[n], date, weights)
            rankings[n] = self._with_feedback(vector, rankings[n], mode, asked, allowed, weights)
        for ids, scores in rankings:
            best: dict[str, float] = {}
            for pid, score in zip(ids.tolist(), scores.tolist()):
                best.setdefault(self._doc_ids[pid], score)
            out.append(list(best.items()))
        return out

    def _rank(self, queries, vectors, depth: int, mode: str, lexical=None,
              weights: Weights | None = None, allowed: np.ndarray | None = None,
              where: str | None = None) -> list[Ranking]:
        rankings = self._fused(queries, vectors, depth, mode, lexical, weights, allowed, where)
        return [self._bylines_first(query, ranked) for query, ranked in zip(queries, rankings)]

    def _fused(self, queries, vectors, depth: int, mode: str, lexical=None,
               weights: Weights | None = None, allowed: np.ndarray | None = None,
               where: str | None = None) -> list[Ranking]:
        weights = weights or self.weights
        depth = min(depth, self._count)
        empty = np.zeros(0, dtype=np.int64), np.zeros(0)
        dense: list[Ranking] = [empty] * len(queries)
        if mode != "lexical":
            vectors = np.asarray(vectors, dtype=np.float32)
            dense = self._dense(vectors, depth, weights, allowed, where)
            if mode == "dense":
                return [ranking(*scored) for scored in dense]
            dense = [by_id(*scored) for scored in dense]  # fusion looks scores up by id
        lexical = lexical or self._lexical_best(queries, depth)
        if mode == "lexical":  # BM25 alone, passage and article evidence combined as in hybrid
            weights = dataclasses.replace(weights, dense=0.0, document_dense=0.0)
        else:
            dense = [self._with_lexical_hits(vector, ranked, passages)
                     for vector, ranked, passages in zip(vectors, dense, lexical)]
        return [fuse(dense_ranked, passages, self._article_bm25(query, dense_ranked, passages), self._document_row,
                     weights)
                for query, passages, dense_ranked in zip(queries, lexical, dense)]

    def _bylines_first(self, query: str, ranked: Ranking) -> Ranking:
        """For a question that asks who wrote an article, each leading article's by-line
        passage just above its best passage (search/retrieval/byline.py)."""
        if not byline.asks_for_author(query) or not len(ranked[0]):
            return ranked
        leading = byline.leading_articles(ranked, self._document_row)
        best = self._passages({int(ranked[0][at]) for _, at in leading})
        doc_ids = {row["doc_id"] for row in best.values()}
        found: dict[int, int] = {}
        for row in sorted(self._passages(set(self._store.passages_of(doc_ids))).values(), key=lambda r: r["id"]):
            if byline.is_byline(row["text"], row["author"]):
                found.setdefault(int(self._document_row[row["id"]]), row["id"])
        return byline.bylines_first(ranked, found, self._document_row)

    def _dense(self, vectors: np.ndarray, depth: int, weights: Weights, allowed: np.ndarray | None = None,
               where: str | None = None) -> list[Ranking]:
        """The nearest passages to each vector, each scored with its best sentence mixed in
        (the first SENTENCE_DEPTH): in the vector index's order, which those scores may not keep."""
        all_scores, all_ids = (self._vectors.search(vectors, depth, where=where) if where else
                               self._vectors.search(vectors, depth, allowed))
        dense = [(ids[ids >= 0], scores[ids >= 0].astype(np.float64)) for scores, ids in zip(all_scores, all_ids)]
        if self._sentence_range is not None and weights.sentence > 0:
            dense = [(ranked[0], blended(ranked, self._best_sentences(vector, ranked[0][:self.SENTENCE_DEPTH]),
                                         weights.sentence))
                     for ranked, vector in zip(dense, vectors)]
        return dense

    def _with_feedback(self, vector: np.ndarray, ranked: Ranking, mode: str, filters: Filters,
                       allowed: np.ndarray | None, weights: Weights | None = None) -> Ranking:
        """A hybrid ranking (filtered, in time) past its head merged with a search for the
        question's vector moved toward its best passages (search/retrieval/feedback.py)."""
        weights = weights or self.weights
        if mode != "hybrid" or weights.feedback <= 0 or not len(ranked[0]):
            return ranked
        moved = feedback.moved(vector, self._vectors.vectors(ranked[0][:feedback.FEEDBACK_PASSAGES]), weights.feedback)
        where = self._where(filters) if filters else None
        found = self._dense(moved[None, :], min(feedback.DEPTH, self._count), weights, allowed, where)[0]
        return feedback.with_tail(ranked, ranking(*found), self._document_row, self._duplicates.group_of)

    def _where(self, filters: Filters) -> str | None:
        """The filters as an index in Milvus's own expression (it is asked with them rather
        than a mask); None for an index directory."""
        return milvus_index.where(filters, self._store.row_of) if self._layout is None else None

    def _article_bm25(self, query: str, dense: Ranking, passages: Ranking) -> Ranking:
        """BM25 of the whole articles of the candidate passages, by row: every candidate's
        article gets its own score, however far down a ranking of all the articles it
        would come (at a million passages most candidates' articles are not among the
        best 1,000), for the cost of looking those articles up."""
        rows = np.unique(self._document_row[union(dense[0], passages[0])])
        return rows, self._document_lexical.scores_of(search_terms(query), rows)

    def _within(self, query: str, vector, ranked: Ranking, filters: Filters, depth: int,
                mode: str) -> tuple[Ranking, np.ndarray | None]:
        """`ranked` limited to what `filters` allow, and their mask (None: no filter)."""
        if not filters:
            return ranked, None
        if vector is None:  # the evaluation's lexical mode: the filtered search still takes a vector
            vector = self._query_vectors([query])[0]
        allowed = self._allowed(filters)
        return self._filtered(query, vector, ranked, allowed, depth, mode, filters), allowed

    def _in_time(self, query: str, ranked: Ranking, as_of: str | None, weights: Weights | None = None) -> Ranking:
        weights = weights or self.weights
        return self._dates.in_time(query, ranked, as_of, weights.recency, weights.half_life)

    def _with_lexical_hits(self, vector: np.ndarray, dense: Ranking, lexical: Ranking) -> Ranking:
        """The dense list (by id) with the cosines of the passages only BM25 found: without
        them such a passage, and its article, would count as the least similar of all
        (looking up only BM25's best 300 of them cost SciFact 0.003 nDCG@10 and 0.007 Recall@100)."""
        ids = dense[0]  # in id order, as are BM25's
        at = np.minimum(np.searchsorted(ids, lexical[0]), max(len(ids) - 1, 0))
        missing = lexical[0][ids[at] != lexical[0]] if len(ids) else lexical[0]
        if not len(missing):
            return dense
        return by_id(np.concatenate((ids, missing)),
                     np.concatenate((dense[1], self._vectors.scores(vector, missing).astype(np.float64))))

    def _query_vectors(self, queries: list[str]) -> np.ndarray:
        """Query embeddings, from the cache of recent ones when asked before."""
        out = np.empty((len(queries), self.embedder.dimension), dtype=np.float32)
        with self._cache_lock:
            cached = [self._query_cache.get(q) for q in queries]
            for query, vector in zip(queries, cached):
                if vector is not None:
                    self._query_cache.move_to_end(query)  # recently used: evicted last
        for i, (query, vector) in enumerate(zip(queries, cached)):
            if vector is None:
                vector = self.embedder.embed([query], batch_size=1)[0]
                with self._cache_lock:
                    self._query_cache[query] = vector
                    while len(self._query_cache) > self.query_cache_size:
                        self._query_cache.popitem(last=False)
            out[i] = vector
        return out

    def _lexical_best(self, queries: list[str], depth: int) -> list[Ranking]:
        """BM25's best passages per query, in id order with their scores (LexicalIndex.best_of)."""
        return [self._passage_lexical.best_of(words, depth) for words in map(search_terms, queries)]

    def _best_sentences(self, vector: np.ndarray, pids: np.ndarray) -> np.ndarray:
        """Each passage's best sentence similarity to the query; NaN for a passage
        without sentence vectors (and for none of `pids`, where `blended` keeps the
        passage's own score)."""
        best = np.full(len(pids), np.nan)
        if isinstance(self._sentence_vectors, milvus_index.MilvusSentences):  # scored where they are
            found = self._sentence_vectors.best_per_passage(vector, pids[self._sentence_range[pids, 1] > 0])
            return np.array([found.get(int(p), np.nan) for p in pids])
        ranges = self._sentence_range[pids]
        has = ranges[:, 1] > 0
        if not has.any():
            return best
        first, count = ranges[has, 0], ranges[has, 1]
        offsets = np.concatenate(([0], np.cumsum(count)[:-1]))  # where each passage's run starts
        rows = np.repeat(first - offsets, count) + np.arange(count.sum())
        scores = self._sentence_vectors.scores(rows, vector)
        best[has] = np.maximum.reduceat(scores, offsets)
        return best

    def _hits(self, query: str, vector: np.ndarray, ranked: Ranking, k: int, collapse: bool,
              highlight: bool = True, offset: int = 0, allowed: np.ndarray | None = None,
              group: str = "none", diversity: int | None = None, mmr: float | None = None,
              by_order: bool = False, members_by: np.ndarray | None = None) -> list[Hit]:
        """The hits of a ranking; a collapsed result's copies are cited in the order of
        `members_by` (default: the ranking's), the fused relevance whatever the tail."""
        ids, scores = ranked
        # per article or capped per source: read on through the ranking until k are found
        wanted = max(len(ids), 1) if group != "none" or diversity else offset + k
        # MMR reorders a fixed head of the ranking, whatever the page (pages stay slices of one order)
        limit = offset + k if mmr is None else max(offset + k, mmr_order.POOL)
        wanted = max(wanted, limit)
        results = (self._duplicates.collapse(ranked, wanted, allowed, members_by) if collapse
                   else [(pid, score, [pid]) for pid, score in zip(ids[:wanted].tolist(), scores[:wanted].tolist())])
        more: dict[int, list[int]] = {}
        if group == "article":
            results, more = per_article(results, ranked, self._document_row, limit, self.MORE_PER_ARTICLE)
        elif group == "story":
            results, more = per_story(results, ranked, self._document_row, self._story_of_row, limit)
        if mmr is not None:
            head = results[:mmr_order.POOL]
            # newest first (sort=date): MMR keeps to that order but for near-repeats, not to relevance
            relevance = np.linspace(1, 0, len(head)) if by_order else np.array([score for _, score, _ in head])
            results = mmr_order.reorder(results, relevance,
                                        self._vectors.vectors(np.array([pid for pid, _, _ in head], dtype=np.int64)),
                                        mmr, len(results))
        if diversity:
            results = at_most_per_source(results, self._source_of_row[self._document_row], diversity, offset + k)
        else:
            results = results[:offset + k]
        results = results[offset:]
        if not results:
            return []
        rows = self._passages({pid for _, _, members in results for pid in members}
                              | {m for pid, _, _ in results for m in more.get(pid, [])})
        best = self._highlights(query, vector, [(pid, rows[pid]) for pid, _, _ in results]) if highlight else {}
        score_of = dict(zip(ids.tolist(), scores.tolist())) if more else {}
        return [Hit(rank, round(score, 6), rows[pid]["text"],
                    [self._citation(rows[m]) for m in members + (more[pid] if group == "story" else [])],
                    best.get(pid), [self._more(rows[m], score_of[m]) for m in more[pid]] if group == "article" else None,
                    self._story(pid))
                for rank, (pid, score, members) in enumerate(results, offset + 1)]

    def _story(self, pid: int) -> int | None:
        story = int(self._story_of_row[self._document_row[pid]])
        return story if story >= 0 else None

    STORY_DEPTH = 100  # passages a stories listing groups into stories

    def stories(self, query: str, k: int = 5, mode: str | None = None, filters: Filters = Filters(),
                as_of: str | None = None, dates: str = "interpreted") -> list[dict]:
        """The stories that answer `query`, best first: each story of the best STORY_DEPTH
        passages (uncollapsed), as `story` gives it, its articles' text the passage that
        answered where one did."""
        checked(StoriesRequest, {"query": query, "k": k})
        hits = self.search(query, self.STORY_DEPTH, mode, collapse=False, highlight=False, filters=filters,
                           as_of=as_of, dates=dates)
        answered: dict[int, dict[str, dict]] = {}
        for hit in hits:
            if hit.story is not None:
                cited = hit.citations[0]
                answered.setdefault(hit.story, {}).setdefault(cited.doc_id, {
                    "text": hit.text, "paragraph": cited.paragraph, "start": cited.start, "end": cited.end})
        return [self.story(story, found) for story, found in list(answered.items())[:k]]

    def story(self, story: int, passages: dict[str, dict] | None = None) -> dict:
        """One story: `id`, `label`, `first_published`, `last_published`, `articles`,
        `sources` and its `timeline` (search/retrieval/stories.py).

        Raises:
            StoryNotFound: no live article is in that story."""
        rows = np.flatnonzero((self._story_of_row == story) & self._store.live_documents[:len(self._story_of_row)])
        if not len(rows):
            raise StoryNotFound(f"no story with id {story!r} in the index")
        return {"id": int(story), **timeline(self._store.documents_by_row(rows), passages)}

    @staticmethod
    def _more(row: dict, score: float) -> dict:
        return {"text": row["text"], "paragraph": row["paragraph"], "start": row["start"], "end": row["end"],
                "score": round(score, 6)}

    def facets(self, query: str, fields: list[str], mode: str | None = None, filters: Filters = Filters(),
               as_of: str | None = None, dates: str = "interpreted") -> dict[str, list[dict]]:
        """Counts of the articles the query's best FACET_DEPTH passages come from, by each
        of `fields` ("source", "author", "published_month"), most first: what the first
        FACET_DEPTH uncollapsed results cite, counted once per article."""
        hits = self.search(query, self.FACET_DEPTH, mode, collapse=False, highlight=False, filters=filters,
                           as_of=as_of, dates=dates)
        return count_facets([h.citations[0] for h in hits], fields)

    def _highlights(self, query: str, vector: np.ndarray, hits: list[tuple[int, dict]]) -> dict[int, Highlight]:
        """Each hit's answering sentence (one store read and one read of sentence vectors
        for all of them: an index in Milvus answers each read over the network)."""
        spans: dict[int, list] = {pid: [] for pid, _ in hits}
        for row in self._store.sentences_of(spans):
            spans[row["passage_id"]].append(row)
        runs = {pid: (spans[pid][0]["id"], spans[pid][-1]["id"] + 1) for pid, _ in hits if spans[pid]}
        vectors = None
        if self._sentence_vectors is not None and runs:
            vectors = self._sentence_vectors.rows(np.concatenate([np.arange(*run) for run in runs.values()]))
        out, at = {}, 0
        for pid, row in hits:
            mine = None
            if vectors is not None and pid in runs:
                count = runs[pid][1] - runs[pid][0]
                mine, at = vectors[at:at + count], at + count
            out[pid] = best_sentence(query, vector, row["start"], row["text"],
                                     [(s["start"], s["end"]) for s in spans[pid]], mine)
        return out

    def _passages(self, ids: set[int]) -> dict[int, dict]:
        return {row["id"]: row for row in self._store.passage_rows(ids)}

    def _sentence_spans(self, citation: Citation) -> list[tuple[int, int]]:
        """The sentences of the passages within a citation's span, as (start, end) in its document."""
        return self._store.sentence_spans(citation.doc_id, citation.start, citation.end)

    def _with_neighbours(self, hits: list[Hit], neighbours: int) -> list[Hit]:
        """Each hit widened to the `neighbours` passages of its article either side, as one
        span of the article's text; a hit already inside an earlier one's span is left out,
        and a span stops where an earlier one of the same article starts or ends."""
        out, taken = [], {}  # doc_id -> the spans given so far
        for hit in hits:
            cited = hit.citations[0]
            rows = self._store.passage_spans(cited.doc_id)
            at = next(i for i, (start, _) in enumerate(rows) if start == cited.start)
            spans = taken.setdefault(cited.doc_id, [])
            if any(a <= cited.start and cited.end <= b for a, b in spans):
                continue
            start = rows[max(at - neighbours, 0)][0]
            end = rows[min(at + neighbours, len(rows) - 1)][1]
            start = max([start] + [b for a, b in spans if b <= cited.start])
            end = min([end] + [a for a, b in spans if a >= cited.end])
            spans.append((start, end))
            text = self._store.text_span(cited.doc_id, start, end)
            out.append(dataclasses.replace(hit, text=text, citations=[
                dataclasses.replace(cited, start=start, end=end), *hit.citations[1:]]))
        return out

    @staticmethod
    def _citation(row: dict) -> Citation:
        return Citation(row["doc_id"], row["title"], row["source"], row["paragraph"], row["start"], row["end"],
                        row["published"], row["author"])

    def document(self, doc_id: str) -> dict:
        """A document's metadata, full text and passage count.

        Raises:
            DocumentNotFound: no document with that id in the index.
        """
        row = self._store.document(doc_id)
        if row is None:
            raise DocumentNotFound(f"no document with id {doc_id!r} in the index")
        return row

    def describe(self) -> dict:
        """The manifest summary that /health reports."""
        m = self.manifest
        return {"index": str(self.root), "generation": self.generation, "format_version": m["format_version"], "model": m["model"]["name"],
                "dimension": m["model"]["dimension"], "documents": m["counts"]["documents"],
                "passages": m["counts"]["passages"], "built_at": m["built_at"],
                "vector_index": m["vector_index"]["type"], "mode": self.mode}
