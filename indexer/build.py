"""The build driver: read, clean, chunk, embed, and publish an index generation.

The new index is written to a scratch directory, fsynced, and only then published as the
next generation (search/index/generations.py), so a build that crashes or is killed at any
point leaves the previous index as it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from search.embedding.embedder import canonical_model_name, get_embedder
from search.errors import BuildError, SearchError
from search.index import generations, segments, store, vector_index, vector_store
from search.index.lexical import write_lexical
from search.index.segment_store import SegmentedStore
from search.index.sentence_vectors import save as save_sentence_vectors
from search.retrieval import byline

from . import duplicates, sources, stories
from .chunk import CHUNKER_VERSION, DEFAULT_SEGMENTER, LEGACY_SEGMENTER, Passage, chunk, sentences
from .clean import clean
from .crashpoints import crashpoint
from .scratch import scratch

log = logging.getLogger("indexer")
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class BuildOptions:
    """How articles become passages; recorded in the manifest."""

    chunking: bool = True  # False: one passage per document, cut by the model's window
    max_tokens: int | None = None  # passage window in word pieces (default: the model's)
    title_context: bool = False  # embed and index each passage together with its title
    sentence_vectors: bool = True  # embed every sentence too, to highlight answers
    vector_index: str = "auto"  # "flat" (exact), "ivf" (IVF-SQ8), or "auto": by size
    vector_store: str = "faiss"  # or milvus://host:port/collection (search/index/vector_store.py)
    segmenter: str = DEFAULT_SEGMENTER  # the sentence splitter (indexer/chunk.py SEGMENTERS)


@dataclass
class BuildSummary:
    index_dir: Path
    documents: int = 0
    passages: int = 0
    skipped: list[sources.Skipped] = field(default_factory=list)
    seconds: float = 0.0
    rebuilt: bool = True
    generation: str | None = None

    def __str__(self) -> str:
        if not self.rebuilt:
            return f"index at {self.index_dir} is up to date ({self.documents} documents, {self.passages} passages)"
        return (f"indexed {self.documents} documents, {self.passages} passages in {self.seconds:.1f} s; "
                f"skipped {len(self.skipped)} -> {self.index_dir}" + (f" {self.generation}" if self.generation else ""))


def build(srcs: list[str | Path], index_dir: str | Path, model: str | None = None, strict: bool = False,
          progress: bool = False, batch_size: int = 32, if_changed: bool = False,
          options: BuildOptions = BuildOptions(), backend: str | None = None, embedder=None,
          engine: str = "local", actors: int | None = None, drop: bool = True) -> BuildSummary:
    """Build an index of the articles in `srcs` at `index_dir`.

    Args:
        srcs: article files (.txt, .jsonl) and directories holding them.
        index_dir: where the index goes; an index already there is replaced by a new
            generation (readers of the old one keep it until they reload).
        model: sentence-transformers model name or path (default: the bundled all-MiniLM-L6-v2).
        strict: fail on the first unreadable, empty or malformed input instead of skipping it.
        progress: show progress bars (articles read, passages and sentences embedded).
        if_changed: do nothing when the index there was built from the same inputs and model.
        options: chunking and embedding choices (see BuildOptions).
        backend: how the model runs, "onnx-int8", "torch" or "torch-bf16" (default:
            $SEARCH_EMBED_BACKEND, else search.embedding.embedder.DEFAULT_BACKEND).
        embedder: an object with the `search.embedding.embedder.Embedder` interface to use instead
            (scripts/bench replays recorded vectors through it).
        engine: "local" (this process) or "ray": embed with Ray Data over `actors` model
            actors (default: one per CPU of the cluster; RAY_ADDRESS names a cluster,
            else a local one starts). The index written is the same.
        drop: replace an index that holds documents `srcs` do not (added since by
            `indexer add` or `PUT /documents`, or whose files are gone); False refuses to.

    Returns:
        What was indexed and skipped.

    Raises:
        BuildError: nothing indexable, (with `strict`) any bad input, or (without `drop`)
            documents the build would drop.
    """
    started = time.perf_counter()
    index_dir = Path(index_dir)
    files, skipped = sources.discover(srcs)
    inputs = {"fingerprint": sources.fingerprint(files), "files": [p.name for p in files]}
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    embedder = embedder or get_embedder(canonical_model_name(model), backend)
    if engine == "ray":
        from .ray_engine import RayEmbedder

        embedder = RayEmbedder(embedder, actors)
    try:
        return _build(index_dir, files, skipped, inputs, embedder, strict, progress, batch_size, if_changed,
                      options, started, drop)
    finally:
        if engine == "ray":
            embedder.close()


def build_in_milvus(srcs: list[str | Path], spec: str, **kwargs) -> BuildSummary:
    """`build`, the index written into Milvus collections (search/index/milvus_index.py)
    rather than a directory: built in a temporary directory as `build` builds (with exact
    vectors, which Milvus then searches exactly), then published under the alias `spec`
    names. Takes `build`'s other arguments."""
    from . import to_milvus

    options = dataclasses.replace(kwargs.pop("options", BuildOptions()), vector_index="flat", vector_store="faiss")
    for local_only in ("if_changed", "drop"):  # of an index directory that stays
        kwargs.pop(local_only, None)
    with scratch("milvus-build-") as directory:
        summary = build(srcs, directory / "index", options=options, **kwargs)
        generation = generations.current(directory / "index")
        record = to_milvus.write(generation, spec, store.read_manifest(generation),
                                    progress=kwargs.get("progress", False))
    summary.index_dir, summary.generation = spec, record["token"]
    return summary


