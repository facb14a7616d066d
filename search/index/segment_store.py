"""The store's rows across a generation's segments, read as one store.

Each segment an update writes carries its own `store.sqlite` beside its vectors: the
documents it added, their passages and sentences (global ids, document rowids global
too), and the near-duplicate links the update made or changed, older passages' included.
The base's store is the generation's own `store.sqlite`. Nothing is ever rewritten in
place, so an update costs what it adds and a reader verifies only the new segment's
file. A document and its passages are always in one segment, so a query joining them
runs segment by segment; what a later segment says of a passage (its duplicate group)
overrides what an earlier one said, and deleted passages and documents (deleted.npy,
deleted_documents.npy) are left out by the reader.

Generations written before segments had stores of their own hold every live row in the
one store: they are read as a single part (`Layout.own_stores` false).
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from search.index import store, story_store
from search.index.yielding import give_way


@dataclass(frozen=True)
class Part:
    name: str  # its segment's ("" the base)
    path: Path
    passages: tuple[int, int]  # [first, end) passage ids
    documents: tuple[int, int]  # [first, end) document rows (rowid - 1)


class Connections:
    """Read-only connections to store files, one per thread and file, shared by the
    stores of one index's successive generations in a process.

    A generation carries most of its segments' files from the one before (hard links: the
    same inodes), so a reload opens only the new segment's file, and a file's connections
    are closed when the last store reading it is freed. Python's sqlite3 connection sits
    in a reference cycle with its statement cache: left to the cyclic collector, a
    serving worker's old connections were torn down in bursts, each holding it tens of ms
    while articles arrived (docs/benchmarks.md).
    """

    def __init__(self):
        self._open: dict[tuple[int, tuple], sqlite3.Connection] = {}  # (thread, file) -> connection
        self._users: dict[tuple, int] = {}  # file -> stores reading it
        self._lock = threading.Lock()  # inserts and removals (reads take none)

    def get(self, file: tuple, path: Path) -> sqlite3.Connection:
        key = (threading.get_ident(), file)
        conn = self._open.get(key)
        if conn is None:
            conn = store.connect(path)
            with self._lock:
                self._open[key] = conn
        return conn

    def hold(self, files: list[tuple]) -> None:
        with self._lock:
            for file in files:
                self._users[file] = self._users.get(file, 0) + 1

    def release(self, files: list[tuple]) -> None:
        """A store reading `files` is gone: close the connections no store needs now."""
        with self._lock:
            unused = set()
            for file in files:
                self._users[file] -= 1
                if not self._users[file]:
                    del self._users[file]
                    unused.add(file)
            closing = [key for key in self._open if key[1] in unused]
            closed = [self._open.pop(key) for key in closing]
        for conn in closed:
            conn.close()

    def close_own(self, files: list[tuple]) -> None:
        """This thread's connections to `files`."""
        ident = threading.get_ident()
        with self._lock:
            closed = [self._open.pop((ident, file)) for file in files if (ident, file) in self._open]
        for conn in closed:
            conn.close()


def _file_key(path: Path) -> tuple:
    """A store file's identity across the generations that link it."""
    try:
        return store.file_identity(os.stat(path))
    except OSError:  # (not there: connecting says so, by name)
        return ("path", str(path))


