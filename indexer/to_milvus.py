"""Writing an index into Milvus (`indexer build --store milvus://HOST:PORT/NAME`): a
built generation directory copied into the collections search/index/milvus_index.py
reads, then published by moving the alias. Killed anywhere (the crash points below),
the alias still names the last complete generation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from search.errors import VectorStoreError
from search.index import milvus_index, store
from search.index.lexical import Postings
from search.index.milvus_index import (BACKEND, BATCH, NO_TERMS, PIECE_CHARS, PIECES, TERM_BYTES, VARCHAR,
                                       client_for, collections, day_number, generations_of, term_key)
from search.index.vector_store import MilvusAddress, parse

from . import milvus_lease
from .crashpoints import crashpoint


def _schemas(client, dimension: int) -> dict:
    from pymilvus import DataType

    def new():
        return client.create_schema(auto_id=False, enable_dynamic_field=False)

    passages = new()
    for name in ("id", "doc_row", "paragraph", "start", "end", "group", "first_sentence", "sentences"):
        passages.add_field(name, DataType.INT64, is_primary=name == "id")
    passages.add_field("day", DataType.INT64)  # its document's, for filters (UNDATED: none)
    passages.add_field("source", DataType.VARCHAR, max_length=1024)
    passages.add_field("text", DataType.VARCHAR, max_length=VARCHAR)
    passages.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    passages.add_field("weights", DataType.SPARSE_FLOAT_VECTOR)
    documents = new()
    for name in ("id", "row", "piece", "story", "first_passage", "passages", "day"):
        documents.add_field(name, DataType.INT64, is_primary=name == "id")
    for name, length in (("doc_id", 1024), ("title", 4096), ("source", 1024), ("url", 4096), ("published", 64),
                         ("author", 1024)):
        documents.add_field(name, DataType.VARCHAR, max_length=length)
    documents.add_field("sha256", DataType.VARCHAR, max_length=64)  # an update leaves an unchanged text alone
    documents.add_field("text", DataType.VARCHAR, max_length=VARCHAR)
    documents.add_field("weights", DataType.SPARSE_FLOAT_VECTOR)
    vocabulary = new()
    vocabulary.add_field("key", DataType.VARCHAR, max_length=TERM_BYTES + 8, is_primary=True)
    vocabulary.add_field("column", DataType.INT64)
    vocabulary.add_field("df", DataType.INT64)
    # the update that last wrote df, and df before it (milvus_index.effective)
    vocabulary.add_field("generation", DataType.INT64)
    vocabulary.add_field("previous", DataType.INT64)
    vocabulary.add_field("vector", DataType.FLOAT_VECTOR, dim=2)  # a collection needs one
    # what placing the next article in a story needs (indexer/stories.py), one row each:
    # "t:TERM:STORY" a centroid's weight, "n:STORY" its squared length, "f:TERM" how many
    # articles hold the term ("f:" itself: how many were placed)
    stories = new()
    stories.add_field("key", DataType.VARCHAR, max_length=TERM_BYTES + 40, is_primary=True)
    stories.add_field("term", DataType.VARCHAR, max_length=TERM_BYTES + 8)
    stories.add_field("story", DataType.INT64)
    stories.add_field("value", DataType.DOUBLE)
    stories.add_field("generation", DataType.INT64)
    stories.add_field("previous", DataType.DOUBLE)
    stories.add_field("vector", DataType.FLOAT_VECTOR, dim=2)
    # each placed article's story and the vector it joined with, by placement number (what
    # a split reads, indexer/stories.py); `previous`: its story before the update that wrote it
    members = new()
    members.add_field("placement", DataType.INT64, is_primary=True)
    members.add_field("doc_id", DataType.VARCHAR, max_length=1024)
    members.add_field("story", DataType.INT64)
    members.add_field("generation", DataType.INT64)
    members.add_field("previous", DataType.INT64)
    members.add_field("member", DataType.VARCHAR, max_length=VARCHAR)  # JSON: [terms, weights]
    members.add_field("vector", DataType.FLOAT_VECTOR, dim=2)
    sentences = new()
    for name in ("id", "passage_id", "start", "end"):
        sentences.add_field(name, DataType.INT64, is_primary=name == "id")
    sentences.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    manifest = new()
    manifest.add_field("id", DataType.INT64, is_primary=True)
    manifest.add_field("manifest", DataType.VARCHAR, max_length=VARCHAR)
    manifest.add_field("vector", DataType.FLOAT_VECTOR, dim=2)
    return {"passages": passages, "documents": documents, "terms": vocabulary, "sentences": sentences,
            "stories": stories, "members": members, "manifest": manifest}


def _index_params(client, part: str):
    params = client.prepare_index_params()
    if part in ("passages", "documents"):
        # every posting kept: the inner product is the whole BM25 sum
        params.add_index("weights", index_type="SPARSE_INVERTED_INDEX", metric_type="IP",
                         params={"drop_ratio_build": 0.0})
    if part != "documents":
        params.add_index("vector", index_type="FLAT", metric_type="IP")
    return params


def row_weights(postings: Postings) -> list[dict[int, float]]:
    """Each row's BM25 term weights without the IDF: the sparse vector a query's IDF
    weights multiply."""
    tf, norm = postings.term_frequencies()
    weights = (tf / (norm + tf)).astype(np.float32)
    out: list[dict[int, float]] = [{} for _ in range(len(postings.lengths))]
    for row, column, weight in zip(postings.rows.tolist(), postings.columns.tolist(), weights.tolist()):
        out[row][column] = weight
    return out


def _pieces(text: str) -> list[str]:
    """A document's text in pieces that each fit a VARCHAR."""
    pieces = [text[i:i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)] or [""]
    if len(pieces) > PIECES:
        raise ValueError(f"a document of {len(text):,} characters is too long for an index in Milvus")
    return pieces


