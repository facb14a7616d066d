"""The build driver: read, clean, chunk, embed, and publish an index directory atomically.

The new index is written to a temporary sibling directory, fsynced, and only then swapped
into place, so a build that crashes or is killed at any point leaves the previous index
as it was.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from search import store, vector_index
from search.lexical import LexicalIndex
from search.embedder import canonical_model_name, get_embedder
from search.errors import BuildError, SearchError

from . import duplicates, sources
from .chunk import CHUNKER_VERSION, Passage, chunk, sentences
from .clean import clean

log = logging.getLogger("indexer")


@dataclass(frozen=True)
class BuildOptions:
    """How articles become passages; recorded in the manifest."""

    chunking: bool = True  # False: one passage per document, cut by the model's window
    max_tokens: int | None = None  # passage window in word pieces (default: the model's)
    title_context: bool = False  # embed and index each passage together with its title
    sentence_vectors: bool = True  # embed every sentence too, to highlight answers
    vector_index: str = "auto"  # "flat" (exact), "ivf" (IVF-SQ8), or "auto": by size


@dataclass
class BuildSummary:
    index_dir: Path
    documents: int = 0
    passages: int = 0
    skipped: list[sources.Skipped] = field(default_factory=list)
    seconds: float = 0.0
    rebuilt: bool = True

    def __str__(self) -> str:
        if not self.rebuilt:
            return f"index at {self.index_dir} is up to date ({self.documents} documents, {self.passages} passages)"
        return (f"indexed {self.documents} documents, {self.passages} passages in {self.seconds:.1f} s; "
                f"skipped {len(self.skipped)} -> {self.index_dir}")


def build(srcs: list[str | Path], index_dir: str | Path, model: str | None = None, strict: bool = False,
          progress: bool = False, batch_size: int = 32, if_changed: bool = False,
          options: BuildOptions = BuildOptions(), backend: str | None = None, embedder=None) -> BuildSummary:
    """Build an index of the articles in `srcs` at `index_dir`.

    Args:
        srcs: article files (.txt, .jsonl) and directories holding them.
        index_dir: where the index goes; an index already there is replaced atomically.
        model: sentence-transformers model name or path (default: the bundled all-MiniLM-L6-v2).
        strict: fail on the first unreadable, empty or malformed input instead of skipping it.
        progress: show a progress bar while embedding.
        if_changed: do nothing when the index there was built from the same inputs and model.
        options: chunking and embedding choices (see BuildOptions).
        backend: how the model runs, "onnx-int8" or "torch" (default: $SEARCH_EMBED_BACKEND,
            else search.embedder.DEFAULT_BACKEND).
        embedder: an object with the `search.embedder.Embedder` interface to use instead
            (scripts/bench replays recorded vectors through it).

    Returns:
        What was indexed and skipped.

    Raises:
        BuildError: nothing indexable, or (with `strict`) any bad input.
    """
    started = time.perf_counter()
    index_dir = Path(index_dir)
    files, skipped = sources.discover(srcs)
    inputs = {"fingerprint": sources.fingerprint(files), "files": [p.name for p in files]}
    embedder = embedder or get_embedder(canonical_model_name(model), backend)
    if index_dir.parent.is_dir():
        _remove_stale_temporaries(index_dir)
    if if_changed and _is_current(index_dir, inputs, embedder, options):
        manifest = store.read_manifest(index_dir)
        return BuildSummary(index_dir, manifest["counts"]["documents"], manifest["counts"]["passages"],
                            rebuilt=False)
    _fail_if_strict(strict, skipped)
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = index_dir.parent / f".{index_dir.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        summary = _write(files, skipped, tmp, embedder, strict, progress, batch_size, inputs, started, options)
        _publish(tmp, index_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary.index_dir = index_dir
    summary.seconds = time.perf_counter() - started
    return summary


def _fail_if_strict(strict: bool, skipped: list[sources.Skipped]) -> None:
    if strict and skipped:
        raise BuildError(f"{skipped[0]} (--strict: nothing was written)")


def _is_current(index_dir: Path, inputs: dict, embedder, options: BuildOptions) -> bool:
    try:
        manifest = store.read_manifest(index_dir)
        store.verify_checksums(index_dir, manifest)
    except SearchError:
        return False
    # an option a manifest predates had its default value then
    recorded = {**asdict(BuildOptions()), **manifest.get("options", {})}
    return (manifest.get("inputs", {}).get("fingerprint") == inputs["fingerprint"]
            and manifest["model"]["name"] == embedder.name
            and manifest["model"].get("backend", "torch") == embedder.backend
            and manifest.get("chunker_version") == CHUNKER_VERSION
            and recorded == asdict(options))


def _write(files, skipped, tmp: Path, embedder, strict: bool, progress: bool, batch_size: int,
           inputs: dict, started: float, options: BuildOptions) -> BuildSummary:
    import faiss
    import numpy as np

    max_tokens = min(options.max_tokens or embedder.max_tokens, embedder.max_tokens)
    summary = BuildSummary(tmp, skipped=skipped)
    conn = store.connect(tmp / store.STORE, readonly=False)
    conn.executescript(store.SCHEMA)
    texts: list[str] = []  # what is embedded and indexed for each passage, by passage id
    doc_of: list[str] = []
    sentence_texts: list[str] = []
    seen: dict[str, str] = {}
    for path in files:
        for item in sources.read(path):
            if isinstance(item, sources.Document) and item.doc_id in seen:
                item = sources.Skipped(str(path), f"duplicate doc_id {item.doc_id!r} (first in {seen[item.doc_id]})")
            if isinstance(item, sources.Skipped):
                _skip(summary, item, strict)
                continue
            cleaned = clean(item.text, item.title)
            passages = _passages(item.text, cleaned, embedder, max_tokens, options)
            if not passages:
                _skip(summary, sources.Skipped(str(path), f"document {item.doc_id!r} has no article text"), strict)
                continue
            seen[item.doc_id] = str(path)
            first_id = len(texts)
            _insert(conn, item, cleaned.title, passages, first_id)
            for i, p in enumerate(passages, first_id):
                spans = sentences(item.text, p.start, p.end)
                conn.executemany('INSERT INTO sentences (id, passage_id, start, "end") VALUES (?, ?, ?, ?)',
                                 [(len(sentence_texts) + j, i, a, b) for j, (a, b) in enumerate(spans)])
                sentence_texts.extend(item.text[a:b] for a, b in spans)
                body = item.text[p.start:p.end]
                texts.append(f"{cleaned.title}\n{body}" if options.title_context and cleaned.title else body)
                doc_of.append(item.doc_id)
            summary.documents += 1
    if not texts:
        raise BuildError("nothing to index: " + ("; ".join(map(str, summary.skipped)) or "no .txt or .jsonl files"))
    summary.passages = len(texts)
    lexical_files = LexicalIndex.build(texts).save(tmp / store.PASSAGE_LEXICAL)
    lexical_files += LexicalIndex.build([body for (body,) in conn.execute(
        "SELECT coalesce(title || char(10), '') || text FROM documents ORDER BY rowid")]).save(
        tmp / store.DOCUMENT_LEXICAL)

    vectors = embedder.embed(texts, batch_size=batch_size, progress=progress)
    # Cosine similarity = inner product of L2-normalised vectors (Embedder.embed normalises).
    index = vector_index.build(vectors, vector_index.choose(len(vectors), options.vector_index))
    faiss.write_index(index, str(tmp / store.VECTORS))
    grouped = duplicates.groups(vectors, doc_of, index)
    conn.executemany("INSERT INTO duplicates (passage_id, group_id) VALUES (?, ?)", sorted(grouped.items()))
    conn.commit()
    conn.close()
    data_files = [store.VECTORS, store.STORE] + [str(p.relative_to(tmp)) for p in lexical_files]
    if options.sentence_vectors:
        sentence_vectors = embedder.embed(sentence_texts, batch_size=batch_size * 2, progress=progress)
        # float32, as the searcher scores them: casting float16 rows back costs numpy ~2 ms
        # per query at depth 1000, more than the rest of the sentence scoring together
        np.save(tmp / store.SENTENCE_VECTORS, sentence_vectors.astype(np.float32), allow_pickle=False)
        data_files.append(store.SENTENCE_VECTORS)

    manifest = {
        "format_version": store.FORMAT_VERSION,
        "model": {"name": embedder.name, "backend": embedder.backend, "dimension": embedder.dimension,
                  "normalized": True, "max_tokens": embedder.max_tokens},
        "chunker_version": CHUNKER_VERSION,
        "options": asdict(options),
        "vector_index": vector_index.describe(index),
        "duplicates": {"threshold": duplicates.THRESHOLD, "grouped_passages": len(grouped),
                       "groups": len(set(grouped.values()))},
        "counts": {"documents": summary.documents, "passages": summary.passages, "skipped": len(summary.skipped),
                   "sentences": len(sentence_texts)},
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(time.perf_counter() - started, 3),
        "inputs": inputs,
        "checksums": {name: store.file_sha256(tmp / name) for name in data_files},
    }
    (tmp / store.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return summary


def _passages(text: str, cleaned, embedder, max_tokens: int, options: BuildOptions) -> list[Passage]:
    if not options.chunking:
        return [Passage(1, cleaned.lines[0].start, cleaned.lines[-1].end)] if cleaned.lines else []
    # the title rides along with every passage when embedded: leave room for it
    room = max_tokens - (embedder.count_tokens(cleaned.title) + 1 if options.title_context and cleaned.title else 0)
    return chunk(text, cleaned, embedder.count_tokens, max(room, max_tokens // 2))


def _skip(summary: BuildSummary, item: sources.Skipped, strict: bool) -> None:
    summary.skipped.append(item)
    _fail_if_strict(strict, [item])
    log.warning("skipped %s", item)


def _insert(conn, doc: sources.Document, title: str | None, passages, first_id: int) -> None:
    conn.execute("INSERT INTO documents (doc_id, title, source, url, published, sha256, text) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (doc.doc_id, title, doc.source, doc.url, doc.published,
                  hashlib.sha256(doc.text.encode()).hexdigest(), doc.text))
    conn.executemany('INSERT INTO passages (id, doc_id, paragraph, start, "end", text) VALUES (?, ?, ?, ?, ?, ?)',
                     [(first_id + i, doc.doc_id, p.paragraph, p.start, p.end, doc.text[p.start:p.end])
                      for i, p in enumerate(passages)])


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        if path.is_dir():
            _fsync_tree(path)
            continue
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: Path, index_dir: Path) -> None:
    """Put the complete new index at `index_dir`; `tmp` then holds the old one (if any)."""
    _fsync_tree(tmp)
    if not index_dir.exists():
        os.rename(tmp, index_dir)
    elif not _exchange(tmp, index_dir):
        # No atomic exchange on this system: move the old index aside first. A crash
        # between the two renames leaves it complete at `aside`.
        aside = tmp.with_name(tmp.name + ".old")
        os.rename(index_dir, aside)
        os.rename(tmp, index_dir)
        os.rename(aside, tmp)
    _fsync_dir(index_dir.parent)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux's renameat2(RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _remove_stale_temporaries(index_dir: Path) -> None:
    """Remove what builds that were killed left behind (their process is gone)."""
    for path in index_dir.parent.glob(f".{index_dir.name}.tmp-*"):
        pid = path.name.split(".tmp-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
