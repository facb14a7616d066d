"""Updates of an index held in Milvus (`indexer add|remove --store milvus://...`, and the
writes of a service answering from one): the changed documents' rows upserted into the
generation's own collections and the removed ones deleted, by their stable ids, at a cost
that follows the change and not the index.

The ids only grow: an update appends its passages, sentences and document rows after the
last ones (the manifest's "next"), and publishes by inserting the next manifest (its row
id: the generation number). A replica answers only what its manifest knows (ids below its
"next", less the documents its "pending" names), so rows written before the manifest are
invisible, and a writer killed anywhere leaves the index as the last manifest says: the
next update overwrites what it left (upserts from the same ids) and deletes any tail.

What rows share (a term's document frequency, a story's centroid) is written with the
update's generation number and the value before it (milvus_index.effective): a replica
reads the value its own generation had, however far the writer has got.

A removed document's rows stay GRACE_S seconds after the manifest that removed it (listed
in "pending", so no search answers them), for the replicas still answering from an
earlier manifest, and are deleted by the next update after that.

BM25: every row's weights are normalised by the average length of the build's rows (the
manifest's "average_length"), so scores stay comparable across rows; the IDF is the live
corpus's at query time. A fresh build normalises by the average of what is live now: the
two rank alike while the average moves little (docs/benchmarks.md measures it), and a
rebuild (`indexer build --store`) makes them equal again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter

import numpy as np

from search.embedding.embedder import get_embedder
from search.errors import BuildError, DocumentNotFound
from search.index import milvus_index, store
from search.index.lexical import B, K1, _texts, terms
from search.index.milvus_index import (BATCH, NO_TERMS, PIECES, by_keys, client_for, day_number, effective, keyed,
                                       generation_name, pieces_of, term_key)
from search.index.vector_store import parse

from . import duplicates, milvus_lease, sources, stories
from .build import Additions, recorded_options
from .crashpoints import crashpoint
from .scratch import scratch
from .to_milvus import _pieces, member_row, story_key, story_row
from .update import UpdateSummary, _add_all, _empty_refused, _read

GRACE_S = 60.0  # how long a removed document's rows outlive the manifest that removed it
KEYS_CHUNK = 2048  # string primary keys looked up a request
TAIL_CHUNK = PIECES  # ids looked up or deleted a request by primary key
KEEP_MANIFESTS = 64  # manifests kept: a replica further behind reads everything again


def update(spec: str, srcs=(), remove=(), documents=(), strict: bool = False, embedder=None,
           batch_size: int = 32, **_local_only) -> UpdateSummary:
    """`indexer.update.update` for an index held in Milvus (`spec`: milvus://host:port/NAME).

    Raises:
        IndexNotFound: no index of that name on the server.
        DocumentNotFound: an id in `remove` is not in the index.
        WouldEmptyIndex: the update would remove every document.
        BuildError: (with `strict`) a bad input; an index written before updates existed.
        VectorStoreError: the server is away, or another writer holds the index.
    """
    started = time.perf_counter()
    files, skipped = sources.discover(srcs)
    incoming, skipped = _read(files, list(documents), skipped, strict)
    address = parse(spec)
    client = client_for(address)
    manifest = milvus_index.read_manifest(spec)
    with milvus_lease.held(client, address) as lease:
        manifest = milvus_index.read_manifest(spec)  # the newest, now that no one else writes
        record = manifest["store"]
        if record.get("format", 1) < milvus_index.FORMAT:
            raise BuildError(f"the index {address.collection!r} in Milvus was written before updates were kept; "
                             f"rebuild it with `python -m indexer build SRC --store {spec}`")
        summary = UpdateSummary(spec, skipped=skipped, generation=record["generation"], segments=0)
        writing = _Update(client, manifest, lease)
        known = writing.live_documents({d.doc_id for d in incoming} | set(remove))
        unknown = [doc_id for doc_id in remove if doc_id not in known]
        if unknown:
            raise DocumentNotFound(f"no document with id {unknown[0]!r} in the index; nothing was changed")
        for doc in incoming:
            if doc.doc_id not in known:
                summary.added.append(doc.doc_id)
            elif known[doc.doc_id]["sha256"] != hashlib.sha256(doc.text.encode()).hexdigest():
                summary.replaced.append(doc.doc_id)
            else:
                summary.unchanged.append(doc.doc_id)
        summary.removed = sorted(set(remove) - {d.doc_id for d in incoming})
        if not summary.changed:
            summary.documents, summary.passages = manifest["counts"]["documents"], manifest["counts"]["passages"]
            return summary
        embedder = embedder or get_embedder(manifest["model"]["name"], manifest["model"].get("backend"))
        store.check_model(spec, manifest, embedder.name, embedder.dimension)
        changed = set(summary.added) | set(summary.replaced)
        gone = {doc_id: known[doc_id] for doc_id in set(summary.removed) | set(summary.replaced)}
        writing.write([d for d in incoming if d.doc_id in changed], gone, embedder, batch_size, summary, strict)
        summary.seconds = time.perf_counter() - started
        return summary


class _Update:
    """One update's reads and writes, against the collections of `manifest`."""

    def __init__(self, client, manifest: dict, lease):
        self.client, self.manifest, self.lease = client, manifest, lease
        self.record = manifest["store"]
        self.names = self.record["collections"]
        self.number = int(self.record["generation"][1:])  # the generation published now
        self.next = dict(self.record["next"])
        self.pending = [list(entry) for entry in self.record.get("pending", [])]

    def live_documents(self, doc_ids) -> dict[str, dict]:
        """doc_id -> its live document row (row, sha256, first passage, passages)."""
        if not doc_ids:
            return {}
        dead = {int(entry[0]) for entry in self.pending}
        found = {}
        ids = sorted(doc_ids)
        for start in range(0, len(ids), BATCH):
            some = json.dumps(ids[start:start + BATCH], ensure_ascii=False)
            for d in self.client.query(self.names["documents"], output_fields=["row", "doc_id", "sha256",
                                                                               "first_passage", "passages"],
                                       filter=f"piece == 0 and row < {self.next['documents']} and doc_id in {some}"):
                if int(d["row"]) not in dead:
                    found[d["doc_id"]] = d
        return found

    def write(self, incoming, gone: dict[str, dict], embedder, batch_size: int, summary: UpdateSummary,
              strict: bool) -> None:
        options = recorded_options(self.manifest)
        first = self.next
        with scratch("milvus-update-") as directory:  # (one a killed update left is removed)
            conn = store.create(directory / store.STORE)
            batch = Additions(embedder, options, first_passage=first["passages"], first_sentence=first["sentences"],
                              first_document=first["documents"])
            _add_all(conn, batch, incoming, set(gone), summary, strict)
            counts = self.manifest["counts"]
            gone_passages = sum(int(d["passages"]) for d in gone.values())
            summary.documents = counts["documents"] - len(gone) + batch.documents
            summary.passages = counts["passages"] - gone_passages + len(batch.texts)
            if not summary.passages:
                raise _empty_refused()
            conn.commit()
            placed = MilvusStories(self.client, self.names["stories"], self.number, self.record.get("placed", 0),
                                   first.get("story", 0), self.names.get("members"))
            stories.unplace(placed, sorted(gone))
            stories.place(conn, placed)
            crashpoint("milvus-update:read")
            embedding = time.perf_counter()
            vectors = embedder.embed(batch.texts, batch_size=batch_size)
            sentence_vectors = (batch.embed_sentences(embedder, vectors, batch_size * 2) if options.sentence_vectors
                                else np.empty((0, embedder.dimension), dtype=np.float32))
            summary.embedded_passages = len(batch.texts)
            summary.embed_seconds = time.perf_counter() - embedding
            crashpoint("milvus-update:embedded")
            number = self.number + 1
            dead_rows = sorted({int(d["row"]) for d in gone.values()} | {int(e[0]) for e in self.pending})
            groups, regrouped = self._groups(vectors, batch.doc_of, dead_rows)
            weights, df_changes = self._lexical(conn, options, gone)
            self._write_passages(conn, vectors, weights["p"], groups)
            pieces = self._write_documents(conn, weights["d"])
            self._write_sentences(conn, sentence_vectors)
            sentences = int(conn.execute("SELECT COUNT(*) FROM sentences").fetchone()[0])
            self._clear_tail(len(batch.texts), pieces, sentences)
            crashpoint("milvus-update:rows")
            self._write_terms(df_changes, number)
            self._write_stories(placed, number)
            moved = self._write_members(placed, number, conn, gone)
            for start in range(0, len(regrouped), BATCH):
                self.client.upsert(self.names["passages"], [{"id": pid, "group": g} for pid, g in
                                                            regrouped[start:start + BATCH]], partial_update=True)
            conn.close()
        for part in ("passages", "documents", "sentences", "terms", "stories", "members"):
            if part != "members" or placed.keeps_members:
                self.client.flush(self.names[part])
        crashpoint("milvus-update:flushed")
        now = time.time()
        due = [e for e in self.pending if e[3] <= now - GRACE_S]
        self._purge(due)
        pending = [e for e in self.pending if e not in due] + [
            [int(d["row"]), int(d["first_passage"]), int(d["passages"]), now] for d in gone.values()]
        gone_sentences = self._sentence_count(gone)
        self._publish(number, summary, batch, sentences, gone_sentences, pending, placed,
                      {"dead_documents": sorted(int(d["row"]) for d in gone.values()),
                       "regrouped": sorted(pid for pid, _ in regrouped), "moved_documents": moved})
        summary.generation = generation_name(number)

    # ------------------------------------------------------------------ reading
    def _sentence_count(self, gone: dict[str, dict]) -> int:
        return sum(int(r["sentences"]) for r in self._gone_passages(gone, ["sentences"]))

    def _gone_passages(self, gone: dict[str, dict], fields: list[str]) -> list[dict]:
        """The passage rows of the `gone` documents."""
        firsts = [(int(d["first_passage"]), int(d["passages"])) for d in gone.values()]
        return self._passages([pid for first, n in firsts for pid in range(first, first + n)], fields)

    def _passages(self, ids: list[int], fields: list[str]) -> list[dict]:
        return by_keys(self.client, self.names["passages"], ids, fields)

    def _groups(self, vectors: np.ndarray, doc_of: list[str], dead_rows: list[int]):
        """The new passages' duplicate groups (indexer/duplicates.py), among every live
        passage and each other, as `update._link_copies` finds them: (the new passages'
        groups by position, [(old passage id, its new group)] for the old ones regrouped)."""
        import faiss

        first = self.next["passages"]
        ids = list(range(first, first + len(vectors)))
        if not ids:
            return [], []
        k = duplicates.NEIGHBOURS + 1
        bound = f"id < {first}" + (f" and doc_row not in {dead_rows}" if dead_rows else "")
        old = milvus_index.MilvusPassages(parse(self.record["uri"]), self.names["passages"], self.client, bound=bound)
        old_scores, old_ids = old.search(vectors, k)
        own = faiss.IndexFlatIP(vectors.shape[1])
        own.add(np.ascontiguousarray(vectors, dtype=np.float32))
        new_scores, new_rows = own.search(np.ascontiguousarray(vectors, dtype=np.float32), min(k, len(ids)))
        pairs = []
        for i, scores, found in zip(ids, old_scores, old_ids):  # an old passage is always another document's
            pairs += [(i, int(j)) for s, j in zip(scores, found) if j >= 0 and s >= duplicates.THRESHOLD]
        for n, (i, scores, found) in enumerate(zip(ids, new_scores, new_rows)):
            pairs += [(i, ids[j]) for s, j in zip(scores, found)
                      if j >= 0 and j != n and s >= duplicates.THRESHOLD and doc_of[j] != doc_of[n]]
        together = duplicates.Groups()
        touched = sorted({j for _, j in pairs if j < first})
        recorded = {}
        if touched:
            recorded = {int(r["id"]): int(r["group"]) for r in self.client.query(
                self.names["passages"], ids=touched, output_fields=["id", "group"])}
            joined = sorted({g for g in recorded.values() if g >= 0})
            for start in range(0, len(joined), BATCH):
                for r in self.client.query(self.names["passages"], output_fields=["id", "group"],
                                           filter=f"{bound} and group in {joined[start:start + BATCH]}"):
                    recorded[int(r["id"])] = int(r["group"])
                    together.join(int(r["id"]), int(r["group"]))
        for i, j in pairs:
            together.join(i, j)
        group_of = {node: min(nodes) for nodes in together.groups() if len(nodes) > 1 for node in nodes}
        regrouped = [(pid, group_of[pid]) for pid in sorted(recorded) if group_of.get(pid, -1) != recorded[pid]
                     and pid in group_of]
        return [group_of.get(i, -1) for i in ids], regrouped

    def _lexical(self, conn, options, gone: dict[str, dict]):
        """The new rows' BM25 weights by side, and each touched term's change of document
        frequency: side -> {term key: (column or None, change)}."""
        firsts = {"p": (store.PASSAGE_LEXICAL, self.next["passages"]),
                  "d": (store.DOCUMENT_LEXICAL, self.next["documents"])}
        average = self.record["average_length"]
        weights, changes = {}, {}
        for side, (part, first) in firsts.items():
            analysed = [terms(t) for t in _texts(conn, part, options.title_context, first)]
            change: Counter = Counter()
            for words in analysed:
                change.update(term_key(side, w) for w in set(words))
            for key, n in self._gone_terms(side, gone).items():
                change[key] -= n
            columns = self._columns(side, [k for k in change])
            weights[side] = [self._weights(words, columns, side, average[side]) for words in analysed]
            # (a term whose count did not change needs no row written; a new one always changed)
            changes[side] = {key: (columns[key], n) for key, n in change.items() if n}
        return weights, changes

    def _columns(self, side: str, keys: list[str]) -> dict[str, int]:
        """term key -> its column; terms not yet known get the next columns."""
        found = {}
        for start in range(0, len(keys), BATCH):
            for r in self.client.query(self.names["terms"], filter=keyed(keys[start:start + BATCH]),
                                       output_fields=["key", "column"]):
                found[r["key"]] = int(r["column"])
        columns = self.record["columns"]
        for key in keys:
            if key not in found:
                found[key] = columns[side]
                columns[side] += 1
        return found

    @staticmethod
    def _weights(words: list[str], columns: dict[str, int], side: str, average: float) -> dict[int, float]:
        """As to_milvus.row_weights: tf / (tf + k1 (1 - b + b dl / avgdl)), by column."""
        if not words:
            return NO_TERMS
        norm = K1 * ((1 - B) + B * len(words) / average)
        return {columns[term_key(side, w)]: float(np.float32(tf / (norm + tf))) for w, tf in Counter(words).items()}

    def _gone_terms(self, side: str, gone: dict[str, dict]) -> Counter:
        """term key -> how many of the gone rows of `side` hold it."""
        if not gone:
            return Counter()
        if side == "p":
            rows = self._gone_passages(gone, ["weights"])
        else:
            rows = self.client.query(self.names["documents"], ids=[int(d["row"]) * PIECES for d in gone.values()],
                                     output_fields=["weights"])
        held = Counter(int(c) for r in rows for c in _sparse(r["weights"]) if int(c) not in NO_TERMS)
        keys = {}
        wanted = sorted(held)
        for start in range(0, len(wanted), BATCH):
            for r in self.client.query(self.names["terms"], output_fields=["key", "column"],
                                       filter=f'key like "{side}:%" and column in {wanted[start:start + BATCH]}'):
                keys[int(r["column"])] = r["key"]
        return Counter({keys[c]: n for c, n in held.items() if c in keys})

    # ------------------------------------------------------------------ writing
    def _clear_tail(self, passages: int, documents: dict[int, int], sentences: int) -> None:
        """Delete what an update killed before its manifest left past the rows this one wrote
        (`passages` and `sentences` from the next ids on, `documents`: row -> its pieces): the
        rows it wrote overwrote the rest. A killed update wrote its ids in order from the
        same next ones, so what it left past ours is a run of ids, found by primary key a
        chunk at a time until a chunk holds none (a filter on a range scans the collection)."""
        for part, first in (("passages", self.next["passages"] + passages),
                            ("sentences", self.next["sentences"] + sentences)):
            while self._delete_found(part, list(range(first, first + TAIL_CHUNK))):
                first += TAIL_CHUNK
        # a row of ours that the killed update wrote with more pieces: its first piece past ours
        longer = self._found("documents", [row * PIECES + n for row, n in documents.items()])
        row = self.next["documents"] + len(documents)
        while True:  # the rows past ours: their first pieces
            past = self._found("documents", [r * PIECES for r in range(row, row + TAIL_CHUNK)])
            longer += past
            if not past:
                break
            row += TAIL_CHUNK
        for first in longer:
            self._delete_found("documents", list(range(first, first - first % PIECES + PIECES)))

    def _found(self, part: str, ids: list[int]) -> list[int]:
        """Those of `ids` that are rows of `part`."""
        return [int(r["id"]) for r in by_keys(self.client, self.names[part], ids, ["id"], TAIL_CHUNK)]

    def _delete_found(self, part: str, ids: list[int]) -> int:
        """Delete those of `ids` that are rows of `part`; how many there were."""
        found = self._found(part, ids)
        self._delete(part, found)
        return len(found)

    def _delete(self, part: str, ids: list[int]) -> None:
        for start in range(0, len(ids), TAIL_CHUNK):
            self.client.delete(self.names[part], ids=ids[start:start + TAIL_CHUNK])

    def _write_passages(self, conn, vectors, weights, groups) -> None:
        runs = {pid: (first, count) for pid, first, count in conn.execute(
            "SELECT passage_id, MIN(id), COUNT(*) FROM sentences GROUP BY passage_id")}
        rows = []
        for n, r in enumerate(conn.execute('SELECT p.id, d.rowid - 1 AS doc_row, p.paragraph, p.start, p."end", '
                                           "p.text, d.source, d.published FROM passages p JOIN documents d "
                                           "USING (doc_id) ORDER BY p.id")):
            first, count = runs.get(r["id"], (0, 0))
            rows.append({"id": r["id"], "doc_row": r["doc_row"], "paragraph": r["paragraph"], "start": r["start"],
                         "end": r["end"], "day": day_number(r["published"]), "source": r["source"] or "",
                         "text": r["text"], "group": groups[n], "first_sentence": first, "sentences": count,
                         "weights": weights[n], "vector": vectors[n].tolist()})
        for start in range(0, len(rows), BATCH):
            self.client.upsert(self.names["passages"], rows[start:start + BATCH])

    def _write_documents(self, conn, weights) -> dict[int, int]:
        """Upsert the new document rows; returns row -> how many pieces it has."""
        author = "author" if store.has_author(conn) else "NULL AS author"
        story_of = dict(conn.execute("SELECT doc_id, story FROM stories").fetchall())
        rows = []
        for n, d in enumerate(conn.execute(
                f"SELECT rowid - 1 AS row, doc_id, title, source, url, published, {author}, text, sha256, "
                "(SELECT MIN(id) FROM passages p WHERE p.doc_id = d.doc_id) AS first_passage, "
                "(SELECT COUNT(*) FROM passages p WHERE p.doc_id = d.doc_id) AS passages FROM documents d "
                "ORDER BY rowid")):
            for piece, text in enumerate(_pieces(d["text"])):
                rows.append({"id": d["row"] * PIECES + piece, "row": d["row"], "piece": piece,
                             "story": story_of.get(d["doc_id"], -1), "first_passage": d["first_passage"] or 0,
                             "day": day_number(d["published"]), "passages": d["passages"], "doc_id": d["doc_id"],
                             "title": d["title"] or "", "source": d["source"] or "", "url": d["url"] or "",
                             "published": d["published"] or "", "author": d["author"] or "", "text": text,
                             "sha256": d["sha256"], "weights": weights[n] if piece == 0 else NO_TERMS})
        for start in range(0, len(rows), BATCH):
            self.client.upsert(self.names["documents"], rows[start:start + BATCH])
        return dict(Counter(int(r["row"]) for r in rows))

    def _write_sentences(self, conn, vectors) -> None:
        from search.index.sentence_vectors import quantize

        rows = [dict(s) for s in conn.execute('SELECT id, passage_id, start, "end" FROM sentences ORDER BY id')]
        if len(vectors):
            codes, scales = quantize(vectors)  # as a build keeps them, and so writes them to Milvus
            for row, vector in zip(rows, codes.astype(np.float32) * scales[:, None]):
                row["vector"] = vector.tolist()
            for start in range(0, len(rows), BATCH):
                self.client.upsert(self.names["sentences"], rows[start:start + BATCH])

    def _write_terms(self, changes: dict, number: int) -> None:
        keys = [key for side in changes.values() for key in side]
        rows = []
        now = {}
        for start in range(0, len(keys), BATCH):
            now.update((r["key"], r) for r in self.client.query(self.names["terms"], filter=keyed(keys[start:start + BATCH]),
                                                                 output_fields=["*"]))
        for side in changes.values():
            for key, (column, change) in side.items():
                before = int(effective(now[key], self.number)) if key in now else 0
                rows.append({"key": key, "column": int(column), "df": max(0, before + change), "generation": number,
                             "previous": before, "vector": [1.0, 0.0]})
        for start in range(0, len(rows), 5000):
            self.client.upsert(self.names["terms"], rows[start:start + 5000])

    def _write_stories(self, placed: "MilvusStories", number: int) -> None:
        rows = [("t", term, story, w) for term, row in placed.postings.items() for story, w in row.items()]
        rows += [("f", term, -1, n) for term, n in placed.df.items()]
        keys = [story_key(kind, term, story) for kind, term, story, _ in rows]
        keys += [story_key("n", story=story) for story in placed.norm2]
        now = placed.values(keys)
        out = [story_row(kind, now.get(story_key(kind, term, story), 0.0) + change, number, term, story,
                         previous=now.get(story_key(kind, term, story), 0.0)) for kind, term, story, change in rows]
        out += [story_row("n", norm2, number, story=story, previous=now.get(story_key("n", story=story), norm2))
                for story, norm2 in placed.norm2.items()]
        for start in range(0, len(out), 5000):
            self.client.upsert(self.names["stories"], out[start:start + 5000])

    def _write_members(self, placed: "MilvusStories", number: int, conn, gone: dict[str, dict]) -> list[int]:
        """Write the placements made and moved (with the story each had before), and the
        moved articles' new story on their document rows; returns those rows."""
        if not placed.keeps_members:
            return []
        before = placed.stored_story(placed.moved())
        rows = [member_row(p, doc_id, story, vector, number, before.get(p)) for p, (doc_id, story, vector)
                in sorted(placed.vectors.items())]
        for start in range(0, len(rows), 5000):
            self.client.upsert(self.names["members"], rows[start:start + 5000])
        new = {doc_id for (doc_id,) in conn.execute("SELECT doc_id FROM documents")}
        older = {doc_id: story for doc_id, story in placed.story_of.items() if doc_id not in new and doc_id not in gone}
        found = self.live_documents(sorted(older))
        updates = [{"id": piece["id"], "story": older[doc_id]} for doc_id, d in sorted(found.items())
                   for piece in pieces_of(self.client, self.names["documents"], int(d["row"]), ["id"])]
        for start in range(0, len(updates), BATCH):
            self.client.upsert(self.names["documents"], updates[start:start + BATCH], partial_update=True)
        return sorted(int(d["row"]) for d in found.values())

    def _purge(self, due: list) -> None:
        """Delete the rows of documents removed over GRACE_S ago, by primary key."""
        for row, first, n, _ in due:
            passages = list(range(int(first), int(first) + int(n)))
            sentences = [i for r in self._passages(passages, ["first_sentence", "sentences"])
                         for i in range(int(r["first_sentence"]), int(r["first_sentence"]) + int(r["sentences"]))]
            self._delete("sentences", sentences)  # (a purge killed here runs again: passages go second)
            self._delete("passages", passages)
            self._delete_found("documents", list(range(int(row) * PIECES, (int(row) + 1) * PIECES)))

    def _publish(self, number: int, summary: UpdateSummary, batch, sentences: int, gone_sentences: int,
                 pending: list, placed: "MilvusStories", changes: dict) -> None:
        counts = self.manifest["counts"]
        record = {**self.record, "generation": generation_name(number), "pending": pending,
                  "next": {"passages": self.next["passages"] + len(batch.texts),
                           "documents": self.next["documents"] + batch.documents,
                           "sentences": self.next["sentences"] + sentences, "story": placed.next_story},
                  "placed": self.record.get("placed", 0) + placed.placed}
        manifest = {**self.manifest, "store": record, "updated_from": self.record["generation"],
                    "counts": {**counts, "documents": summary.documents, "passages": summary.passages,
                               "sentences": counts.get("sentences", 0) - gone_sentences + sentences},
                    "changes": {**changes, "added": len(summary.added), "replaced": len(summary.replaced),
                                "removed": len(summary.removed)}}
        text = json.dumps(manifest, ensure_ascii=False)
        if len(text.encode("utf-8")) > milvus_index.VARCHAR:
            raise BuildError("the manifest grew too large for its Milvus collection (too many removals pending): "
                             "retry in a minute, once they are dropped")
        name = self.names["manifest"]
        self.lease.check()
        self.client.insert(name, [{"id": number, "manifest": text, "vector": [1.0, 0.0]}])
        self.client.flush(name)
        crashpoint("milvus-update:published")
        self.client.delete(name, filter=f"id >= 0 and id <= {number - KEEP_MANIFESTS}")


def _vector(row: dict) -> dict[str, float] | None:
    if "member" not in row:
        return None
    terms, weights = json.loads(row["member"])
    return dict(zip(terms, weights))


def _sparse(weights) -> dict:
    """A sparse vector as pymilvus returns it: {column: weight}."""
    return weights if isinstance(weights, dict) else dict(weights)


class MilvusStories(stories.MemoryStories):
    """The stories' state in NAME_G_stories as generation `number` had it, with the
    placements made since in memory (indexer/stories.py's StoredStories, in Milvus)."""

    def __init__(self, client, name: str, number: int, placed: int, next_story: int, members: str | None = None):
        super().__init__(next_story)
        self._client, self._name, self._number, self._placed = client, name, number, placed
        # a story is split only when every placement's vector is kept (an index written
        # before they were has no members collection, or too few rows in it)
        self._members = members if members and client.has_collection(members) else None
        self.keeps_members = self._members is not None
        self._splits = self._members is not None and placed == int(client.query(
            self._members, filter=f"placement < {placed}", output_fields=["count(*)"])[0]["count(*)"])

    def articles(self) -> int:
        return self._placed + super().articles()

    def values(self, keys: list[str], chunk: int = BATCH) -> dict[str, float]:
        """key -> its value as of this generation."""
        out = {}
        keys = sorted(set(keys))
        for start in range(0, len(keys), chunk):
            for r in self._client.query(self._name, filter=keyed(keys[start:start + chunk]),
                                        output_fields=["key", "value", "generation", "previous"]):
                out[r["key"]] = float(effective(r, self._number, "value"))
        return out

    def frequencies(self, terms: set[str]) -> dict[str, int]:
        out = super().frequencies(terms)
        found = self.values([story_key("f", t) for t in terms])
        for t in terms:
            n = found.get(story_key("f", t))
            if n:
                out[t] = out.get(t, 0) + int(n)
        return out

    def _weights(self, terms) -> list[tuple[str, int, float]]:
        """(term, story, centroid weight) of the terms: the stories' inverted lists, by a
        filter on the term (Milvus keeps no list by term, so its cost follows the collection)."""
        by_key = {term_key("", t)[1:]: t for t in terms}
        keys = sorted(by_key)
        out = []
        for start in range(0, len(keys), 100):
            expression = f'key like "t:%" and term in {json.dumps(keys[start:start + 100], ensure_ascii=False)}'
            for r in self._client.query(self._name, filter=expression, output_fields=["*"], limit=16_384):
                out.append((by_key[r["term"]], int(r["story"]), float(effective(r, self._number, "value"))))
        return out

    def candidates(self, probe: dict[str, float], limit: int) -> list[int]:
        partial = self._partial(probe)
        for term, story, w in self._weights(probe):
            partial[story] = partial.get(story, 0.0) + probe[term] * w
        return stories._best(partial, limit)

    def dots(self, vector: dict[str, float], stories_: list[int]) -> dict[int, float]:
        # each (term, story) weight by its primary key: a filter on term and story scans the collection
        out = super().dots(vector, stories_)
        pairs = {story_key("t", term, story): (term, story) for term in vector for story in stories_}
        for key, w in self.values(list(pairs), chunk=KEYS_CHUNK).items():
            term, story = pairs[key]
            out[story] += vector[term] * w
        return out

    def size(self, story: int) -> int:
        if not self._splits:
            return 0
        stored = self._client.query(self._members, filter=self._of(story), output_fields=["count(*)"])
        count = int(stored[0]["count(*)"])
        if count > stories.SPLIT_MAX + len(self.vectors):  # more than the moves made here can change
            return count
        return len(self._stored(story, ["placement", "doc_id", "story", "generation", "previous"]))

    def members(self, story: int) -> list[stories.Member]:
        rows = self._stored(story, ["placement", "doc_id", "story", "generation", "previous", "member"])
        return [(p, doc_id, vector) for p, (doc_id, _, vector) in sorted(rows.items())]

    def _of(self, story: int) -> str:
        """The placements in `story` as of this generation (a row an update wrote after it
        holds the story before it in `previous`)."""
        n = self._number
        return (f"placement < {self._placed} and ((generation <= {n} and story == {story}) or "
                f"(generation > {n} and previous == {story}))")

    def _stored(self, story: int, fields: list[str]) -> dict[int, tuple]:
        rows = {int(r["placement"]): (r["doc_id"], int(effective(r, self._number, "story")), _vector(r))
                for r in self._client.query(self._members, filter=self._of(story), output_fields=fields,
                                            limit=16_384)}
        rows.update(self.vectors)  # the placements and moves made here
        return {p: row for p, row in rows.items() if row[1] == story}

    def placed_as(self, doc_ids: list[str]) -> dict[str, stories.Placed]:
        if not self.keeps_members:
            return {}
        rows: dict[int, tuple] = {}
        for start in range(0, len(doc_ids), BATCH):
            some = json.dumps(doc_ids[start:start + BATCH], ensure_ascii=False)
            for r in self._client.query(self._members, filter=f"placement < {self._placed} and doc_id in {some}",
                                        output_fields=["placement", "doc_id", "story", "generation", "previous",
                                                       "member"]):
                rows[int(r["placement"])] = (r["doc_id"], int(effective(r, self._number, "story")), _vector(r))
        return self._latest_placed(rows, doc_ids)

    def moved(self) -> list[int]:
        """The placements of earlier updates that a split here moved, or a deletion took out."""
        return sorted(p for p in self.vectors if p < self._placed)

    def stored_story(self, placements: list[int]) -> dict[int, int]:
        """placement -> its story as of this generation (before the moves made here)."""
        return {int(r["placement"]): int(effective(r, self._number, "story"))
                for r in by_keys(self._client, self._members, placements,
                                 ["placement", "story", "generation", "previous"])}

    def norms(self, stories_: list[int]) -> dict[int, float]:
        out = {s: self.norm2[s] for s in stories_ if s in self.norm2}
        found = self.values([story_key("n", story=s) for s in stories_ if s not in out])
        out.update((s, found[story_key("n", story=s)]) for s in stories_ if s not in out)
        return out
