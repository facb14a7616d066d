"""The core: a `Searcher` over one index directory.

HTTP, the `ask` CLI and Python callers all go through `Searcher.search`, and all of them
serialise the same `Hit` and `Citation` dataclasses.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import store
from .embedder import Embedder, canonical_model_name, get_embedder
from .errors import BadRequest, DocumentNotFound

MAX_K = 100
MAX_QUERY_CHARS = 1000


@dataclass(frozen=True)
class Citation:
    doc_id: str
    title: str | None
    source: str  # file name, or the article's URL when it has one
    paragraph: int  # 1-based paragraph ordinal in the cleaned article
    start: int  # the document's original text[start:end] is the passage
    end: int


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float  # cosine similarity of query and passage
    text: str
    citations: list[Citation] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def validate_query(query, k) -> tuple[str, int]:
    """Check a query and k as a caller gave them; raise BadRequest saying what is wrong."""
    if not isinstance(query, str):
        raise BadRequest("invalid_query", "query must be a string")
    if not query.strip():
        raise BadRequest("empty_query", "query is empty: ask a question in words")
    if len(query) > MAX_QUERY_CHARS:
        raise BadRequest("query_too_long", f"query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("invalid_query", "query contains a lone surrogate: send valid Unicode text") from None
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise BadRequest("invalid_k", f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    return query, k


class Searcher:
    """Semantic search over an index directory built by `python -m indexer build`."""

    def __init__(self, index_dir: Path, manifest: dict, embedder: Embedder):
        import faiss

        self.index_dir = Path(index_dir)
        self.manifest = manifest
        self.embedder = embedder
        self._vectors = faiss.read_index(str(self.index_dir / store.VECTORS))
        self._local = threading.local()  # one read-only SQLite connection per thread

    @classmethod
    def open(cls, index_dir: str | Path, model: str | None = None, verify: bool = True) -> "Searcher":
        """Open an index for searching, loading its model once per process.

        Args:
            index_dir: a directory written by `python -m indexer build`.
            model: the model the caller means to search with (default: the bundled
                all-MiniLM-L6-v2); it must be the one the index was built with.
            verify: check the index files against the manifest's checksums.

        Raises:
            IndexNotFound: no index there (the message says what to run).
            IndexMismatch: built with another model, dimension or format version.
            IndexCorrupt: the files fail their checksums.
        """
        index_dir = Path(index_dir)
        manifest = store.read_manifest(index_dir)
        model_name = canonical_model_name(model)
        store.check_model(index_dir, manifest, model_name)  # before paying for a model load
        if verify:
            store.verify_checksums(index_dir, manifest)
        embedder = get_embedder(model_name)
        store.check_model(index_dir, manifest, model_name, embedder.dimension)
        return cls(index_dir, manifest, embedder)

    @property
    def _db(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = store.connect(self.index_dir / store.STORE)
        return conn

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The `k` passages closest in meaning to `query`, best first.

        Raises:
            BadRequest: empty or over-long query, or k outside 1..100.
        """
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: list[str], k: int = 5) -> list[list[Hit]]:
        """`search` for several queries at once: one model call for all of them."""
        for query in queries:
            validate_query(query, k)
        vectors = self.embedder.embed(queries)
        scores, ids = self._vectors.search(vectors, min(k, self._vectors.ntotal))
        rows = self._passages({int(i) for i in ids.ravel() if i >= 0})
        return [[self._hit(rank, float(score), rows[int(pid)])
                 for rank, (score, pid) in enumerate(zip(s, i), 1) if pid >= 0]
                for s, i in zip(scores, ids)]

    def _passages(self, ids: set[int]) -> dict[int, dict]:
        marks = ",".join("?" * len(ids))
        cursor = self._db.execute(
            f'SELECT p.id, p.doc_id, p.paragraph, p.start, p."end", p.text, d.title, d.source '
            f"FROM passages p JOIN documents d USING (doc_id) WHERE p.id IN ({marks})", sorted(ids))
        return {row["id"]: dict(row) for row in cursor}

    @staticmethod
    def _hit(rank: int, score: float, row: dict) -> Hit:
        citation = Citation(row["doc_id"], row["title"], row["source"], row["paragraph"], row["start"], row["end"])
        return Hit(rank, round(score, 6), row["text"], [citation])

    def document(self, doc_id: str) -> dict:
        """A document's metadata, full text and passage count.

        Raises:
            DocumentNotFound: no document with that id in the index.
        """
        row = self._db.execute(
            "SELECT doc_id, title, source, url, published, text, "
            "(SELECT COUNT(*) FROM passages p WHERE p.doc_id = d.doc_id) AS passages "
            "FROM documents d WHERE doc_id = ?", (doc_id,)).fetchone()
        if row is None:
            raise DocumentNotFound(f"no document with id {doc_id!r} in the index")
        return dict(row)

    def describe(self) -> dict:
        """The manifest summary that /health reports."""
        m = self.manifest
        return {"index": str(self.index_dir), "format_version": m["format_version"], "model": m["model"]["name"],
                "dimension": m["model"]["dimension"], "documents": m["counts"]["documents"],
                "passages": m["counts"]["passages"], "built_at": m["built_at"],
                "vector_index": m["vector_index"]["type"]}