def write(generation: Path, spec: str, manifest: dict, progress: bool = False) -> dict:
    """Write the built generation directory `generation` (a single segment, as a build
    writes it) into new collections and point the alias at them; `progress`: a bar of the
    rows written. Returns the manifest's `store` record."""
    address = parse(spec)
    client = client_for(address)
    with milvus_lease.held(client, address) as lease:  # no update or other build meanwhile
        return _write(generation, spec, manifest, progress, address, client, lease)


def _write(generation: Path, spec: str, manifest: dict, progress: bool, address, client, lease) -> dict:
    from search.index.sentence_vectors import SentenceVectors
    from search.index.vector_store import FaissStore

    before = milvus_index.current_token(spec)
    serving = _collections_of(client, address)  # what replicas answer from until the alias moves
    existing = generations_of(client, address)
    # the next number after every generation's and every update's; a builder racing this
    # one fails creating the same collection
    number = max([int(t[1:]) for t in existing + [before or "g0"]] or [0]) + 1
    token = milvus_index.generation_name(number)
    names = collections(address, token)
    dimension = int(manifest["model"]["dimension"])
    schemas = _schemas(client, dimension)
    taken = [name for name in names.values() if client.has_collection(name)]
    if taken:  # another build is writing this generation now: never write into its collections
        raise VectorStoreError(f"Milvus already holds {taken[0]}: another build of {address.collection!r} is "
                               "publishing; run this one after it")
    conn = store.connect(generation / store.STORE)
    try:
        for part, schema in schemas.items():
            client.create_collection(names[part], schema=schema, index_params=_index_params(client, part))
        crashpoint("milvus:collections")
        lexical = {side: Postings.read(generation / part)
                   for side, part in (("p", store.PASSAGE_LEXICAL), ("d", store.DOCUMENT_LEXICAL))}
        counts = manifest["counts"]
        with _bar(progress, counts["passages"] + counts["documents"] + counts.get("sentences", 0)) as bar:
            _write_rows(_Counted(client, bar), names, conn, FaissStore.read(generation),
                        SentenceVectors.open(generation), lexical, number)
        record = {"backend": BACKEND, "uri": f"milvus://{address.host}:{address.port}/{address.collection}",
                  "token": token, "generation": token, "format": milvus_index.FORMAT, "collections": names,
                  # where an update's ids start, its new terms' columns, and the average
                  # lengths every row's BM25 weights are normalised by (indexer/milvus_update.py)
                  "next": {"passages": counts["passages"], "documents": counts["documents"],
                           "sentences": counts.get("sentences", 0), "story": manifest.get("next_story", 0)},
                  "columns": {side: len(postings.vocab) for side, postings in lexical.items()},
                  "average_length": {side: _average(postings) for side, postings in lexical.items()},
                  "placed": _placed(conn), "pending": []}
        published = {key: value for key, value in manifest.items() if key not in ("checksums", "files")}
        published["store"] = record
        published["vector_index"] = {"backend": BACKEND, "type": "Milvus FLAT (inner product)",
                                     "collection": names["passages"]}
        text = json.dumps(published, ensure_ascii=False)
        if len(text.encode("utf-8")) > VARCHAR:
            raise ValueError("the manifest is too large for its Milvus collection")
        client.insert(names["manifest"], [{"id": number, "manifest": text, "vector": [1.0, 0.0]}])
        crashpoint("milvus:rows")
        for name in names.values():
            client.flush(name)
        crashpoint("milvus:flushed")
    except BaseException:
        for name in names.values():
            if client.has_collection(name):
                client.drop_collection(name)
        raise
    finally:
        conn.close()
    lease.check()
    _point_alias(client, address.collection, names["manifest"])
    crashpoint("milvus:published")
    _collect(client, address, keep={token, serving})
    return record


