"""Incremental updates: add, replace and remove documents without a full rebuild.

An update writes the next generation from the current one: the documents that stay keep
their passages, sentences and vectors (copied, never re-embedded; passage and sentence
ids are renumbered densely in their old order), new and changed documents are cleaned,
chunked and embedded, and the BM25 indexes are rebuilt from the stored text (tokenising
is cheap next to embedding). A document whose text hashes as before is left alone.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from search.embedding.embedder import get_embedder
from search.errors import BuildError, DocumentNotFound, WouldEmptyIndex
from search.index import generations, store, vector_index, vector_store
from search.index.lexical import write_lexical
from search.index.sentence_vectors import SentenceVectors
from search.index.sentence_vectors import save as save_sentence_vectors

from . import duplicates, sources
from .build import Additions, recorded_options, write_manifest
from .crashpoints import crashpoint

log = logging.getLogger("indexer")


@dataclass
class UpdateSummary:
    index_dir: Path
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[sources.Skipped] = field(default_factory=list)
    documents: int = 0
    passages: int = 0
    embedded_passages: int = 0
    generation: str | None = None
    seconds: float = 0.0
    embed_seconds: float = 0.0  # of `seconds`, embedding the new passages and sentences

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced or self.removed)

    def __str__(self) -> str:
        head = (f"added {len(self.added)}, replaced {len(self.replaced)}, removed {len(self.removed)}, "
                f"unchanged {len(self.unchanged)}; skipped {len(self.skipped)}")
        if not self.changed:
            return f"{head}: index at {self.index_dir} not changed ({self.generation})"
        return (f"{head}: {self.documents} documents, {self.passages} passages "
                f"({self.embedded_passages} embedded) in {self.seconds:.1f} s -> {self.index_dir} {self.generation}")


def update(index_dir: str | Path, srcs: list[str | Path] = (), remove: list[str] = (),
           documents: list[sources.Document] = (), strict: bool = False, embedder=None,
           batch_size: int = 32) -> UpdateSummary:
    """Add the articles in `srcs` and `documents`, and remove the documents `remove`.

    A document whose id is already indexed replaces it when its text changed and is left
    alone when it did not. Everything is checked before anything is written: an unknown
    id to remove, or (with `strict`) a bad input, changes nothing.

    Raises:
        IndexNotFound, IndexCorrupt, IndexMismatch: no usable index at `index_dir`.
        DocumentNotFound: an id in `remove` is not in the index.
        WouldEmptyIndex: the update would remove every document.
        BuildError: (with `strict`) a bad input, or two inputs with the same id.
    """
    started = time.perf_counter()
    index_dir = Path(index_dir)
    files, skipped = sources.discover(srcs)
    incoming, skipped = _read(files, list(documents), skipped, strict)
    with generations.writer(index_dir):
        old_dir = generations.current(index_dir)
        manifest = store.read_manifest(old_dir)
        store.verify_checksums(old_dir, manifest)
        crashpoint("update:opened")
        summary = UpdateSummary(index_dir, skipped=skipped, generation=generations.current_name(index_dir))
        with store.connect(old_dir / store.STORE) as old:
            hashes = dict(old.execute("SELECT doc_id, sha256 FROM documents"))
        unknown = [doc_id for doc_id in remove if doc_id not in hashes]
        if unknown:
            raise DocumentNotFound(f"no document with id {unknown[0]!r} in the index; nothing was changed")
        for doc in incoming:
            if doc.doc_id not in hashes:
                summary.added.append(doc.doc_id)
            elif hashes[doc.doc_id] != hashlib.sha256(doc.text.encode()).hexdigest():
                summary.replaced.append(doc.doc_id)
            else:
                summary.unchanged.append(doc.doc_id)
        summary.removed = sorted(set(remove) - {d.doc_id for d in incoming})
        if not summary.changed:
            summary.documents, summary.passages = manifest["counts"]["documents"], manifest["counts"]["passages"]
            return summary
        embedder = embedder or get_embedder(manifest["model"]["name"], manifest["model"].get("backend"))
        store.check_model(old_dir, manifest, embedder.name, embedder.dimension)
        changed = set(summary.added) | set(summary.replaced)
        tmp = generations.scratch(index_dir)
        try:
            _write(old_dir, manifest, tmp, [d for d in incoming if d.doc_id in changed],
                   set(summary.removed) | set(summary.replaced), embedder, batch_size, summary, started, strict)
            summary.generation = generations.publish(index_dir, tmp, crashpoint)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    summary.seconds = time.perf_counter() - started
    return summary


def _read(files: list[Path], documents: list[sources.Document], skipped: list[sources.Skipped],
          strict: bool) -> tuple[list[sources.Document], list[sources.Skipped]]:
    """Every incoming document, once; a second one with the same id is an error."""
    seen: dict[str, str] = {}
    out = []
    items = [(doc, "request") for doc in documents] + [(item, str(p)) for p in files for item in sources.read(p)]
    for item, where in items:
        if isinstance(item, sources.Document) and item.doc_id in seen:
            item = sources.Skipped(where, f"duplicate doc_id {item.doc_id!r} (first in {seen[item.doc_id]})")
        if isinstance(item, sources.Skipped):
            if strict:
                raise BuildError(f"{item} (--strict: nothing was changed)")
            log.warning("skipped %s", item)
            skipped.append(item)
            continue
        seen[item.doc_id] = where
        out.append(item)
    return out, skipped


def _write(old_dir: Path, manifest: dict, tmp: Path, incoming: list[sources.Document], gone: set[str],
           embedder, batch_size: int, summary: UpdateSummary, started: float, strict: bool = False) -> None:
    import faiss

    options = recorded_options(manifest)
    conn = store.connect(tmp / store.STORE, readonly=False)
    conn.executescript(store.SCHEMA)
    kept, kept_sentences, kept_documents = _copy_kept(conn, old_dir / store.STORE, gone)
    crashpoint("update:copied")
    batch = Additions(embedder, options, first_passage=len(kept), first_sentence=len(kept_sentences))
    for doc in incoming:
        if not batch.add(conn, doc):
            if strict:  # a bad input changes nothing, the old version of its document included
                raise BuildError(f"{doc.source}: document {doc.doc_id!r} has no article text "
                                 "(--strict: nothing was changed)")
            summary.skipped.append(sources.Skipped(doc.source, f"document {doc.doc_id!r} has no article text"))
            summary.added = [d for d in summary.added if d != doc.doc_id]
            summary.replaced = [d for d in summary.replaced if d != doc.doc_id]
            if doc.doc_id in gone:  # its old version goes: the new one is not an article
                summary.removed.append(doc.doc_id)
    if not len(kept) + len(batch.texts):
        raise WouldEmptyIndex("the update would leave the index without documents; nothing was changed "
                              "(build a new index instead)")
    conn.commit()
    lexical_files = write_lexical(conn, tmp, options.title_context, old_dir, kept, kept_documents)
    crashpoint("update:lexical")

    if vector_store.parse(options.vector_store) is None:
        old_index = faiss.read_index(str(old_dir / store.VECTORS))
        kept_vectors = _reconstruct(old_index, kept)
    else:  # the old generation's Milvus collection holds them
        old_index = None
        kept_vectors = (vector_store.open_store(manifest, old_dir).vectors(kept) if len(kept)
                        else np.empty((0, embedder.dimension), dtype=np.float32))
    embedding = time.perf_counter()
    new_vectors = (embedder.embed(batch.texts, batch_size=batch_size) if batch.texts
                   else np.empty((0, embedder.dimension), dtype=np.float32))
    summary.embed_seconds += time.perf_counter() - embedding
    crashpoint("update:embedded")
    vectors = np.vstack([kept_vectors, new_vectors]).astype(np.float32)
    index = _vector_index(old_index, vectors, options.vector_index)
    doc_of = [d for (d,) in conn.execute("SELECT doc_id FROM passages ORDER BY id")]
    grouped = _groups(conn, old_dir / store.STORE, kept, vectors, doc_of, index)
    conn.executemany("INSERT INTO duplicates (passage_id, group_id) VALUES (?, ?)", sorted(grouped.items()))
    conn.commit()
    summary.documents = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    conn.close()
    data_files = [store.STORE] + lexical_files
    if options.sentence_vectors:
        old_sentences = SentenceVectors.open(old_dir)
        embedding = time.perf_counter()
        new_sentences = (embedder.embed(batch.sentence_texts, batch_size=batch_size * 2) if batch.sentence_texts
                         else np.empty((0, old_sentences.dimension), dtype=np.float32))
        summary.embed_seconds += time.perf_counter() - embedding
        data_files += save_sentence_vectors(tmp, new_sentences, kept=(old_sentences, kept_sentences))
        crashpoint("update:sentences")
    # last before the manifest: an update that fails before this leaves no Milvus collection behind
    described, vector_files = vector_store.publish(options.vector_store, index, vectors, tmp)
    data_files += vector_files
    crashpoint("update:vectors")
    summary.passages = len(vectors)
    summary.embedded_passages = len(batch.texts)
    counts = {"documents": summary.documents, "passages": summary.passages,
              "skipped": manifest["counts"].get("skipped", 0),
              "sentences": len(kept_sentences) + len(batch.sentence_texts)}
    changes = {"added": summary.added, "replaced": summary.replaced, "removed": summary.removed}
    write_manifest(tmp, {**manifest, "counts": counts, "updated_from": summary.generation,
                         "changes": {k: len(v) for k, v in changes.items()}},
                   described, grouped, data_files, started, point="update:manifest")


def _copy_kept(conn: sqlite3.Connection, old_store: Path, gone: set[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copy the documents that stay, their passages and sentences renumbered densely in
    their old order; returns the old ids of the passages and sentences kept, and the old
    rows (positions by rowid) of the documents kept."""
    conn.execute("ATTACH DATABASE ? AS old", (str(old_store),))
    conn.execute("CREATE TEMP TABLE gone (doc_id TEXT PRIMARY KEY)")
    conn.executemany("INSERT INTO gone VALUES (?)", [(d,) for d in gone])
    kept = np.array([i for (i,) in conn.execute(
        "SELECT id FROM old.passages WHERE doc_id NOT IN (SELECT doc_id FROM gone) ORDER BY id")], dtype=np.int64)
    conn.execute("CREATE TEMP TABLE pmap (old INTEGER PRIMARY KEY, new INTEGER NOT NULL)")
    conn.executemany("INSERT INTO pmap VALUES (?, ?)", zip(kept.tolist(), range(len(kept))))
    kept_sentences = np.array([i for (i,) in conn.execute(
        "SELECT s.id FROM old.sentences s JOIN pmap m ON m.old = s.passage_id ORDER BY s.id")], dtype=np.int64)
    conn.execute("CREATE TEMP TABLE smap (old INTEGER PRIMARY KEY, new INTEGER NOT NULL)")
    conn.executemany("INSERT INTO smap VALUES (?, ?)", zip(kept_sentences.tolist(), range(len(kept_sentences))))
    # in rowid order: the document BM25 index's rows follow it
    author = "author" if store.has_author(conn, "old") else "NULL"
    conn.execute("INSERT INTO documents (doc_id, title, source, url, published, author, sha256, text) "
                 f"SELECT doc_id, title, source, url, published, {author}, sha256, text FROM old.documents "
                 "WHERE doc_id NOT IN (SELECT doc_id FROM gone) ORDER BY rowid")
    conn.execute('INSERT INTO passages (id, doc_id, paragraph, start, "end", text) '
                 'SELECT m.new, p.doc_id, p.paragraph, p.start, p."end", p.text '
                 "FROM old.passages p JOIN pmap m ON m.old = p.id ORDER BY m.new")
    conn.execute('INSERT INTO sentences (id, passage_id, start, "end") '
                 'SELECT sm.new, m.new, s.start, s."end" FROM old.sentences s '
                 "JOIN smap sm ON sm.old = s.id JOIN pmap m ON m.old = s.passage_id ORDER BY sm.new")
    conn.commit()
    kept_documents = np.array([row for row, (doc_id,) in enumerate(conn.execute(
        "SELECT doc_id FROM old.documents ORDER BY rowid")) if doc_id not in gone], dtype=np.int64)
    return kept, kept_sentences, kept_documents