def _build(index_dir, files, skipped, inputs, embedder, strict, progress, batch_size, if_changed, options,
           started, drop) -> BuildSummary:
    with generations.writer(index_dir):
        if if_changed and _is_current(index_dir, inputs, embedder, options):
            manifest = store.read_manifest(generations.current(index_dir))
            return BuildSummary(index_dir, manifest["counts"]["documents"], manifest["counts"]["passages"],
                                rebuilt=False, generation=generations.current_name(index_dir))
        _fail_if_strict(strict, skipped)
        if not drop:
            _refuse_to_drop(index_dir, files)
        tmp = generations.scratch(index_dir)
        try:
            summary = _write(files, skipped, tmp, embedder, strict, progress, batch_size, inputs, started, options)
            summary.generation = generations.publish(index_dir, tmp, crashpoint)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    summary.index_dir = index_dir
    summary.seconds = time.perf_counter() - started
    return summary


def _fail_if_strict(strict: bool, skipped: list[sources.Skipped]) -> None:
    if strict and skipped:
        raise BuildError(f"{skipped[0]} (--strict: nothing was written)")


def _refuse_to_drop(index_dir: Path, files: list[Path]) -> None:
    """BuildError when the index holds documents a build from `files` would not."""
    try:
        directory = generations.current(index_dir)
        store.read_manifest(directory)
    except SearchError:
        return  # no index yet: nothing to drop
    coming = {item.doc_id for path in files for item in sources.read(path) if isinstance(item, sources.Document)}
    held = SegmentedStore(segments.Layout.of(store.read_manifest(directory), directory), directory)
    dropped = sorted(doc_id for doc_id in held.live_doc_ids() if doc_id not in coming)
    held.close()
    if dropped:
        named = ", ".join(map(repr, dropped[:3])) + (f" and {len(dropped) - 3} more" if len(dropped) > 3 else "")
        raise BuildError(
            f"the index at {index_dir} holds {len(dropped)} document(s) its sources do not ({named}): added since "
            "it was built (indexer add, PUT /documents) or whose files are gone. A rebuild would drop them, so "
            f"nothing was changed. To keep them and take in the sources' changes: `indexer add SOURCES --index "
            f"{index_dir}`; to rebuild without them: `indexer build SOURCES --index {index_dir}`.")


def _is_current(index_dir: Path, inputs: dict, embedder, options: BuildOptions) -> bool:
    try:
        directory = generations.current(index_dir)
        manifest = store.read_manifest(directory)
        store.verify_checksums(directory, manifest)
    except SearchError:
        return False
    return (manifest.get("inputs", {}).get("fingerprint") == inputs["fingerprint"]
            and manifest["model"]["name"] == embedder.name
            and manifest["model"].get("backend", "torch") == embedder.backend
            and manifest["model"].get("export_version") == getattr(embedder, "export_version", None)
            and manifest.get("chunker_version") == CHUNKER_VERSION
            and asdict(recorded_options(manifest)) == asdict(options))


def recorded_options(manifest: dict) -> BuildOptions:
    """The options an index was built with (one a manifest predates had its default then)."""
    known = asdict(BuildOptions()) | {"segmenter": LEGACY_SEGMENTER}
    return BuildOptions(**{**known, **{k: v for k, v in manifest.get("options", {}).items() if k in known}})