class _Counted:
    """A client whose inserts move a progress bar (terms, not counted, move it not)."""

    def __init__(self, client, bar):
        self._client, self._bar = client, bar

    def insert(self, name: str, rows: list[dict]) -> None:
        self._client.insert(name, rows)
        if not name.endswith("_terms"):
            self._bar.update(len(rows))


def _bar(progress: bool, total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc="writing to Milvus", unit=" rows", disable=not progress)


def _write_rows(client, names, conn, vectors, sentence_vectors, lexical: dict[str, Postings], number: int) -> None:
    groups = dict(conn.execute("SELECT passage_id, group_id FROM duplicates").fetchall())
    runs = {pid: (first, count) for pid, first, count in conn.execute(
        "SELECT passage_id, MIN(id), COUNT(*) FROM sentences GROUP BY passage_id")}
    weights = row_weights(lexical["p"])
    rows = []
    for r in conn.execute('SELECT p.id, d.rowid - 1 AS doc_row, p.paragraph, p.start, p."end", p.text, '
                          "d.source, d.published FROM passages p JOIN documents d USING (doc_id) ORDER BY p.id"):
        first, count = runs.get(r["id"], (0, 0))
        rows.append({"id": r["id"], "doc_row": r["doc_row"], "paragraph": r["paragraph"], "start": r["start"],
                     "day": day_number(r["published"]), "source": r["source"] or "",
                     "end": r["end"], "text": r["text"], "group": groups.get(r["id"], -1), "first_sentence": first,
                     "sentences": count, "weights": weights[r["id"]] or NO_TERMS})
        if len(rows) == BATCH:
            _insert_passages(client, names["passages"], rows, vectors)
            rows = []
    _insert_passages(client, names["passages"], rows, vectors)
    author = "author" if store.has_author(conn) else "NULL AS author"
    stories = _stories(conn)
    weights = row_weights(lexical["d"])
    rows = []
    for d in conn.execute(f"SELECT rowid - 1 AS row, doc_id, title, source, url, published, {author}, text, sha256, "
                          "(SELECT MIN(id) FROM passages p WHERE p.doc_id = d.doc_id) AS first_passage, "
                          "(SELECT COUNT(*) FROM passages p WHERE p.doc_id = d.doc_id) AS passages "
                          "FROM documents d ORDER BY rowid"):
        for piece, text in enumerate(_pieces(d["text"])):
            rows.append({"id": d["row"] * PIECES + piece, "row": d["row"], "piece": piece,
                         "story": stories.get(d["doc_id"], -1), "first_passage": d["first_passage"] or 0,
                         "day": day_number(d["published"]),
                         "passages": d["passages"], "doc_id": d["doc_id"], "title": d["title"] or "",
                         "source": d["source"] or "", "url": d["url"] or "", "published": d["published"] or "",
                         "author": d["author"] or "", "text": text, "sha256": d["sha256"],
                         "weights": (weights[d["row"]] or NO_TERMS) if piece == 0 else NO_TERMS})
        if len(rows) >= BATCH:
            client.insert(names["documents"], rows)
            rows = []
    if rows:
        client.insert(names["documents"], rows)
    rows = [{"key": term_key(side, term), "column": column, "df": int(df[column]), "generation": number,
             "previous": int(df[column]), "vector": [1.0, 0.0]}
            for side, postings in lexical.items() for df in [postings.document_frequencies()]
            for term, column in postings.vocab.items()]
    for start in range(0, len(rows), 5000):
        client.insert(names["terms"], rows[start:start + 5000])
    for start in range(0, len(rows := story_rows(conn, number)), 5000):
        client.insert(names["stories"], rows[start:start + 5000])
    for start in range(0, len(rows := member_rows(conn, number)), 5000):
        client.insert(names["members"], rows[start:start + 5000])
    rows = []
    for s in conn.execute('SELECT id, passage_id, start, "end" FROM sentences ORDER BY id'):
        rows.append(dict(s))
        if len(rows) == BATCH:
            _insert_sentences(client, names["sentences"], rows, sentence_vectors)
            rows = []
    _insert_sentences(client, names["sentences"], rows, sentence_vectors)