def _reconstruct(index, ids: np.ndarray) -> np.ndarray:
    """The stored vectors of passages `ids` (exact for flat; the 8-bit codes decoded for
    IVF-SQ8, which re-encode to the same codes in an index with the same training)."""
    import faiss

    if not len(ids):
        return np.empty((0, index.d), dtype=np.float32)
    if isinstance(index, faiss.IndexIVF):
        index.make_direct_map()
    return index.reconstruct_batch(ids)


def _vector_index(old_index, vectors: np.ndarray, requested: str):
    """The new vector index: an IVF index keeps its trained clusters (retraining at every
    update would move every vector's list); otherwise the kind the size calls for."""
    import faiss

    kind = vector_index.choose(len(vectors), requested)
    if kind == "ivf" and isinstance(old_index, faiss.IndexIVF):
        index = faiss.clone_index(old_index)
        index.reset()
        index.set_direct_map_type(faiss.DirectMap.NoMap)  # _reconstruct made one; the searcher needs none
        index.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))
        return index
    return vector_index.build(vectors, kind)


def _groups(conn: sqlite3.Connection, old_store: Path, kept: np.ndarray, vectors: np.ndarray,
            doc_of: list[str], index) -> dict[int, int]:
    """Near-duplicate groups: a kept group that lost no member stays as it was; new
    passages and the rest of a group that lost one look for their copies again."""
    old_to_new = {int(o): n for n, o in enumerate(kept.tolist())}
    members: dict[int, list[int]] = {}
    with store.connect(old_store) as old:
        for pid, group in old.execute("SELECT passage_id, group_id FROM duplicates"):
            members.setdefault(group, []).append(pid)
    linked, rows = [], list(range(len(kept), len(vectors)))
    for group in members.values():
        survivors = [old_to_new[p] for p in group if p in old_to_new]
        if len(survivors) == len(group):
            linked += [(survivors[0], s) for s in survivors[1:]]
        else:
            rows += survivors
    return duplicates.groups(vectors, doc_of, index, rows=rows, linked=linked)