@dataclass
class Additions:
    """Documents being added to a store: their passages' and sentences' texts, by id
    from `first_passage` and `first_sentence` on."""

    embedder: object
    options: BuildOptions
    first_passage: int = 0
    first_sentence: int = 0
    # the row (rowid - 1) of the first document added; None: SQLite's next rowid
    first_document: int | None = None
    texts: list[str] = field(default_factory=list)  # what is embedded for each passage
    doc_of: list[str] = field(default_factory=list)
    sentence_texts: list[str] = field(default_factory=list)
    documents: int = 0

    def add(self, conn, doc: sources.Document) -> bool:
        """Clean, chunk and store one document; False when it has no article text."""
        cleaned = clean(doc.text, doc.title)
        max_tokens = min(self.options.max_tokens or self.embedder.max_tokens, self.embedder.max_tokens)
        passages = _passages(doc.text, cleaned, self.embedder, max_tokens, self.options)
        if not passages:
            return False
        first_id = self.first_passage + len(self.texts)
        rowid = None if self.first_document is None else self.first_document + self.documents + 1
        # a plain-text article names its author only in its by-line, at its start or end
        author = doc.author or byline.author_of([line.text for line in cleaned.lines[:2] + cleaned.lines[-1:]])
        _insert(conn, dataclasses.replace(doc, author=author), cleaned.title, passages, first_id, rowid)
        for i, p in enumerate(passages, first_id):
            spans = sentences(doc.text, p.start, p.end, self.options.segmenter)
            first = self.first_sentence + len(self.sentence_texts)
            conn.executemany('INSERT INTO sentences (id, passage_id, start, "end") VALUES (?, ?, ?, ?)',
                             [(first + j, i, a, b) for j, (a, b) in enumerate(spans)])
            self.sentence_texts.extend(doc.text[a:b] for a, b in spans)
            body = doc.text[p.start:p.end]
            self.texts.append(f"{cleaned.title}\n{body}" if self.options.title_context and cleaned.title else body)
            self.doc_of.append(doc.doc_id)
        self.documents += 1
        return True

    def embed_sentences(self, embedder, passage_vectors: np.ndarray, batch_size: int,
                        progress: bool = False) -> np.ndarray:
        """The sentences' vectors, given the passages'. A sentence that is a whole passage
        (a one-sentence paragraph: a sixth of the news set's sentences) takes the passage's
        vector, and a sentence that recurs is embedded once: a vector is its text's alone
        (the int8 export embeds every text by itself; torch's batches differ in rounding)."""
        row_of = {text: row for row, text in enumerate(self.texts)}
        fresh = [text for text in dict.fromkeys(self.sentence_texts) if text not in row_of]
        made = (embedder.embed(fresh, batch_size=batch_size, progress=progress) if fresh
                else np.empty((0, passage_vectors.shape[1]), dtype=np.float32))
        offset = len(self.texts)  # a source row past the passages' is a row of `made`
        row_of.update((text, offset + row) for row, text in enumerate(fresh))
        source = np.fromiter((row_of[text] for text in self.sentence_texts), dtype=np.int64,
                             count=len(self.sentence_texts))
        out = np.empty((len(source), passage_vectors.shape[1]), dtype=np.float32)
        for start in range(0, len(source), 65536):  # in blocks: no second copy of millions of rows
            rows, part = source[start:start + 65536], out[start:start + 65536]
            own = rows < offset
            part[own] = passage_vectors[rows[own]]
            part[~own] = made[rows[~own] - offset]
        return out


