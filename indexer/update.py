"""Incremental updates: add, replace and remove documents without a full rebuild.

An update writes the next generation from the current one: the previous generation's
segments carried as hard links, one new segment holding only the new documents (their
store rows, vectors, sentence vectors, BM25 counts, duplicate links), and the removed
and replaced passages marked deleted (search/index/segments.py). A merge, by policy or
on demand, writes everything live as one base instead: ids renumbered densely, vectors
copied, never re-embedded. A document whose text hashes as before is left alone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from search.embedding.embedder import get_embedder
from search.errors import BuildError, DocumentNotFound, WouldEmptyIndex
from search.index import generations, segments, store, story_store, vector_index, vector_store
from search.index.lexical import write_lexical, write_segment_lexical
from search.index.segment_store import SegmentedStore, mark_dead
from search.index.segment_store import fold as fold_store
from search.index.sentence_vectors import save as save_sentence_vectors
from search.index.yielding import give_way
from search.retrieval.collapse import Duplicates

from . import duplicates, sources, stories
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
    merged: bool = False  # the generation written is one base (every segment merged)
    segments: int = 1  # segments in the generation written (0: an index in Milvus, updated in place)
    locked_seconds: float = 0.0  # of a background merge's `seconds`, those it held the writer lock

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced or self.removed)

    def __str__(self) -> str:
        head = (f"added {len(self.added)}, replaced {len(self.replaced)}, removed {len(self.removed)}, "
                f"unchanged {len(self.unchanged)}; skipped {len(self.skipped)}")
        if not self.changed and not self.merged:
            return f"{head}: index at {self.index_dir} not changed ({self.generation})"
        layout = ("merged into one segment" if self.merged else "written in place" if not self.segments
                  else f"{self.segments} segments")
        return (f"{head}: {self.documents} documents, {self.passages} passages "
                f"({self.embedded_passages} embedded; {layout}) in {self.seconds:.1f} s "
                f"-> {self.index_dir} {self.generation}")


def update(index_dir: str | Path, srcs: list[str | Path] = (), remove: list[str] = (),
           documents: list[sources.Document] = (), strict: bool = False, embedder=None,
           batch_size: int = 32, merge: bool = False, background_merges: bool = False) -> UpdateSummary:
    """Add the articles in `srcs` and `documents`, and remove the documents `remove`.

    The new generation carries the previous one's segments and adds one holding the new
    passages (search/index/segments.py); the removed and replaced passages are marked
    deleted. When the segments grow too many, or too much of them is deleted (`MERGE_*`),
    or with `merge`, everything is merged into one base instead, ids renumbered densely.
    With `background_merges` the policy never merges here: the caller merges in the
    background when `merge_due` says so (indexer/merge.py).

    A document whose id is already indexed replaces it when its text changed and is left
    alone when it did not. Everything is checked before anything is written: an unknown
    id to remove, or (with `strict`) a bad input, changes nothing.

    Raises:
        IndexNotFound, IndexCorrupt, IndexMismatch: no usable index at `index_dir`.
        DocumentNotFound: an id in `remove` is not in the index.
        WouldEmptyIndex: the update would remove every document.
        BuildError: (with `strict`) a bad input, or two inputs with the same id.
    """
    from search.index.milvus_index import is_milvus

    if is_milvus(index_dir):  # an index held in Milvus: its rows upserted and deleted
        from .milvus_update import update as update_milvus

        return update_milvus(index_dir, srcs, remove, documents, strict, embedder, batch_size)
    started = time.perf_counter()
    index_dir = Path(index_dir)
    files, skipped = sources.discover(srcs)
    incoming, skipped = _read(files, list(documents), skipped, strict)
    with generations.writer(index_dir):
        old_dir = generations.current(index_dir)
        manifest = store.read_manifest(old_dir)
        layout = segments.Layout.of(manifest, old_dir)
        appending = not merge and _appendable(manifest, layout, policy=not background_merges)
        # what the update reads: all of it for a merge; a new segment's update reads only
        # the documents it names, and carries the segments as they were verified when written
        if not appending:
            store.verify_checksums(old_dir, manifest)
        crashpoint("update:opened")
        summary = UpdateSummary(index_dir, skipped=skipped, generation=generations.current_name(index_dir))
        old = SegmentedStore(layout, old_dir)  # the documents this update names, not all
        hashes = {doc_id: row["sha256"] for doc_id, (_, row) in
                  old.live_documents_by_id({d.doc_id for d in incoming} | set(remove)).items()}
        old.close()
        give_way()
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
        if not summary.changed and not merge:
            summary.documents, summary.passages = manifest["counts"]["documents"], manifest["counts"]["passages"]
            return summary
        embedder = embedder or get_embedder(manifest["model"]["name"], manifest["model"].get("backend"))
        store.check_model(old_dir, manifest, embedder.name, embedder.dimension)
        changed = set(summary.added) | set(summary.replaced)
        tmp = generations.scratch(index_dir)
        try:
            write = _append if appending else _write
            summary.merged = not appending
            after = write(old_dir, manifest, layout, tmp, [d for d in incoming if d.doc_id in changed],
                          set(summary.removed) | set(summary.replaced), embedder, batch_size, summary, started, strict)
            give_way()
            summary.generation = generations.publish(index_dir, tmp, crashpoint)
            if after is not None:
                after()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    summary.seconds = time.perf_counter() - started
    return summary


def read_sources(srcs: list[str | Path], strict: bool = False) -> tuple[list[sources.Document], list[sources.Skipped]]:
    """The documents in `srcs` as an update reads them (each id once, article text only),
    and what it skipped; with `strict`, BuildError on the first bad input."""
    from .clean import clean

    files, skipped = sources.discover(srcs)
    documents, skipped = _read(files, [], skipped, strict)
    kept = []
    for doc in documents:
        if clean(doc.text, doc.title).lines:
            kept.append(doc)
            continue
        item = _without_text(doc)
        if strict:
            raise BuildError(f"{item} (--strict: nothing was changed)")
        skipped.append(item)
    return kept, skipped


def _without_text(doc: sources.Document) -> sources.Skipped:
    return sources.Skipped(doc.source, f"document {doc.doc_id!r} has no article text")


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


def _add_all(conn, batch: Additions, incoming: list[sources.Document], gone: set[str], summary: UpdateSummary,
             strict: bool) -> None:
    """Store the incoming documents; one without article text is skipped (with `strict`,
    refused: nothing changes, the old version of its document included)."""
    for doc in incoming:
        if not batch.add(conn, doc):
            if strict:
                raise BuildError(f"{_without_text(doc)} (--strict: nothing was changed)")
            summary.skipped.append(_without_text(doc))
            summary.added = [d for d in summary.added if d != doc.doc_id]
            summary.replaced = [d for d in summary.replaced if d != doc.doc_id]
            if doc.doc_id in gone:  # its old version goes: the new one is not an article
                summary.removed.append(doc.doc_id)


def _empty_refused() -> WouldEmptyIndex:
    return WouldEmptyIndex("the update would leave the index without documents; nothing was changed "
                           "(build a new index instead)")


def _write(old_dir: Path, manifest: dict, layout: segments.Layout, tmp: Path, incoming: list[sources.Document],
           gone: set[str], embedder, batch_size: int, summary: UpdateSummary, started: float,
           strict: bool = False) -> None:
    """The next generation as one base: what stays copied and renumbered densely, the new
    documents added (a merge of every segment, and the path a Milvus-backed index takes)."""
    import faiss

    options = recorded_options(manifest)
    conn = store.create(tmp / store.STORE)
    old = SegmentedStore(layout, old_dir)
    kept, kept_sentences, kept_documents = _copy_kept(conn, old, gone)
    crashpoint("update:copied")
    give_way()
    batch = Additions(embedder, options, first_passage=len(kept), first_sentence=len(kept_sentences))
    _add_all(conn, batch, incoming, gone, summary, strict)
    give_way()
    if not len(kept) + len(batch.texts):
        raise _empty_refused()
    placed = stories.StoredStories([conn], manifest.get("next_story", 0))
    stories.unplace(placed, sorted(gone | _departing(manifest)))  # (their rows were copied: they leave their stories)
    stories.place(conn, placed)  # the new articles, and any an older index left without a story
    conn.commit()
    give_way()
    lexical_files = write_lexical(conn, tmp, options.title_context,
                                  lambda part: segments.postings(layout, old_dir, part), kept, kept_documents)
    crashpoint("update:lexical")
    give_way()

    if vector_store.parse(options.vector_store) is None:
        old_index = faiss.read_index(str(old_dir / store.VECTORS))
        kept_vectors = (_reconstruct(old_index, kept) if layout.simple
                        else segments.open_vectors(layout, manifest, old_dir).vectors(kept))
    else:  # the old generation's Milvus collection holds them
        old_index = None
        kept_vectors = (vector_store.open_store(manifest, old_dir).vectors(kept) if len(kept)
                        else np.empty((0, embedder.dimension), dtype=np.float32))
    embedding = time.perf_counter()
    new_vectors = (embedder.embed(batch.texts, batch_size=batch_size) if batch.texts
                   else np.empty((0, embedder.dimension), dtype=np.float32))
    summary.embed_seconds += time.perf_counter() - embedding
    crashpoint("update:embedded")
    give_way()
    vectors = np.vstack([kept_vectors, new_vectors]).astype(np.float32)
    index = _vector_index(old_index, vectors, options.vector_index)
    give_way()
    doc_of = [d for (d,) in conn.execute("SELECT doc_id FROM passages ORDER BY id")]
    grouped = _groups(old, kept, vectors, doc_of, index)
    old.close()
    give_way()
    conn.executemany("INSERT INTO duplicates (passage_id, group_id) VALUES (?, ?)", sorted(grouped.items()))
    conn.commit()
    summary.documents = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    conn.close()
    data_files = [store.STORE] + lexical_files
    if options.sentence_vectors:
        old_sentences = segments.open_sentences(layout, old_dir)
        embedding = time.perf_counter()
        new_sentences = batch.embed_sentences(embedder, new_vectors, batch_size * 2)
        summary.embed_seconds += time.perf_counter() - embedding
        data_files += save_sentence_vectors(tmp, new_sentences, kept=(old_sentences, kept_sentences))
        crashpoint("update:sentences")
    give_way()
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
    merged = {k: v for k, v in manifest.items()  # one base again
              if k not in ("segments", "next_segment", segments.OWN_STORES, DEPARTURES)}
    write_manifest(tmp, {**merged, "counts": counts, "updated_from": summary.generation, "next_story": placed.next_story,
                         "changes": {k: len(v) for k, v in changes.items()}},
                   described, grouped, data_files, started, point="update:manifest")


# A tiered merge policy. When an update finds more segments than MERGE_SEGMENTS beside the
# base (each costs every search a little), it first folds them into one (costing what they
# hold); when they hold more than MERGE_SHARE of the base's passages, or more than
# MERGE_DELETED of all passages are deleted, it merges everything into one base instead
# (costing the index, as rarely as that).
MERGE_SEGMENTS = 16
MERGE_SHARE = 0.25
MERGE_DELETED = 0.25
# Beside an IVF base, the folded passages stay flat (every vector searched: a story
# published a minute ago is found whatever cluster it falls in) until they hold CODE_AT
# passages; that fold codes them in the base's clusters, searched a few at a time as the
# base is. A flat search grows with them, a coded one hardly: past a few thousand beside
# 100k passages the flat one is the dearer (scripts/bench-folds).
CODE_AT = 5_000


def _fold_plan(layout: segments.Layout, directory: Path, milvus: bool):
    """What a fold does: (the segments it leaves as they are, the consecutive ones it folds
    into one, whether it codes them in the base's clusters)."""
    deltas = layout.segments[1:]
    if milvus or not segments.is_coded(layout.segments[0], directory):  # a flat base: all flat
        return (), deltas, False
    lead = 1 if segments.is_coded(deltas[0], directory) else 0  # (a fold's output comes first)
    if sum(s.size for s in deltas[lead:]) >= CODE_AT:
        return (), deltas, True
    # Size tiers, as Lucene's: a flat segment a fold wrote before is left as it is while it
    # holds more than the newer ones together, so that a passage is rewritten a few times,
    # not at every fold until CODE_AT, and the workers re-read only what a fold wrote. (At
    # least two segments are folded.)
    keep = lead
    while len(deltas) - keep > 2 and deltas[keep].size > sum(s.size for s in deltas[keep + 1:]):
        keep += 1
    return deltas[:keep], deltas[keep:], False


def _appendable(manifest: dict, layout: segments.Layout, policy: bool = True) -> bool:
    """Whether the next update may add a segment: an index of this format, with BM25 term
    counts and segment stores (an older index is migrated by merging it: every file
    rewritten), and (with `policy`) not too many segments or deletions."""
    if not layout.own_stores:
        return False
    from search.index.lexical import LexicalIndex

    if manifest["format_version"] not in store.APPENDABLE_FORMATS or not all(
            f"{part}/{LexicalIndex.COUNTS}" in manifest["checksums"]
            for part in (store.PASSAGE_LEXICAL, store.DOCUMENT_LEXICAL)):
        return False
    return not (policy and _merge_due(layout))


def _merge_due(layout: segments.Layout) -> bool:
    """The policy: whether everything should be merged into one base."""
    deleted = len(layout.deleted) / max(layout.passage_capacity, 1)
    base = layout.segments[0].passages
    share = (layout.passage_capacity - base[1]) / max(base[1] - base[0], 1)
    return deleted > MERGE_DELETED or (len(layout.segments) > MERGE_SEGMENTS and share > MERGE_SHARE)


def merge_due(index_dir: str | Path) -> bool:
    """Whether the index's current generation should be merged (the policy above)."""
    directory = generations.current(Path(index_dir))
    return _merge_due(segments.Layout.of(store.read_manifest(directory), directory))


def _append(old_dir: Path, manifest: dict, layout: segments.Layout, tmp: Path, incoming: list[sources.Document],
            gone: set[str], embedder, batch_size: int, summary: UpdateSummary, started: float,
            strict: bool = False):
    """The next generation as the previous one's segments (hard links to the same files),
    one new segment of the new passages with a store of its own, and the gone documents'
    passages marked deleted. Costs what the update changes. A Milvus-backed index's new
    vectors go into its collection (returned: what deletes the gone ones from it, once
    the generation is published)."""
    import faiss

    options = recorded_options(manifest)
    milvus = vector_store.parse(options.vector_store) is not None
    collection = vector_store.open_store(manifest, old_dir) if milvus else None
    number = manifest.get("next_segment", 1)
    folding = len(layout.segments) > MERGE_SEGMENTS  # (and small: else _appendable chose a merge)
    kept, refolded, coded = _fold_plan(layout, old_dir, milvus) if folding else ((), (), False)
    skip = (segments.DELETED, segments.DELETED_DOCUMENTS)
    gone_dirs = {s.name for s in refolded}
    carried = {name: digest for name, digest in manifest["checksums"].items()
               if name not in skip and "/".join(name.split("/")[:2]) not in gone_dirs}
    for name in carried:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        os.link(old_dir / name, tmp / name)
    give_way()
    old = SegmentedStore(layout, old_dir)
    written = []
    if folding:
        name = f"{segments.DIRECTORY}/s{number:06d}"
        folded, files = segments.fold(layout, old_dir, tmp, name, vectors=not milvus, only=refolded, coded=coded)
        give_way()
        fold_store(old, tmp / name / store.STORE, [layout.segments.index(s) for s in refolded])
        written += files + [f"{name}/{store.STORE}"]
        number += 1
        crashpoint("update:folded")
        give_way()
    found = old.live_documents_by_id(gone)
    gone_rows = [row["row"] for _, row in found.values()]
    gone_passages, gone_sentences = [], 0
    for doc_id, (part, _) in found.items():
        conn = old.connection(part)
        gone_passages += [i for (i,) in conn.execute("SELECT id FROM passages WHERE doc_id = ?", (doc_id,))]
        gone_sentences += conn.execute("SELECT COUNT(*) FROM sentences s JOIN passages p ON p.id = s.passage_id "
                                       "WHERE p.doc_id = ?", (doc_id,)).fetchone()[0]
    crashpoint("update:copied")
    name = f"{segments.DIRECTORY}/s{number:06d}"
    directory = tmp / name
    directory.mkdir(parents=True)
    conn = store.create(directory / store.STORE)
    first = layout.segments[-1]
    batch = Additions(embedder, options, first_passage=first.passages[1], first_sentence=first.sentences[1],
                      first_document=first.documents[1])
    _add_all(conn, batch, incoming, gone, summary, strict)
    give_way()
    placed = stories.StoredStories([old.connection(p) for p in range(len(old.parts))], manifest.get("next_story", 0))
    if batch.texts:  # (a segment is written: the deletions waiting leave their stories in it)
        stories.unplace(placed, sorted(gone | _departing(manifest)))
        departures = []
    else:
        departures = sorted(_departing(manifest) | gone)
    stories.place(conn, placed)
    give_way()
    counts = manifest["counts"]
    summary.documents = counts["documents"] - len(gone_rows) + batch.documents
    summary.passages = counts["passages"] - len(gone_passages) + len(batch.texts)
    if not summary.passages:
        raise _empty_refused()
    conn.commit()
    deleted = np.concatenate((layout.deleted, np.asarray(gone_passages, dtype=np.int64)))
    deleted_documents = np.concatenate((layout.deleted_documents, np.asarray(gone_rows, dtype=np.int64)))
    after = [layout.segments[0], *kept, folded] if folding else list(layout.segments)
    if batch.texts:
        written += [f"{name}/{f}" for f in write_segment_lexical(
            conn, directory, options.title_context, first.passages[1], first.documents[1])]
        crashpoint("update:lexical")
        give_way()
        embedding = time.perf_counter()
        vectors = embedder.embed(batch.texts, batch_size=batch_size)
        summary.embed_seconds += time.perf_counter() - embedding
        crashpoint("update:embedded")
        ids = np.arange(first.passages[1], first.passages[1] + len(vectors), dtype=np.int64)
        if milvus:  # before the manifest: an update that dies here leaves ids the next one overwrites
            collection.put(ids, vectors)
            collection.ready()
        else:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
            written += [f"{name}/{f}" for f in vector_store.FaissStore(index).save(directory)]
        # (the folded segments are the same vectors)
        previous = segments.open_vectors(layout, manifest, old_dir, base=collection)
        give_way()
        _link_copies(conn, old, previous, deleted, vectors, ids, batch.doc_of)
        give_way()
        conn.commit()
        conn.close()
        written.append(f"{name}/{store.STORE}")
        if options.sentence_vectors:
            embedding = time.perf_counter()
            sentence_vectors = batch.embed_sentences(embedder, vectors, batch_size * 2)
            summary.embed_seconds += time.perf_counter() - embedding
            written += [f"{name}/{f}" for f in save_sentence_vectors(directory, sentence_vectors)]
            crashpoint("update:sentences")
        after.append(segments.Segment(name, (first.passages[1], first.passages[1] + len(vectors)),
                                      (first.sentences[1], first.sentences[1] + len(batch.sentence_texts)),
                                      (first.documents[1], first.documents[1] + batch.documents)))
        number += 1
    else:  # only deletions: no segment
        conn.close()
        shutil.rmtree(directory)
    summary.segments = len(after)
    new = segments.Layout(tuple(after), deleted, deleted_documents)
    give_way()
    written_store = SegmentedStore(new, tmp)
    grouped = Duplicates.of(written_store.groups(), new.live()).group_of
    grouped = grouped[grouped >= 0]
    written_store.close()
    old.close()
    give_way()
    written += segments.save_deleted(tmp, deleted, deleted_documents)
    crashpoint("update:vectors")
    summary.embedded_passages = len(batch.texts)
    changes = {"added": summary.added, "replaced": summary.replaced, "removed": summary.removed}
    record = {**{k: v for k, v in manifest.items() if k != DEPARTURES}, **new.record(), "next_segment": number,
              "next_story": placed.next_story, **({DEPARTURES: departures} if departures else {}),
              "counts": {"documents": summary.documents, "passages": summary.passages,
                         "skipped": counts.get("skipped", 0),
                         "sentences": counts["sentences"] - gone_sentences + len(batch.sentence_texts)},
              "updated_from": summary.generation, "changes": {k: len(v) for k, v in changes.items()},
              "duplicates": {"threshold": duplicates.THRESHOLD, "grouped_passages": len(grouped),
                             "groups": len(np.unique(grouped))},
              "build_seconds": round(time.perf_counter() - started, 3)}
    # the carried files are the previous generation's, whose checksums were verified when written
    give_way()
    store.write_manifest(tmp, record, written, known=carried)
    crashpoint("update:manifest")
    if milvus and gone_passages:
        return lambda: _forget_vectors(collection, gone_passages)
    return None


def _forget_vectors(collection, ids: list[int]) -> None:
    """Delete removed passages' vectors from a Milvus collection (best effort: a vector
    left behind is never asked for, and a merge leaves it out)."""
    try:
        collection.remove(np.asarray(ids, dtype=np.int64))
    except Exception as e:  # noqa: BLE001 - the update is published either way
        log.warning("could not delete %d vectors from %s: %s", len(ids), collection.collection, e)


def _link_copies(conn, old: SegmentedStore, previous, deleted: np.ndarray, vectors: np.ndarray, ids: np.ndarray,
                 doc_of: list[str]) -> None:
    """Record in the new segment's store (`conn`) the new passages' near-duplicates
    (indexer/duplicates.py) among every live passage and each other: a new copy joins its
    original's group, and a passage that copies two groups joins them (the group's id
    stays its smallest member's; the older members' new links override their old ones)."""
    import faiss

    k = duplicates.NEIGHBOURS + 1
    live = np.ones(int(ids[0]), dtype=bool)  # the previous generation's passages, less those gone now
    live[deleted] = False
    old_scores, old_ids = previous.search(vectors, k, live)
    own = faiss.IndexFlatIP(vectors.shape[1])
    own.add(np.ascontiguousarray(vectors, dtype=np.float32))
    new_scores, new_rows = own.search(np.ascontiguousarray(vectors, dtype=np.float32), min(k, len(ids)))
    doc_by_id = dict(zip(ids.tolist(), doc_of))
    pairs = []
    for i, scores, found in zip(ids.tolist(), old_scores, old_ids):
        pairs += [(i, int(j)) for s, j in zip(scores, found) if j >= 0 and s >= duplicates.THRESHOLD]
    for i, scores, found in zip(ids.tolist(), new_scores, new_rows):
        pairs += [(i, int(ids[j])) for s, j in zip(scores, found) if j >= 0 and ids[j] != i and s >= duplicates.THRESHOLD]
    doc_by_id.update((row["id"], row["doc_id"]) for row in old.for_passages(
        "SELECT id, doc_id FROM passages WHERE id IN ({ids})", {j for _, j in pairs if j not in doc_by_id}))
    pairs = [(i, j) for i, j in pairs if doc_by_id[i] != doc_by_id[j]]  # copies are sought across documents
    if not pairs:
        return
    together = duplicates.Groups()
    # the old passages' groups, whole: a group the new passage joins keeps all its members
    touched = sorted({j for _, j in pairs} - set(ids.tolist()))
    members = old.group_members(set(old.recorded_group_of(touched).values()))
    for pid, group in members.items():
        together.join(pid, group)  # a group's id is a passage id (its smallest, perhaps deleted since)
    for i, j in pairs:
        together.join(i, j)
    live = np.ones(int(ids[-1]) + 1, dtype=bool)
    live[deleted] = False
    rows = [(node, min(nodes)) for nodes in together.groups() if len(nodes) > 1 for node in nodes if live[node]]
    conn.executemany("INSERT INTO duplicates (passage_id, group_id) VALUES (?, ?)", rows)


# The doc_ids deleted by updates that wrote no segment (deletions only), whose articles
# have yet to leave their stories: the next update that writes one takes them out, before
# it places anything (an article added again meanwhile would write one, so the placement
# taken out is the deleted one's).
DEPARTURES = "story_departures"


def _departing(manifest: dict) -> set[str]:
    """The doc_ids of the deleted articles waiting to leave their stories."""
    return set(manifest.get(DEPARTURES, []))


def _copy_kept(conn: sqlite3.Connection, old: SegmentedStore, gone: set[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copy the live documents that stay, their passages and sentences renumbered densely
    in their old order, segment by segment; returns the old ids of the passages and
    sentences kept, and the old rows (positions by rowid) of the documents kept."""
    for sql in ("CREATE TEMP TABLE gone (doc_id TEXT PRIMARY KEY)",
                "CREATE TEMP TABLE pmap (old INTEGER PRIMARY KEY, new INTEGER NOT NULL)",
                "CREATE TEMP TABLE smap (old INTEGER PRIMARY KEY, new INTEGER NOT NULL)"):
        conn.execute(sql)
    conn.executemany("INSERT INTO gone VALUES (?)", [(d,) for d in gone])
    mark_dead(conn, old)
    kept, kept_sentences, kept_documents = [], [], []
    for part in old.parts:
        conn.execute("ATTACH DATABASE ? AS old", (str(part.path),))
        ids = [i for (i,) in conn.execute("SELECT id FROM old.passages WHERE doc_id NOT IN (SELECT doc_id FROM gone) "
                                          "AND id NOT IN (SELECT id FROM dead) ORDER BY id")]
        conn.executemany("INSERT INTO pmap VALUES (?, ?)", zip(ids, range(len(kept), len(kept) + len(ids))))
        kept += ids
        sentences = [i for (i,) in conn.execute(
            "SELECT s.id FROM old.sentences s JOIN pmap m ON m.old = s.passage_id ORDER BY s.id")]
        conn.executemany("INSERT INTO smap VALUES (?, ?)",
                         zip(sentences, range(len(kept_sentences), len(kept_sentences) + len(sentences))))
        kept_sentences += sentences
        # in rowid order: the document BM25 index's rows follow it
        author = "author" if store.has_author(conn, "old") else "NULL"
        live_row = "doc_id NOT IN (SELECT doc_id FROM gone) AND rowid - 1 NOT IN (SELECT row FROM dead_rows)"
        conn.execute("INSERT INTO documents (doc_id, title, source, url, published, author, sha256, text) "
                     f"SELECT doc_id, title, source, url, published, {author}, sha256, text FROM old.documents "
                     f"WHERE {live_row} ORDER BY rowid")
        conn.execute('INSERT INTO passages (id, doc_id, paragraph, start, "end", text) '
                     'SELECT m.new, p.doc_id, p.paragraph, p.start, p."end", p.text '
                     "FROM old.passages p JOIN pmap m ON m.old = p.id ORDER BY m.new")
        story_store.copy(conn, "old")
        conn.execute('INSERT INTO sentences (id, passage_id, start, "end") '
                     'SELECT sm.new, m.new, s.start, s."end" FROM old.sentences s '
                     "JOIN smap sm ON sm.old = s.id JOIN pmap m ON m.old = s.passage_id ORDER BY sm.new")
        kept_documents += [row for (row,) in conn.execute(f"SELECT rowid - 1 FROM old.documents WHERE {live_row} "
                                                          "ORDER BY rowid")]
        conn.commit()
        conn.execute("DETACH DATABASE old")
    return (np.array(kept, dtype=np.int64), np.array(kept_sentences, dtype=np.int64),
            np.array(kept_documents, dtype=np.int64))


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


def _groups(old: SegmentedStore, kept: np.ndarray, vectors: np.ndarray, doc_of: list[str], index) -> dict[int, int]:
    """Near-duplicate groups: a kept group that lost no member stays as it was; new
    passages and the rest of a group that lost one look for their copies again."""
    old_to_new = {int(o): n for n, o in enumerate(kept.tolist())}
    members = Duplicates.of(old.groups(), old.live).members
    linked, rows = [], list(range(len(kept), len(vectors)))
    for group in members.values():
        survivors = [old_to_new[p] for p in group if p in old_to_new]
        if len(survivors) == len(group):
            linked += [(survivors[0], s) for s in survivors[1:]]
        else:
            rows += survivors
    return duplicates.groups(vectors, doc_of, index, rows=rows, linked=linked)
