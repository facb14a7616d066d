"""The on-disk index format, shared by the indexer (writer) and the searcher (reader).

An index directory holds these files and nothing executable (no pickle):

- `vectors.faiss`  FAISS index of L2-normalised passage vectors, ids = passage ids;
- `sentences.npy`  int8 codes of the L2-normalised vector of every passage sentence, row =
                   sentence id, and `sentence_scales.npy` their float32 scales (for ranking and
                   highlighting; plain .npy arrays, loaded with allow_pickle=False; see
                   search/index/sentence_vectors.py). Format 2 held float32 or float16 rows there;
- `store.sqlite`   documents, passages, sentences, near-duplicate groups;
- `lexical/`       BM25 indexes (bm25s's layout: .npy arrays and JSON) of the passages, row =
                   passage id, and of whole documents, row = document's position by rowid;
                   with their term counts and row lengths, which updates extend (an index
                   written without them is rebuilt by its first update);
- `manifest.json`  what built it (format, model, dimension, chunker), counts, checksums.

A checksum names its hash ("xxh3_128:<hex>"); a bare hex digest is a SHA-256, as format 3
and before wrote them, and stays valid in the segments an update carries over. They guard
against torn and rotted files, not against someone who can write the index (and so its
manifest too): a fast non-cryptographic hash, because a reader checks every file it opens.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import sqlite3
import stat
from collections import OrderedDict
from contextlib import suppress
from datetime import datetime, timezone
from pathlib import Path

from search.errors import IndexCorrupt, IndexMismatch, IndexNotFound
from search.index.yielding import give_way

# 2: BM25 moved from FTS5 tables to lexical/ (bm25s); 3: int8 sentence vectors;
# 4: xxh3 checksums (a format-3 index differs only in its checksums' hash)
FORMAT_VERSION = 4
READABLE_FORMATS = (2, 3, 4)  # a format-2 index differs only in its sentence vectors' dtype
APPENDABLE_FORMATS = (3, 4)  # an update adds a segment to these, and merges anything older
CHECKSUM = "xxh3_128"
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
SENTENCE_VECTORS = "sentences.npy"
SENTENCE_SCALES = "sentence_scales.npy"
STORE = "store.sqlite"
PASSAGE_LEXICAL = "lexical/passages"
# A passage's lexical score mixes in its document's: the words of a query are often
# spread over an article.
DOCUMENT_LEXICAL = "lexical/documents"

SCHEMA = """
CREATE TABLE documents (
    doc_id    TEXT PRIMARY KEY,
    title     TEXT,
    source    TEXT NOT NULL,   -- file name, or the article's URL when it has one
    url       TEXT,
    published TEXT,
    author    TEXT,            -- (added after format 2 was released: older stores lack it)
    sha256    TEXT NOT NULL,   -- of the document's text, to spot changed documents
    text      TEXT NOT NULL    -- the original text: passage offsets index into it
);
CREATE TABLE passages (
    id        INTEGER PRIMARY KEY,  -- the passage's id in vectors.faiss
    doc_id    TEXT NOT NULL REFERENCES documents(doc_id),
    paragraph INTEGER NOT NULL,     -- 1-based ordinal of its (first) paragraph
    start     INTEGER NOT NULL,     -- documents.text[start:end] == text
    "end"     INTEGER NOT NULL,
    text      TEXT NOT NULL
);
CREATE INDEX passages_doc ON passages(doc_id);
CREATE TABLE sentences (
    id         INTEGER PRIMARY KEY,  -- row in sentences.npy
    passage_id INTEGER NOT NULL REFERENCES passages(id),
    start      INTEGER NOT NULL,     -- absolute offsets in documents.text
    "end"      INTEGER NOT NULL
);
CREATE INDEX sentences_passage ON sentences(passage_id);
-- Passages that say the same thing (syndicated or translated copies), found at build time.
CREATE TABLE duplicates (
    passage_id INTEGER PRIMARY KEY REFERENCES passages(id),
    group_id   INTEGER NOT NULL      -- the smallest passage id in the group
);
CREATE INDEX duplicates_group ON duplicates(group_id);
"""


def build_hint(index_dir: Path | str) -> str:
    return f"run `python -m indexer build seeds --index {index_dir}`"


def _hasher(checksum: str | None = None):
    """A new hash object for `checksum`'s algorithm (None: the one written now)."""
    if checksum is None or checksum.startswith(CHECKSUM + ":"):
        import xxhash

        return CHECKSUM + ":", xxhash.xxh3_128()
    if ":" not in checksum:
        return "", hashlib.sha256()
    raise IndexMismatch(f"unknown checksum {checksum.split(':')[0]!r}: this version knows {CHECKSUM} and sha256")


def _blocks(f, size: int = 8 << 20):
    """The file's contents in blocks read into one reused buffer (no copy a block)."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    while n := f.readinto(buffer):
        yield view[:n]


def file_checksum(path: str | Path, like: str | None = None) -> str:
    """The file's checksum, with the hash `like` (a recorded checksum) names; default: xxh3."""
    prefix, digest = _hasher(like)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if not size:
            return prefix + digest.hexdigest()
        # hashed where the page cache holds it: a read's copy would cost more than xxh3
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                for start in range(0, size, 64 << 20):
                    digest.update(view[start:start + (64 << 20)])
            finally:
                view.release()
    return prefix + digest.hexdigest()


