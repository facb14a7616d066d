"""Merging in the background: every segment folded into one base while writes go on.

The merge reads a snapshot of the current generation (leased, so nothing collects it)
and writes the merged base without the writer lock: that is the long part, and updates
keep adding segments meanwhile. It then takes the lock for the short part: when the
index moved on, the documents added and removed since the snapshot are applied to the
merged base as one more segment, their vectors carried from the segments that hold
them rather than embedded again, and the result is published as one generation. Readers
never see the merge half done, and no acknowledged write is lost.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np

from search.index import generations, segments, store
from search.index.segment_store import SegmentedStore

from search.embedding.embedder import get_embedder

from . import sources
from .build import recorded_options
from .crashpoints import crashpoint
from .update import UpdateSummary, _append, _write

log = logging.getLogger("indexer")


def merge_in_background(index_dir: str | Path, embedder=None, batch_size: int = 32, hold=lambda: None) -> UpdateSummary:
    """Merge the index's segments into one base; the writer lock is held only to catch up
    with what was written during the merge and publish. `embedder`: the index's model
    (default: loaded as its manifest names it), for what the catch-up cannot carry.
    `hold`: called between the two parts (tests use it to write meanwhile)."""
    started = time.perf_counter()
    index_dir = Path(index_dir)
    snapshot, directory, held = generations.lease(index_dir)
    tmp = generations.scratch(index_dir)
    try:
        manifest = store.read_manifest(directory)
        store.verify_checksums(directory, manifest)  # everything is read: all of it is checked
        layout = segments.Layout.of(manifest, directory)
        if embedder is None:
            embedder = get_embedder(manifest["model"]["name"], manifest["model"].get("backend"))
        summary = UpdateSummary(index_dir, generation=snapshot, merged=True)
        _write(directory, manifest, layout, tmp, [], set(), embedder, batch_size, summary, started)
        hold()
        with generations.writer(index_dir):
            locked = time.perf_counter()
            now = generations.current(index_dir)
            final, after = tmp, None
            if not _same_base(directory, now):  # merged meanwhile (on demand, or a migration): nothing to do
                log.info("not publishing a merge of %s: the index was merged while it ran", index_dir)
                summary.generation = now.name
                return summary
            if now.name != snapshot:
                final = generations.scratch(index_dir)
                after = _catch_up(directory, layout, now, tmp, final, embedder, batch_size, summary, started)
            summary.generation = generations.publish(index_dir, final, crashpoint)
            if after is not None:
                after()
            summary.locked_seconds = time.perf_counter() - locked
        if final is not tmp:
            shutil.rmtree(final, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if held is not None:
            held.close()
    summary.seconds = time.perf_counter() - started
    log.info("merged %s in the background: %s", index_dir, summary)
    return summary


def _same_base(snapshot_dir: Path, now_dir: Path) -> bool:
    """Whether the generation in `now_dir` carries the snapshot's base (the same file)."""
    try:
        return (snapshot_dir / store.STORE).stat().st_ino == (now_dir / store.STORE).stat().st_ino
    except OSError:
        return False


def _catch_up(snapshot_dir: Path, snapshot: segments.Layout, now_dir: Path, merged: Path, target: Path, embedder,
              batch_size: int, summary: UpdateSummary, started: float):
    """Write into `target` the merged base in `merged` plus what the index gained and lost
    between the snapshot and the generation in `now_dir`."""
    manifest = store.read_manifest(now_dir)
    layout = segments.Layout.of(manifest, now_dir)
    now = SegmentedStore(layout, now_dir)
    then = SegmentedStore(snapshot, snapshot_dir)
    try:
        gone = _gone(then, snapshot, layout)
        incoming, known = _added(now, layout, snapshot, manifest, now_dir)
    finally:
        now.close()
        then.close()
    merged_manifest = store.read_manifest(merged)
    catch_up = UpdateSummary(summary.index_dir, generation=summary.generation)
    after = _append(merged, merged_manifest, segments.Layout.of(merged_manifest, merged), target, incoming, gone,
                    _Replay(embedder, known), batch_size, catch_up, started, strict=False)
    summary.documents, summary.passages, summary.segments = catch_up.documents, catch_up.passages, catch_up.segments
    summary.merged = False  # the base is merged; the writes made meanwhile are one segment beside it
    return after


def _gone(then: SegmentedStore, snapshot: segments.Layout, layout: segments.Layout) -> set[str]:
    """The snapshot's live documents deleted since (removed, or replaced by a newer version)."""
    rows = np.setdiff1d(layout.deleted_documents, snapshot.deleted_documents)
    rows = set(rows[rows < snapshot.document_capacity].tolist())
    return {doc_id for row, doc_id in then.rows("SELECT rowid - 1, doc_id FROM documents") if row in rows}


def _added(now: SegmentedStore, layout: segments.Layout, snapshot: segments.Layout, manifest: dict,
           directory: Path) -> tuple[list[sources.Document], dict[str, np.ndarray]]:
    """The documents added since the snapshot and still live, and the vectors their
    passages and sentences were embedded as (by the text embedded)."""
    options = recorded_options(manifest)
    first = snapshot.document_capacity
    documents, passage_ids, passage_texts, sentence_ids, sentence_texts = [], [], [], [], []
    for part, p in enumerate(now.parts):
        if p.documents[1] <= first:
            continue
        conn = now.connection(part)
        texts = {}
        for row in conn.execute("SELECT rowid - 1 AS row, doc_id, title, source, url, published, author, text "
                                "FROM documents WHERE rowid - 1 >= ? ORDER BY rowid", (first,)):
            if now.live_documents[row["row"]]:
                documents.append(sources.Document(doc_id=row["doc_id"], text=row["text"], source=row["source"],
                                                  title=row["title"], url=row["url"], published=row["published"],
                                                  author=row["author"]))
                texts[row["doc_id"]] = (row["title"], row["text"])
        for pid, doc_id, body in conn.execute("SELECT id, doc_id, text FROM passages ORDER BY id"):
            if doc_id in texts:
                title = texts[doc_id][0]
                passage_ids.append(pid)
                passage_texts.append(f"{title}\n{body}" if options.title_context and title else body)
        for sid, doc_id, start, end in conn.execute(
                'SELECT s.id, p.doc_id, s.start, s."end" FROM sentences s JOIN passages p ON p.id = s.passage_id '
                "ORDER BY s.id"):
            if doc_id in texts:
                sentence_ids.append(sid)
                sentence_texts.append(texts[doc_id][1][start:end])
    known: dict[str, np.ndarray] = {}
    if passage_ids:
        vectors = segments.open_vectors(layout, manifest, directory).vectors(np.asarray(passage_ids))
        known.update(zip(passage_texts, vectors))
        sentences = segments.open_sentences(layout, directory)
        if sentences is not None and sentence_ids:
            known.update(zip(sentence_texts, sentences.rows(np.asarray(sentence_ids))))
    return documents, known


class _Replay:
    """The embedder, answering from vectors already made for the same texts."""

    def __init__(self, embedder, known: dict[str, np.ndarray]):
        self._embedder, self._known = embedder, known

    def __getattr__(self, name):
        return getattr(self._embedder, name)

    def embed(self, texts, batch_size: int = 32, **kwargs):
        missing = [t for t in dict.fromkeys(texts) if t not in self._known]
        if missing:
            self._known.update(zip(missing, self._embedder.embed(missing, batch_size=batch_size, **kwargs)))
        return np.asarray([self._known[t] for t in texts], dtype=np.float32).reshape(len(texts), -1)