class SegmentedStore:
    def __init__(self, layout, directory: Path, connections: Connections | None = None):
        """`connections`: the previous generation's store's (`Searcher` carries them), so
        that the segments both hold keep their connections."""
        directory = Path(directory)
        if layout.own_stores:
            self.parts = [Part(s.name, s.path(directory) / store.STORE, s.passages, s.documents)
                          for s in layout.segments]
        else:
            self.parts = [Part("", directory / store.STORE, (0, layout.passage_capacity),
                               (0, layout.document_capacity))]
        self._starts = np.array([p.passages[0] for p in self.parts], dtype=np.int64)
        self.live = layout.live()
        self.live_documents = layout.live_documents()
        self.connections = connections or Connections()
        self._files = [_file_key(p.path) for p in self.parts]
        self.connections.hold(self._files)
        weakref.finalize(self, self.connections.release, self._files)
        self._authors: list[str | None] = [None] * len(self.parts)

    def connection(self, part: int) -> sqlite3.Connection:
        """This thread's read-only connection to `part`'s store."""
        return self.connections.get(self._files[part], self.parts[part].path)

    def close(self) -> None:
        """This thread's connections (the others close when the last store using them goes)."""
        self.connections.close_own(self._files)

    def author(self, part: int) -> str:
        """The SQL for a document's author in `part` (stores older than authors lack it)."""
        if self._authors[part] is None:
            self._authors[part] = "d.author" if store.has_author(self.connection(part)) else "NULL"
        return self._authors[part]

    def rows(self, sql: str, params: tuple = (), since: int = 0) -> Iterator[sqlite3.Row]:
        """`sql`'s rows from every part holding passage ids at or past `since`, in order
        (deleted rows included: the caller knows which of its ids are live)."""
        for part in self._holding(since):
            yield from self.connection(part).execute(sql, params)

    def _holding(self, since: int) -> list[int]:
        """The parts holding passage ids at or past `since`."""
        return [part for part, p in enumerate(self.parts) if p.passages[1] > since]

    def integers(self, sql: str, width: int, parts: list[int], params: tuple = ()) -> np.ndarray:
        """`sql`'s rows of `width` integers from `parts`, in order, as one (n, width) array,
        read without a Python object per row (a million rows are read at every open)."""
        chunks = [np.empty((0, width), dtype=np.int64)]
        for part in parts:
            cursor = self.connection(part).cursor()
            cursor.row_factory = None
            flat = np.fromiter(itertools.chain.from_iterable(cursor.execute(sql, params)), dtype=np.int64)
            chunks.append(flat.reshape(-1, width))
        return np.concatenate(chunks)

    def _in(self, part: int, sql: str, values, *params) -> list[sqlite3.Row]:
        """The rows of `sql` (holding one `{ids}` for an IN list, and perhaps `{author}`)
        for `values` in `part`, in chunks of SQLite's limit on bound parameters; `params`
        come after the values."""
        values, out = list(values), []
        for start in range(0, len(values), 500):
            chunk = values[start:start + 500]
            out += self.connection(part).execute(
                sql.format(ids=",".join("?" * len(chunk)), author=self.author(part)), (*chunk, *params)).fetchall()
        return out

    def for_passages(self, sql: str, ids, *params) -> list[sqlite3.Row]:
        """The rows of `sql` (as `_in`) for passage `ids`, each asked of the part that holds it."""
        ids = np.unique(np.asarray(list(ids), dtype=np.int64))
        if not len(ids):
            return []
        owner = np.searchsorted(self._starts, ids, side="right") - 1
        return [row for part in np.unique(owner).tolist()
                for row in self._in(part, sql, ids[owner == part].tolist(), *params)]

    def passages_of(self, doc_ids) -> list[int]:
        """The live passages of the documents `doc_ids` (by the passages' doc_id index)."""
        values = sorted(set(doc_ids))
        return [i for part in range(len(self.parts))
                for (i,) in self._in(part, "SELECT id FROM passages WHERE doc_id IN ({ids})", values) if self.live[i]]

    def part_of_document(self, doc_id: str) -> int | None:
        """The part holding `doc_id`'s live version, or None."""
        for part in range(len(self.parts) - 1, -1, -1):
            for (row,) in self.connection(part).execute("SELECT rowid - 1 FROM documents WHERE doc_id = ?",
                                                        (doc_id,)):
                if row < len(self.live_documents) and self.live_documents[row]:
                    return part
        return None

    def live_documents_by_id(self, doc_ids) -> dict[str, tuple[int, sqlite3.Row]]:
        """doc_id -> (part, its row: doc_id, sha256, rowid - 1 AS row) for those of `doc_ids`
        that are live."""
        found: dict[str, tuple[int, sqlite3.Row]] = {}
        values = sorted(set(doc_ids))
        for part in range(len(self.parts)):
            for row in self._in(part, "SELECT doc_id, sha256, rowid - 1 AS row FROM documents WHERE doc_id IN ({ids})",
                                values):
                if self.live_documents[row["row"]]:
                    found[row["doc_id"]] = (part, row)
        return found

    def live_doc_ids(self) -> list[str]:
        return [doc_id for row, doc_id in self.rows("SELECT rowid - 1, doc_id FROM documents")
                if self.live_documents[row]]

    def recorded_group_of(self, ids) -> dict[int, int]:
        """passage id -> its group as last recorded, for those of `ids` in one."""
        found: dict[int, int] = {}
        ids = sorted(set(ids))
        for part in range(len(self.parts)):  # later parts override
            found.update(map(tuple, self._in(
                part, "SELECT passage_id, group_id FROM duplicates WHERE passage_id IN ({ids})", ids)))
        return found

    def group_members(self, groups) -> dict[int, int]:
        """passage id -> group for every passage whose group, as last recorded, is one of
        `groups` (deleted passages included)."""
        groups = sorted(set(groups))
        named = {pid for part in range(len(self.parts))
                 for (pid,) in self._in(part, "SELECT passage_id FROM duplicates WHERE group_id IN ({ids})", groups)}
        wanted = set(groups)
        return {pid: g for pid, g in self.recorded_group_of(named).items() if g in wanted}

    def groups(self, group_of: np.ndarray | None = None, since_part: int = 0) -> np.ndarray:
        """passage id -> its near-duplicate group as recorded (-1: none), later parts
        overriding earlier ones; deleted passages not yet left out (Duplicates does).
        `group_of`: what the parts before `since_part` said (a previous reader's), reused."""
        out = np.full(len(self.live), -1, dtype=np.int64)
        if group_of is not None:
            out[:len(group_of)] = group_of
        for part in range(since_part, len(self.parts)):  # in order: later parts override
            pairs = self.integers("SELECT passage_id, group_id FROM duplicates", 2, [part])
            out[pairs[:, 0]] = pairs[:, 1]
        return out

    def stories(self, story_of: np.ndarray | None = None, since_part: int = 0) -> np.ndarray:
        """document row -> its story (-1: none recorded; stores older than stories have
        none), a part's moves overriding what older parts said. `story_of`: what the parts
        before `since_part` said (a previous reader's)."""
        out = np.full(len(self.live_documents), -1, dtype=np.int64)
        if story_of is not None:
            out[:len(story_of)] = story_of[:len(out)]
        for part in range(since_part, len(self.parts)):
            conn = self.connection(part)
            if story_store.has_stories(conn):
                pairs = self.integers("SELECT d.rowid - 1, s.story FROM stories s JOIN documents d USING (doc_id)",
                                      2, [part])
                out[pairs[:, 0]] = pairs[:, 1]
                moved = conn.execute("SELECT doc_id, story FROM stories WHERE doc_id NOT IN "
                                     "(SELECT doc_id FROM documents)").fetchall()
                if moved:  # articles of older parts that a split here moved
                    to = dict(moved)
                    for earlier in range(part):
                        for row, doc_id in self._in(earlier, "SELECT rowid - 1, doc_id FROM documents "
                                                             "WHERE doc_id IN ({ids})", sorted(to)):
                            out[row] = to[doc_id]
        return out

    def documents_by_row(self, rows) -> list[dict]:
        """doc_id, title, source, published and row of the documents at `rows`, with the
        text of each one's first passage (`lead`) and where it is (`lead_paragraph`,
        `lead_start`, `lead_end`), in the order of `rows`."""
        rows = sorted(int(r) for r in rows)
        starts = [p.documents[0] for p in self.parts]
        found: dict[int, dict] = {}
        for part in sorted({int(np.searchsorted(starts, r, side="right")) - 1 for r in rows}):
            mine = [r + 1 for r in rows if self.parts[part].documents[0] <= r < self.parts[part].documents[1]]
            for row in self._in(part, "SELECT d.rowid - 1 AS row, d.doc_id, d.title, d.source, d.published, "
                                "p.text AS lead, p.paragraph AS lead_paragraph, p.start AS lead_start, "
                                "p.\"end\" AS lead_end FROM documents d JOIN passages p ON p.id = "
                                "(SELECT MIN(id) FROM passages WHERE doc_id = d.doc_id) "
                                "WHERE d.rowid IN ({ids})", mine):
                found[row["row"]] = dict(row)
        return [found[r] for r in rows if r in found]

    # What a searcher reads, by name: the seam a store held elsewhere (search/index/milvus_index.py)
    # answers too. Rows of deleted passages and documents are included where the caller masks them.

    def document_rows(self, since: int = 0) -> np.ndarray:
        """[passage id, its document's row] for the passages from `since` on."""
        # (+p.id: the passages' index on doc_id holds both columns, so it is read rather than
        # the table, which holds every passage's text)
        return self.integers("SELECT p.id, d.rowid - 1 FROM passages p JOIN documents d USING (doc_id) "
                             "WHERE +p.id >= ?", 2, self._holding(since), (since,))

    def document_dates(self, since_row: int = 0) -> list[tuple[int, str]]:
        """(document row, published) of the dated documents from row `since_row` on."""
        return [pair for part, p in enumerate(self.parts) if p.documents[1] > since_row
                for pair in self.connection(part).execute(
                    "SELECT rowid - 1, published FROM documents WHERE rowid > ? AND published IS NOT NULL",
                    (since_row,))]

    def sentence_runs(self, since: int = 0) -> np.ndarray:
        """[passage id, its first sentence id, its sentence count] from `since` on."""
        return self.integers("SELECT passage_id, MIN(id), COUNT(*) FROM sentences WHERE passage_id >= ? "
                             "GROUP BY passage_id", 3, self._holding(since), (since,))

    def sources(self) -> Iterator[tuple[int, str]]:
        """(document row, source) of every document."""
        return self.rows("SELECT rowid - 1, source FROM documents")

    def doc_ids(self) -> Iterator[tuple[int, str]]:
        """(passage id, doc_id) of every passage."""
        return self.rows("SELECT id, doc_id FROM passages")

    def passage_rows(self, ids) -> list[dict]:
        """Passages `ids` with their citations: id, doc_id, paragraph, start, end, text,
        title, source, published, author."""
        return [dict(row) for row in self.for_passages(
            'SELECT p.id, p.doc_id, p.paragraph, p.start, p."end", p.text, d.title, d.source, d.published, '
            "{author} AS author FROM passages p JOIN documents d USING (doc_id) WHERE p.id IN ({ids})", ids)]

    def sentences_of(self, ids) -> list[dict]:
        """passage_id, id, start, end of the sentences of passages `ids`, by id."""
        return sorted((dict(r) for r in self.for_passages(
            'SELECT passage_id, id, start, "end" FROM sentences WHERE passage_id IN ({ids})', ids)),
            key=lambda r: r["id"])

    def sentence_spans(self, doc_id: str, start: int, end: int) -> list[tuple[int, int]]:
        """(start, end) of the sentences of `doc_id`'s passages within [start, end), in order."""
        part = self.part_of_document(doc_id)
        if part is None:
            return []
        return [(s["start"], s["end"]) for s in self.connection(part).execute(
            'SELECT s.start, s."end" FROM sentences s JOIN passages p ON p.id = s.passage_id '
            'WHERE p.doc_id = ? AND p.start >= ? AND p."end" <= ? ORDER BY s.id', (doc_id, start, end))]

    def passage_spans(self, doc_id: str) -> list[tuple[int, int]]:
        """(start, end) of `doc_id`'s passages, in order."""
        part = self.part_of_document(doc_id)
        return [] if part is None else [(r["start"], r["end"]) for r in self.connection(part).execute(
            'SELECT start, "end" FROM passages WHERE doc_id = ? ORDER BY id', (doc_id,))]

    def text_span(self, doc_id: str, start: int, end: int) -> str:
        """`doc_id`'s text from `start` to `end`."""
        part = self.part_of_document(doc_id)
        return self.connection(part).execute("SELECT substr(text, ?, ?) FROM documents WHERE doc_id = ?",
                                             (start + 1, end - start, doc_id)).fetchone()[0]

    def document(self, doc_id: str) -> dict | None:
        """doc_id, title, source, url, published, author, text and passage count of the
        live `doc_id`, or None."""
        part = self.part_of_document(doc_id)
        row = None if part is None else self.connection(part).execute(
            f"SELECT doc_id, title, source, url, published, {self.author(part)} AS author, text, "
            "(SELECT COUNT(*) FROM passages p WHERE p.doc_id = d.doc_id) AS passages "
            "FROM documents d WHERE doc_id = ?", (doc_id,)).fetchone()
        return None if row is None else dict(row)

    def shared_parts(self, other: "SegmentedStore") -> int:
        """How many of this store's first parts are `other`'s too (a later generation's
        carried segments: the same names and ranges)."""
        same = 0
        for mine, theirs in zip(self.parts, other.parts):
            if (mine.name, mine.passages, mine.documents) != (theirs.name, theirs.passages, theirs.documents):
                break
            same += 1
        return same