def copy_verified(source: Path, target: Path, expected: str) -> None:
    """Copy a file while checking it against its recorded checksum (one read for both).

    Raises:
        IndexCorrupt: the file fails its checksum (`target` is left partial, in scratch).
    """
    prefix, digest = _hasher(expected)
    with open(source, "rb") as src, open(target, "wb") as dst:
        for block in _blocks(src):
            digest.update(block)
            dst.write(block)
    if prefix + digest.hexdigest() != expected:
        raise IndexCorrupt(f"index at {source.parent} is corrupt ({source.name} fails its checksum): "
                           f"{build_hint(source.parent)} to rebuild it")


def write_manifest(directory: Path, manifest: dict, data_files: list[str], known: dict[str, str] | None = None) -> None:
    """Write `manifest.json`, the last file of a generation: `manifest` plus the format
    version, the time, and the checksum of each of `data_files` (names within `directory`)
    and of the files `known` already has them for (an update's carried segments)."""
    manifest |= {
        "format_version": FORMAT_VERSION,  # an update rewrites an older index's files in this one
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "checksums": {**(known or {}), **{name: file_checksum(directory / name) for name in data_files}},
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def read_manifest(index_dir: Path) -> dict:
    """Read and sanity-check `manifest.json`.

    Raises:
        IndexNotFound: the directory or its manifest is missing.
        IndexCorrupt: the manifest is not valid JSON.
        IndexMismatch: the manifest is of another format version.
    """
    path = Path(index_dir) / MANIFEST
    if not path.is_file():
        raise IndexNotFound(f"no index at {index_dir}: {build_hint(index_dir)} first")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise IndexCorrupt(f"index at {index_dir} has an unreadable manifest ({e}): {build_hint(index_dir)}") from e
    if manifest.get("format_version") not in READABLE_FORMATS:
        raise IndexMismatch(
            f"index at {index_dir} has format version {manifest.get('format_version')!r}, this version "
            f"reads {' and '.join(map(str, READABLE_FORMATS))}: {build_hint(index_dir)} to rebuild it")
    return manifest


# Files this process has verified: (device, inode, size, mtime) -> checksum. A generation
# shares its carried segments with the previous one as hard links (the same inode), so a
# process that reloads verifies only what the update wrote. Each generation adds its new
# files; a service that reloads all day keeps the most recent (a generation has ~100).
_VERIFIED: OrderedDict[tuple[int, int, int, int], str] = OrderedDict()
_VERIFIED_MAX = 4096


def file_identity(status: os.stat_result) -> tuple[int, int, int, int]:
    """A file's identity across the generations that hard-link it: (device, inode, size, mtime)."""
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


def verify_checksums(index_dir: Path, manifest: dict) -> None:
    """Refuse an index whose files differ from what the build wrote."""
    # One stat a file, by a plain string: a served index reopens every generation, and its
    # hundred-odd files' pathlib objects and second stat were a third of a reopen's CPU.
    folder = os.fspath(index_dir)
    for name, expected in manifest["checksums"].items():
        path = os.path.join(folder, name)
        try:
            status = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            status = None
        if status is None or not stat.S_ISREG(status.st_mode):
            raise IndexCorrupt(f"index at {index_dir} is missing {name}: {build_hint(index_dir)} to rebuild it")
        key = file_identity(status)
        if _VERIFIED.get(key) == expected:
            with suppress(KeyError):  # (another thread's open may have just let it go)
                _VERIFIED.move_to_end(key)
            continue
        if file_checksum(path, like=expected) != expected:
            raise IndexCorrupt(f"index at {index_dir} is corrupt ({name} fails its checksum): "
                               f"{build_hint(index_dir)} to rebuild it")
        _VERIFIED[key] = expected
        give_way()  # (checksumming a whole index is seconds of a merge's CPU)
        if len(_VERIFIED) > _VERIFIED_MAX:
            _VERIFIED.popitem(last=False)


def check_model(index_dir: Path, manifest: dict, model_name: str, dimension: int | None = None) -> None:
    """Refuse to search an index with a model other than the one that built it."""
    built = manifest["model"]
    if built["name"] != model_name:
        raise IndexMismatch(
            f"index at {index_dir} was built with model {built['name']!r} (dimension {built['dimension']}), "
            f"not {model_name!r}: search it with SEARCH_MODEL={built['name']!r} (ask --model), "
            f"or rebuild it with this model: {build_hint(index_dir)} --model {model_name!r}")
    if dimension is not None and built["dimension"] != dimension:
        raise IndexMismatch(
            f"index at {index_dir} holds {built['dimension']}-dimensional vectors but model {model_name!r} "
            f"makes {dimension}-dimensional ones: {build_hint(index_dir)} to rebuild it")


def connect(path: Path, readonly: bool = True) -> sqlite3.Connection:
    """Open the passage store; read-only unless building."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    return conn


def create(path: Path) -> sqlite3.Connection:
    """A new, empty store to write, inside a generation not yet published (or a scratch
    directory). SQLite's own syncs are off: publishing fsyncs every file of the generation
    before any manifest names it, so a crash before that leaves nothing that reads this
    file, and each of its commits need not wait for the disk (five fsyncs of the schema
    alone cost an update's writer ~5 ms a store)."""
    conn = connect(path, readonly=False)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA journal_mode = MEMORY")  # (a rollback still works; the file is scratch until published)
    conn.executescript(SCHEMA)
    return conn


def has_author(conn: sqlite3.Connection, schema: str = "main") -> bool:
    """Whether the store records authors (stores written before they were added do not)."""
    return any(row[1] == "author" for row in conn.execute(f"PRAGMA {schema}.table_info(documents)"))