def _write(files, skipped, tmp: Path, embedder, strict: bool, progress: bool, batch_size: int,
           inputs: dict, started: float, options: BuildOptions) -> BuildSummary:
    summary = BuildSummary(tmp, skipped=skipped)
    conn = store.create(tmp / store.STORE)
    batch = Additions(embedder, options)
    seen: dict[str, str] = {}
    from tqdm import tqdm

    # counted by document, not file: one .jsonl file can hold a whole corpus (minutes of
    # cleaning and sentence splitting that a bar by file would show as 0/1)
    reading = tqdm(desc="reading", unit=" documents", disable=not progress)
    for path in files:
        for item in sources.read(path):
            reading.update()
            if isinstance(item, sources.Document) and item.doc_id in seen:
                item = sources.Skipped(str(path), f"duplicate doc_id {item.doc_id!r} (first in {seen[item.doc_id]})")
            if isinstance(item, sources.Skipped):
                _skip(summary, item, strict)
            elif batch.add(conn, item):
                seen[item.doc_id] = str(path)
            else:
                _skip(summary, sources.Skipped(str(path), f"document {item.doc_id!r} has no article text"), strict)
    reading.close()
    crashpoint("build:read")
    if not batch.texts:
        raise BuildError("nothing to index: " + ("; ".join(map(str, summary.skipped)) or "no .txt or .jsonl files"))
    summary.documents, summary.passages = batch.documents, len(batch.texts)
    conn.commit()
    lexical_files = write_lexical(conn, tmp, options.title_context)
    crashpoint("build:lexical")

    vectors = embedder.embed(batch.texts, batch_size=batch_size, progress=progress)
    crashpoint("build:embedded")
    # Cosine similarity = inner product of L2-normalised vectors (Embedder.embed normalises).
    index = vector_index.build(vectors, vector_index.choose(len(vectors), options.vector_index))
    grouped = duplicates.groups(vectors, batch.doc_of, index)
    conn.executemany("INSERT INTO duplicates (passage_id, group_id) VALUES (?, ?)", sorted(grouped.items()))
    placed = stories.MemoryStories()
    stories.place(conn, placed, progress)
    conn.commit()
    conn.close()
    crashpoint("build:store")
    data_files = [store.STORE] + lexical_files
    if options.sentence_vectors:
        sentence_vectors = batch.embed_sentences(embedder, vectors, batch_size * 2, progress)
        data_files += save_sentence_vectors(tmp, sentence_vectors)
        crashpoint("build:sentences")
    # last before the manifest: a build that fails before this leaves no Milvus collection behind
    described, vector_files = vector_store.publish(options.vector_store, index, vectors, tmp)
    data_files += vector_files
    crashpoint("build:vectors")
    manifest = {
        "model": {"name": embedder.name, "backend": embedder.backend, "dimension": embedder.dimension,
                  "normalized": True, "max_tokens": embedder.max_tokens,
                  **({"export_version": embedder.export_version}
                     if getattr(embedder, "export_version", None) is not None else {})},
        "chunker_version": CHUNKER_VERSION,
        "options": asdict(options),
        "counts": {"documents": summary.documents, "passages": summary.passages, "skipped": len(summary.skipped),
                   "sentences": len(batch.sentence_texts)},
        "inputs": inputs,
        "next_story": placed.next_story,
    }
    write_manifest(tmp, manifest, described, grouped, data_files, started)
    return summary


def write_manifest(directory: Path, manifest: dict, vectors: dict, grouped: dict, data_files: list[str],
                   started: float, point: str = "build:manifest") -> None:
    """The manifest, last: what the build or update recorded, plus what every build
    records; `vectors` describes where the vectors are (vector_store.publish)."""
    manifest |= {
        "vector_index": vectors,
        "duplicates": {"threshold": duplicates.THRESHOLD, "grouped_passages": len(grouped),
                       "groups": len(set(grouped.values()))},
        "build_seconds": round(time.perf_counter() - started, 3),
    }
    store.write_manifest(directory, manifest, data_files)
    crashpoint(point)


def _passages(text: str, cleaned, embedder, max_tokens: int, options: BuildOptions) -> list[Passage]:
    if not options.chunking:
        return [Passage(1, cleaned.lines[0].start, cleaned.lines[-1].end)] if cleaned.lines else []
    # the title rides along with every passage when embedded: leave room for it
    room = max_tokens - (embedder.count_tokens(cleaned.title) + 1 if options.title_context and cleaned.title else 0)
    return chunk(text, cleaned, embedder.count_tokens, max(room, max_tokens // 2), options.segmenter,
                 getattr(embedder, "count_tokens_each", None))


def _skip(summary: BuildSummary, item: sources.Skipped, strict: bool) -> None:
    summary.skipped.append(item)
    _fail_if_strict(strict, [item])
    log.warning("skipped %s", item)


def _insert(conn, doc: sources.Document, title: str | None, passages, first_id: int, rowid: int | None = None) -> None:
    conn.execute("INSERT INTO documents (rowid, doc_id, title, source, url, published, author, sha256, text) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (rowid, doc.doc_id, title, doc.source, doc.url, doc.published, doc.author,
                  hashlib.sha256(doc.text.encode()).hexdigest(), doc.text))
    conn.executemany('INSERT INTO passages (id, doc_id, paragraph, start, "end", text) VALUES (?, ?, ?, ?, ?, ?)',
                     [(first_id + i, doc.doc_id, p.paragraph, p.start, p.end, doc.text[p.start:p.end])
                      for i, p in enumerate(passages)])