def mark_dead(conn: sqlite3.Connection, old: SegmentedStore) -> None:
    """Temporary tables `dead` (deleted passage ids) and `dead_rows` (deleted document
    rows) of `old`, for SQL that copies its live rows."""
    conn.execute("CREATE TEMP TABLE dead (id INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO dead VALUES (?)", [(i,) for i in np.flatnonzero(~old.live).tolist()])
    conn.execute("CREATE TEMP TABLE dead_rows (row INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO dead_rows VALUES (?)", [(i,) for i in np.flatnonzero(~old.live_documents).tolist()])


def fold(old: SegmentedStore, target: Path, parts: list[int] | None = None) -> None:
    """Write the live rows of every part after the base (`parts`: of these, in order) as
    one store at `target` (ids and document rows as they were; the latest duplicate link
    of each passage)."""
    conn = store.create(target)
    try:
        mark_dead(conn, old)
        for part in [old.parts[n] for n in parts] if parts is not None else old.parts[1:]:
            conn.execute("ATTACH DATABASE ? AS part", (str(part.path),))
            for sql in ("INSERT INTO documents (rowid, doc_id, title, source, url, published, author, sha256, text) "
                        "SELECT rowid, doc_id, title, source, url, published, author, sha256, text "
                        "FROM part.documents WHERE rowid - 1 NOT IN (SELECT row FROM dead_rows)",
                        'INSERT INTO passages (id, doc_id, paragraph, start, "end", text) '
                        'SELECT id, doc_id, paragraph, start, "end", text FROM part.passages '
                        "WHERE id NOT IN (SELECT id FROM dead)",
                        'INSERT INTO sentences (id, passage_id, start, "end") SELECT id, passage_id, start, "end" '
                        "FROM part.sentences WHERE passage_id NOT IN (SELECT id FROM dead)",
                        "INSERT OR REPLACE INTO duplicates (passage_id, group_id) SELECT passage_id, group_id "
                        "FROM part.duplicates WHERE passage_id NOT IN (SELECT id FROM dead)"):
                conn.execute(sql)
            story_store.copy(conn, "part")
            conn.commit()
            conn.execute("DETACH DATABASE part")
            give_way()
    finally:
        conn.close()