def story_key(kind: str, term: str = "", story: int = -1) -> str:
    """A row's key in NAME_G_stories: "t:TERM:STORY", "n:STORY" or "f:TERM" (a long term
    by its digest, as in NAME_G_terms)."""
    term = term_key("", term)[1:]
    return {"t": f"t:{term}:{story}", "n": f"n:{story}", "f": f"f:{term}"}[kind]


def story_row(kind: str, value: float, number: int, term: str = "", story: int = -1,
              previous: float | None = None) -> dict:
    return {"key": story_key(kind, term, story), "term": term_key("", term)[1:], "story": story,
            "value": float(value), "generation": number, "previous": float(value if previous is None else previous),
            "vector": [1.0, 0.0]}


def story_rows(conn, number: int) -> list[dict]:
    """The stories' state of a store (search/index/story_store.py) as rows of NAME_G_stories."""
    from search.index import story_store

    if not story_store.has_stories(conn):
        return []
    rows = [story_row("t", w, number, term, story) for term, story, w in
            conn.execute("SELECT term, story, weight FROM story_terms")]
    rows += [story_row("n", norm2, number, story=story) for story, norm2 in
             conn.execute("SELECT story, norm2 FROM story_norms")]
    rows += [story_row("f", n, number, term) for term, n in conn.execute("SELECT term, articles FROM story_df")]
    return rows


def member_row(placement: int, doc_id: str, story: int, vector: dict[str, float], number: int,
               previous: int | None = None) -> dict:
    """A row of NAME_G_members: an article's placement, its story and the vector it joined with."""
    member = json.dumps([list(vector), list(vector.values())], ensure_ascii=False)
    if len(member.encode("utf-8")) > VARCHAR:
        raise VectorStoreError(f"the story terms of {doc_id!r} are too long for an index in Milvus")
    return {"placement": placement, "doc_id": doc_id, "story": story, "generation": number,
            "previous": story if previous is None else previous, "member": member, "vector": [1.0, 0.0]}


def member_rows(conn, number: int) -> list[dict]:
    """The placements a store keeps (search/index/story_store.py) as rows of NAME_G_members."""
    from indexer.stories import stored_members
    from search.index import story_store

    if not story_store.members_kept(conn):
        return []
    return [member_row(p, doc_id, story, vector, number) for p, doc_id, story, vector in stored_members(conn)]


def _average(postings: Postings) -> float:
    n = len(postings.lengths)
    return float(postings.lengths.mean()) if n and postings.lengths.any() else 1.0


def _placed(conn) -> int:
    from indexer.stories import PLACED
    from search.index import story_store

    if not story_store.has_stories(conn):
        return 0
    return sum(n for (n,) in conn.execute("SELECT articles FROM story_df WHERE term = ?", (PLACED,)))


def _collections_of(client, address: MilvusAddress) -> str | None:
    """The collections' generation the alias names now (before this build's publish:
    replicas answer from it until they look again)."""
    name = milvus_index._aliased(client, address.collection)
    match = name and re.fullmatch(rf"{re.escape(address.collection)}_(g[0-9]{{6,}})_manifest", name)
    return match.group(1) if match else None


def _stories(conn) -> dict[str, int]:
    from search.index import story_store

    if not story_store.has_stories(conn):
        return {}
    return dict(conn.execute("SELECT doc_id, story FROM stories").fetchall())


def _insert_passages(client, name, rows, vectors) -> None:
    if rows:
        found = vectors.vectors(np.array([r["id"] for r in rows], dtype=np.int64))
        client.insert(name, [{**r, "vector": v.tolist()} for r, v in zip(rows, found)])


def _insert_sentences(client, name, rows, sentence_vectors) -> None:
    if rows:
        found = sentence_vectors.rows(np.array([r["id"] for r in rows], dtype=np.int64))
        client.insert(name, [{**r, "vector": v.tolist()} for r, v in zip(rows, found)])


def _point_alias(client, alias: str, collection: str) -> None:
    """Publish: `alias` names `collection` from now on (created the first time)."""
    if alias in client.list_aliases().get("aliases", []):
        client.alter_alias(collection_name=collection, alias=alias)
    else:
        client.create_alias(collection_name=collection, alias=alias)


def _collect(client, address: MilvusAddress, keep: set) -> None:
    """Drop every generation but those in `keep` (the one just published, and the one
    before it that replicas answer from until they look at the alias again), and so what
    a build killed half way left too."""
    for token in generations_of(client, address):
        if token not in keep:
            for name in collections(address, token).values():
                if client.has_collection(name):
                    client.drop_collection(name)
