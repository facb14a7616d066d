"""An index held entirely in Milvus: service replicas that need no index directory.

`indexer build SRC... --store milvus://host:port/NAME` builds as usual and then writes the
generation (indexer/to_milvus.py) into collections of one generation name G (g000001,
g000002, ...: numbered as an index directory's generations are), and points the alias
NAME at the last:

    NAME_G_passages   id, doc_row, paragraph, start, end, text, the vector, the BM25 term
                      weights (a sparse vector), the duplicate group, where the passage's
                      sentences start and how many it has
    NAME_G_documents  one row per piece of a document (`row * PIECES + piece`): doc_id,
                      title, source, url, published, author, story, its passages, the text
                      of the piece (a VARCHAR holds 64 kB; almost every article is one
                      piece); the first piece holds the whole document's BM25 term weights
    NAME_G_terms      each term of either BM25 index ("p:" or "d:" and the term): its
                      column and how many rows hold it
    NAME_G_sentences  id, passage_id, start, end, the vector
    NAME_G_manifest   one row: the generation's manifest

Publishing is `alter_alias` on NAME: one atomic switch every replica sees on its next open.

The lexical side is the embedded default's BM25 exactly (search/index/lexical.py: its
analysis, Robertson's IDF, k1 1.2, b 0.75), as a sparse inner product Milvus computes: a
row's weight for a term is its length-normalised term frequency, a query's weight is the
term's IDF from the document frequencies in NAME_G_terms, so the IDF is the corpus's at
query time. (Milvus's own BM25 function has Lucene's IDF and its own statistics: it
ranks in another order than the default does.)

A replica holds in memory what the embedded default holds per passage (its document row,
duplicate group, sentence run; per document its source, date and story) and asks Milvus
for text, citations, sentences, vectors and both searches.
"""

from __future__ import annotations

import functools
import json
import re

import numpy as np

from search.errors import IndexNotFound, VectorStoreError
from search.index.lexical import idf
from search.index.vector_store import MILVUS_MAX_LIMIT, MilvusAddress, MilvusStore, id_expression, parse

BACKEND = "milvus-index"
# 2: documents carry their text's digest and the stories' state has a collection, so that
# an update (indexer/milvus_update.py) can be written; 1 could only be rebuilt
FORMAT = 2
# (indexes written before "members" have none: indexer/milvus_update.py then never splits a story)
PARTS = ("passages", "documents", "terms", "sentences", "stories", "members", "manifest")
PIECES = 1024  # pieces a document may have: its rows are row * PIECES + piece
PIECE_CHARS = 16_000  # at most 4 bytes a character: a piece's text fits a VARCHAR
VARCHAR = 65_535
BATCH = 500  # rows an insert or query asks for
# pieces looked up first for a document's text (16 x 16k characters); a longer one asks again
FEW_PIECES = 16
# rows an update adds that a replica looks up by primary key; more are read in ranges
DELTA = 5_000
SCAN = 10_000  # rows a replica reads a request when it opens (Milvus answers at most 16,384)
TERM_BYTES = 512  # a longer term is keyed by its digest
# Milvus refuses an empty sparse vector: a row without terms (or a document's later piece)
# weighs this column, which no term has and no query asks for
NO_TERMS = {2**32 - 2: 1.0}


UNDATED = -(2**40)  # the day number of a document without a date


def day_number(published: str | None) -> int:
    """`published` as the day number the date filters compare (search/retrieval/recency.py)."""
    from search.retrieval import recency

    number = recency.day(published)
    return UNDATED if number != number else int(number)


def where(filters, row_of: dict[str, int]) -> str:
    """`Filters` as a Milvus expression over the passages' own fields (their document's
    row, its source, its day): what the embedded index does with its masks, said in the
    filter language of a collection that may hold any number of rows."""
    from search.retrieval import recency

    passages = []
    if filters.doc_id:
        rows = sorted({row_of[d] for d in filters.doc_id if d in row_of}) or [-1]
        passages.append(f"doc_row in {rows}")
    if filters.source:
        passages.append(f"source in {json.dumps(sorted(set(filters.source)), ensure_ascii=False)}")
    if filters.published_from or filters.published_to:
        inside = [f"day >= {int(recency.day(filters.published_from))}"] if filters.published_from else \
            [f"day > {UNDATED}"]
        if filters.published_to:
            inside.append(f"day <= {int(recency.day(filters.published_to))}")
        dated = " and ".join(inside)
        passages.append(f"(({dated}) or day == {UNDATED})" if filters.undated else f"({dated})")
    return " and ".join(passages)


def is_milvus(spec) -> bool:
    return isinstance(spec, str) and spec.strip().startswith("milvus://")


def generations_of(client, address: MilvusAddress) -> list[str]:
    """The generations with any collection on the server (complete or not), oldest first."""
    found = (re.fullmatch(rf"{re.escape(address.collection)}_(g[0-9]{{6,}})_[a-z]+", name)
             for name in client.list_collections())
    return sorted({m.group(1) for m in found if m}, key=lambda g: int(g[1:]))


def collections(address: MilvusAddress, token: str) -> dict[str, str]:
    return {part: f"{address.collection}_{token}_{part}"
            for part in PARTS}


@functools.lru_cache(maxsize=8)
def client_for(address: MilvusAddress):
    """One client an address in a process (a replica checks the alias every second)."""
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise VectorStoreError("an index in Milvus needs pymilvus: pip install '.[milvus]'") from exc
    try:
        return MilvusClient(uri=address.uri, timeout=30)
    except Exception as exc:  # noqa: BLE001 - pymilvus raises its own kinds for one failure
        raise VectorStoreError(f"cannot reach Milvus at {address.uri}: {exc}") from exc


def keyed(keys) -> str:
    """The expression `key in [...]` for string primary keys, each quoted and escaped as
    Milvus parses it (pymilvus's own `ids=` leaves a quote in a key unescaped)."""
    return f"key in {json.dumps(list(keys), ensure_ascii=False)}"


def term_key(side: str, term: str) -> str:
    """A term's primary key in NAME_G_terms: its side ("p" passages, "d" documents) and
    the term (a very long one by its digest)."""
    if len(term.encode("utf-8")) > TERM_BYTES:
        import hashlib

        term = "#" + hashlib.sha256(term.encode("utf-8")).hexdigest()
    return f"{side}:{term}"


# ---------------------------------------------------------------------------------------
# Reading


def _aliased(client, alias: str) -> str | None:
    """The collection `alias` names, None when there is no such alias (asked without an
    error: pymilvus logs a failed call with its traceback)."""
    if alias not in client.list_aliases().get("aliases", []):
        return None
    return client.describe_alias(alias=alias)["collection_name"]


def read_manifest(spec: str) -> dict:
    """The manifest of the generation the alias points at.

    Raises:
        IndexNotFound: no index of that name on the server.
        VectorStoreError: the server cannot be reached."""
    address = parse(spec)
    client = client_for(address)
    try:
        name = _aliased(client, address.collection)
    except Exception as exc:  # noqa: BLE001 - pymilvus raises its own kinds for one failure
        raise VectorStoreError(f"cannot reach Milvus at {address.uri}: {exc}") from exc
    if name is None:
        raise IndexNotFound(f"no index named {address.collection!r} in Milvus at {address.uri}: "
                            f"run `python -m indexer build SRC --store {spec}` first")
    client.load_collection(name)
    newest = _newest(client, name)
    rows = client.query(name, filter=f"id == {newest}", output_fields=["manifest"]) if newest is not None else []
    if not rows:
        raise IndexNotFound(f"the index {address.collection!r} in Milvus has no manifest")
    return json.loads(rows[0]["manifest"])


def manifests(client, name: str, since: int) -> list[dict]:
    """The manifests of `name` (a manifest collection) published after generation number
    `since`, oldest first: what changed since a replica last looked."""
    rows = client.query(name, filter=f"id > {int(since)}", output_fields=["id", "manifest"])
    return [json.loads(r["manifest"]) for r in sorted(rows, key=lambda r: r["id"])]


def _newest(client, name: str) -> int | None:
    """The number of the newest manifest: a build writes its generation's first, each
    update (indexer/milvus_update.py) the next, into the same collection."""
    ids = [int(r["id"]) for r in client.query(name, filter="id >= 0", output_fields=["id"])]
    return max(ids) if ids else None


def generation_name(number: int) -> str:
    return f"g{number:06d}"


def current_token(spec: str) -> str | None:
    """The generation the alias points at now, its updates counted (None: no alias yet,
    or the server is away: nothing newer to serve)."""
    address = parse(spec)
    client = client_for(address)
    try:
        name = _aliased(client, address.collection)
        match = name and re.fullmatch(rf"{re.escape(address.collection)}_(g[0-9]{{6,}})_manifest", name)
        if not match:
            return None
        newest = _newest(client, name)
    except Exception:  # noqa: BLE001
        return None
    # (an index written before updates numbered its one manifest 0)
    return generation_name(newest) if newest else match.group(1)


def _scan(client, name: str, fields: list[str], key: str, size: int, where: str = "", offset: int = 0) -> list[dict]:
    """Every row of `name` whose `key` runs offset..offset+size-1, a range of keys a request."""
    rows = []
    for start in range(offset, offset + size, SCAN):
        expression = " and ".join(e for e in (where, f"{key} >= {start} and {key} < {min(start + SCAN, offset + size)}") if e)
        rows += client.query(name, filter=expression, output_fields=fields, limit=SCAN)
    return rows


def by_keys(client, name: str, ids, fields: list[str], chunk: int = BATCH) -> list[dict]:
    """The rows of `name` with these primary keys (that exist), `chunk` keys a request: a
    lookup by key, where a filter on a range of keys or on another field scans the collection."""
    ids = list(ids)
    return [r for start in range(0, len(ids), chunk)
            for r in client.query(name, ids=ids[start:start + chunk], output_fields=fields)]


def pieces_of(client, name: str, row: int, fields: list[str]) -> list[dict]:
    """The rows of document `row` in collection `name`, looked up by primary key (row *
    PIECES + piece), not by a filter on `row`, which scans the collection."""
    first = int(row) * PIECES
    found = client.query(name, ids=list(range(first, first + FEW_PIECES)), output_fields=fields)
    if len(found) == FEW_PIECES:  # a long document: the rest of its pieces
        found += client.query(name, ids=list(range(first + FEW_PIECES, first + PIECES)), output_fields=fields)
    return found


def effective(row: dict, number: int, field: str = "df") -> float:
    """A shared row's value as of generation `number`: an update writes the value with
    its own generation beside the value before it, so a replica that has not yet seen that
    update (or an update killed before it published) reads the one before."""
    if row.get("generation", 0) > number:
        return row["previous"]
    return row[field]


class MilvusIndex:
    """What a searcher reads, from a generation's collections (as of the manifest given:
    rows an update appended after it are never answered); `previous`: the index this
    replica served before, of the same collections, whose arrays are carried."""

    def __init__(self, manifest: dict, previous: "MilvusIndex | None" = None):
        record = manifest["store"]
        self.address = parse(record["uri"])
        self.names = record["collections"]
        self.token = record["token"]
        self.number = int(record.get("generation", record["token"])[1:])
        self.client = client_for(self.address)
        if previous is None or previous.token != self.token:
            for name in self.names.values():
                if name.endswith(("_stories", "_members")) and not self.client.has_collection(name):
                    continue  # (format 1 had none)
                self.client.load_collection(name)
        counts, following = manifest["counts"], record.get("next", {})
        self.passage_capacity = int(following.get("passages", counts["passages"]))
        self.document_capacity = int(following.get("documents", counts["documents"]))
        # what a search may answer: the rows this manifest knows, less those its updates
        # deleted and the writer has not yet dropped (indexer/milvus_update.py)
        dead = sorted(int(entry[0]) for entry in record.get("pending", []))
        passages = f"id < {self.passage_capacity}" + (f" and doc_row not in {dead}" if dead else "")
        documents = f"row < {self.document_capacity}" + (f" and row not in {dead}" if dead else "")
        self.vectors = MilvusPassages(self.address, self.names["passages"], self.client, bound=passages)
        self.store = MilvusCatalog(self, manifest, previous.store if previous is not None
                                   and previous.token == self.token else None)
        self.sentences = MilvusSentences(self) if manifest["counts"].get("sentences", 1) else None
        vocabulary = Vocabulary(self.client, self.names["terms"], {"p": int(counts["passages"]),
                                                                   "d": int(counts["documents"])}, self.number)
        self.passage_lexical = MilvusLexical(self.client, self.names["passages"], "id", "p", vocabulary,
                                             where=passages)
        self.document_lexical = MilvusLexical(self.client, self.names["documents"], "row", "d", vocabulary,
                                              where=f"piece == 0 and {documents}")


class MilvusPassages(MilvusStore):
    """The passages' vectors, the few products a query needs besides its search computed
    where the vectors are; only passages below `bound` (those the manifest knows)."""

    def __init__(self, address, collection, client=None, bound: str = ""):
        super().__init__(address, collection, client)
        self.bound = bound

    def search(self, vectors, k, allowed=None, where: str = ""):
        if allowed is not None and not where:
            if not allowed.any():
                return super().search(vectors, k, allowed)
            where = id_expression(allowed)
        return super().search(vectors, k, where=" and ".join(e for e in (self.bound, where) if e))

    def scores(self, vector: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The query's inner product with the vectors of `ids` (the passages only BM25
        found: hundreds a query), as Milvus scores them: a search among those ids alone,
        which sends back one number a passage instead of its vector."""
        ids = [int(i) for i in ids]
        if not ids:
            return np.zeros(0, dtype=np.float32)
        query, found = [np.asarray(vector, dtype=np.float32).tolist()], {}
        for start in range(0, len(ids), MILVUS_MAX_LIMIT):
            some = ids[start:start + MILVUS_MAX_LIMIT]
            answers = self.client.search(self.collection, data=query, anns_field="vector", limit=len(some),
                                         filter=f"id in {some}", search_params={"metric_type": "IP"})
            found.update((int(h["id"]), float(h["distance"])) for h in answers[0])
        return np.array([found[i] for i in ids], dtype=np.float32)


class Vocabulary:
    """The terms of both BM25 indexes, looked up per query (one request for both sides)
    and kept for the next: a term's column and IDF, as of generation `number`."""

    def __init__(self, client, name: str, rows: dict[str, int], number: int = 0):
        self.client, self.name, self.rows = client, name, rows  # rows: side -> how many live rows it has
        self.number = number
        self._known: dict[str, tuple[int, float] | None] = {}

    def lookup(self, side: str, words) -> dict[int, float]:
        """column -> IDF of the query's terms that the `side` index holds."""
        keys = [term_key(side, w) for w in dict.fromkeys(words)]
        missing = [k for k in keys if k not in self._known]
        if missing:
            found = {r["key"]: r for r in self.client.query(self.name, filter=keyed(missing), output_fields=["*"])}
            for key in missing:
                row = found.get(key)
                n = self.rows[key[0]]
                df = effective(row, self.number) if row is not None else 0
                self._known[key] = None if not df else (int(row["column"]), float(idf(n, df)))
            if len(self._known) > 100_000:
                self._known.clear()
        return {c: idf for k in keys if (hit := self._known.get(k)) is not None for c, idf in [hit] if idf > 0}


class MilvusLexical:
    """BM25 as a sparse inner product in Milvus: `LexicalIndex.best_of`'s answer."""

    def __init__(self, client, name: str, key: str, side: str, vocabulary: Vocabulary, where: str = ""):
        self.client, self.name, self.key, self.side = client, name, key, side
        self.vocabulary, self.where = vocabulary, where

    def best_of(self, query_terms, depth: int, mask: np.ndarray | None = None, where: str = ""):
        """The best `depth` rows for the terms, in row order with their scores; only those
        `where` allows (a Milvus expression), or else `mask` (ranges of rows)."""
        empty = np.zeros(0, dtype=np.int64), np.zeros(0)
        weights = self.vocabulary.lookup(self.side, query_terms)
        if not weights or (mask is not None and not where and not mask.any()):
            return empty
        if not where and mask is not None:
            where = id_expression(mask).replace("id ", f"{self.key} ")
        expression = " and ".join(e for e in (self.where, where) if e)
        try:
            answers = self.client.search(self.name, data=[weights], anns_field="weights", limit=min(depth, MILVUS_MAX_LIMIT),
                                         filter=expression, output_fields=[self.key],
                                         search_params={"metric_type": "IP", "params": {"drop_ratio_search": 0.0}})
        except Exception as exc:  # noqa: BLE001
            raise VectorStoreError(f"Milvus BM25 search in {self.name} failed: {exc}") from exc
        found = sorted((int(h["entity"][self.key]), float(h["distance"])) for h in answers[0]
                       if float(h["distance"]) > 0)
        return (np.array([k for k, _ in found], dtype=np.int64), np.array([s for _, s in found], dtype=np.float64))

    def scores_of(self, query_terms, rows: np.ndarray) -> np.ndarray:
        """As LexicalIndex.scores_of: the rows' scores, asked of Milvus for those rows only."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros(len(rows))
        for start in range(0, len(rows), MILVUS_MAX_LIMIT):
            chunk = rows[start:start + MILVUS_MAX_LIMIT]
            ids, scores = self.best_of(query_terms, len(chunk), where=f"{self.key} in {chunk.tolist()}")
            out[start + np.searchsorted(chunk, ids)] = scores
        return out


class MilvusSentences:
    """The sentence vectors: the best of each candidate passage scored by Milvus, a few
    hits' rows fetched for highlighting."""

    def __init__(self, index: MilvusIndex):
        self.client, self.name = index.client, index.names["sentences"]

    def best_per_passage(self, vector: np.ndarray, pids: np.ndarray) -> dict[int, float]:
        if not len(pids):
            return {}
        answers = self.client.search(self.name, data=[np.asarray(vector, dtype=np.float32).tolist()],
                                     anns_field="vector", limit=len(pids), group_by_field="passage_id",
                                     filter=f"passage_id in {[int(p) for p in pids]}",
                                     output_fields=["passage_id"], search_params={"metric_type": "IP"})
        return {int(h["entity"]["passage_id"]): float(h["distance"]) for h in answers[0]}

    def rows(self, index: np.ndarray | slice) -> np.ndarray:
        """The vectors of sentences `index` (ids), in that order."""
        ids = list(range(index.start, index.stop)) if isinstance(index, slice) else [int(i) for i in index]
        found = {}
        for start in range(0, len(ids), BATCH):
            found.update((int(r["id"]), r["vector"]) for r in self.client.query(
                self.name, ids=ids[start:start + BATCH], output_fields=["vector"]))
        return np.asarray([found[i] for i in ids], dtype=np.float32).reshape(len(ids), -1)


class MilvusCatalog:
    """`SegmentedStore`'s reading methods over the collections: the per-passage and
    per-document numbers read once at open, text and citations asked for by id."""

    PASSAGE_FIELDS = ["id", "doc_row", "group", "first_sentence", "sentences"]
    DOCUMENT_FIELDS = ["row", "doc_id", "source", "published", "story", "first_passage", "passages"]

    def __init__(self, index: MilvusIndex, manifest: dict, previous: "MilvusCatalog | None" = None):
        self.client, self.names, self.number = index.client, index.names, index.number
        n, m = index.passage_capacity, index.document_capacity
        since = self._carried(previous, manifest, index.number)
        if since is None:  # everything, read once
            self.live, self.live_documents = np.zeros(n, dtype=bool), np.zeros(m, dtype=bool)
            self._doc_row = np.zeros(n, dtype=np.int64)
            self._group = np.full(n, -1, dtype=np.int64)
            self._runs = np.zeros((n, 2), dtype=np.int64)
            self._documents = [None] * m
            self._story = np.full(m, -1, dtype=np.int64)
            self.row_of: dict[str, int] = {}
            first_passage = first_document = 0
            dead = [entry[0] for entry in manifest["store"].get("pending", [])]
        else:  # what `previous` read, then what the updates since appended and changed
            first_passage, first_document = len(previous._doc_row), len(previous._documents)
            self.live = _grown(previous.live, n, False)
            self.live_documents = _grown(previous.live_documents, m, False)
            self._doc_row = _grown(previous._doc_row, n, 0)
            self._group = _grown(previous._group, n, -1)
            self._runs = _grown(previous._runs, n, 0)
            self._documents = previous._documents + [None] * (m - first_document)
            self._story = _grown(previous._story, m, -1)
            self.row_of = dict(previous.row_of)
            dead = [row for change in since for row in change.get("dead_documents", [])]
        self.carried = first_passage  # passages whose numbers came from `previous` (ids are never reused)
        self._read(first_passage, n, first_document, m)
        for row in dead:
            self._drop(int(row))
        if since:
            regrouped = sorted({pid for change in since for pid in change.get("regrouped", []) if pid < n})
            for r in (self._passages(regrouped, ["id", "group"]) if regrouped else []):
                self._group[int(r["id"])] = r["group"]
            moved = sorted({row for change in since for row in change.get("moved_documents", []) if row < m})
            for row, d in (self._document_rows(moved, ["row", "story"]).items() if moved else []):
                self._story[row] = d["story"]  # a split moved it to another story
                if self._documents[row] is not None:
                    self._documents[row] = {**self._documents[row], "story": d["story"]}

    @staticmethod
    def _carried(previous: "MilvusCatalog | None", manifest: dict, number: int) -> list[dict] | None:
        """The changes of the updates since the generation `previous` read (None: read
        everything, there is nothing to carry or the manifests of the updates between are
        gone)."""
        if previous is None or previous.number >= number:
            return None
        since = manifests(previous.client, previous.names["manifest"], previous.number)
        numbers = [int(m["store"]["generation"][1:]) for m in since if "generation" in m["store"]]
        if not numbers or numbers[0] != previous.number + 1 or numbers != list(range(numbers[0], numbers[-1] + 1)):
            return None
        return [m.get("changes", {}) for m in since if int(m["store"]["generation"][1:]) <= number]

    def _read(self, first_passage: int, n: int, first_document: int, m: int) -> None:
        # an update's rows are looked up by primary key (a range filter scans the collection);
        # a whole index is read in ranges
        small = n - first_passage <= DELTA and m - first_document <= DELTA
        passages = (self._passages(range(first_passage, n), self.PASSAGE_FIELDS) if small else
                    _scan(self.client, self.names["passages"], self.PASSAGE_FIELDS, "id", n - first_passage,
                          offset=first_passage))
        documents = (self._document_rows(range(first_document, m), self.DOCUMENT_FIELDS).values() if small else
                     _scan(self.client, self.names["documents"], self.DOCUMENT_FIELDS, "row", m - first_document,
                           "piece == 0", offset=first_document))
        for p in passages:
            i = int(p["id"])
            self._doc_row[i], self._group[i] = p["doc_row"], p["group"]
            self._runs[i] = (p["first_sentence"], p["sentences"])
            self.live[i] = True
        for d in documents:
            row = int(d["row"])
            self._documents[row] = d
            self._story[row] = d["story"]
            self.live_documents[row] = True
            if self.row_of.get(d["doc_id"], -1) < row:  # a replacement's row is later than its old one's
                self.row_of[d["doc_id"]] = row

    def _drop(self, row: int) -> None:
        """Document row `row` is deleted (its rows may stay in Milvus a while)."""
        d = self._documents[row] if row < len(self._documents) else None
        if d is None:
            return
        self.live_documents[row] = False
        self.live[int(d["first_passage"]):int(d["first_passage"]) + int(d["passages"])] = False
        if self.row_of.get(d["doc_id"]) == row:
            del self.row_of[d["doc_id"]]

    # the numbers
    def document_rows(self, since: int = 0) -> np.ndarray:
        ids = np.arange(since, len(self._doc_row), dtype=np.int64)
        return np.stack((ids, self._doc_row[since:]), axis=1)

    def document_dates(self, since_row: int = 0) -> list[tuple[int, str]]:
        return [(row, d["published"]) for row, d in enumerate(self._documents[since_row:], since_row)
                if d is not None and d["published"]]

    def sentence_runs(self, since: int = 0) -> np.ndarray:
        ids = np.flatnonzero(self._runs[since:, 1]) + since
        return np.column_stack((ids, self._runs[ids])).astype(np.int64).reshape(-1, 3)

    def sources(self):
        return ((row, d["source"]) for row, d in enumerate(self._documents) if d is not None)

    def doc_ids(self):
        return ((i, d["doc_id"]) for i, row in enumerate(self._doc_row.tolist())
                for d in [self._documents[row]] if d is not None)

    def groups(self, group_of=None, since_part: int = 0) -> np.ndarray:
        return self._group.copy()

    def stories(self, story_of=None, since_part: int = 0) -> np.ndarray:
        return self._story.copy()

    def shared_parts(self, other) -> int:
        return 0

    def passages_of(self, doc_ids) -> list[int]:
        return [pid for doc_id in sorted(set(doc_ids)) for pid in self._of_document(doc_id)]

    # the rows, asked for
    def _passages(self, ids, fields) -> list[dict]:
        return by_keys(self.client, self.names["passages"], sorted({int(i) for i in ids}), fields)

    def _document_rows(self, rows, fields) -> dict[int, dict]:
        ids = sorted({int(r) * PIECES for r in rows})
        found = {}
        for start in range(0, len(ids), BATCH):
            for d in self.client.query(self.names["documents"], ids=ids[start:start + BATCH], output_fields=fields):
                found[int(d["row"])] = d
        return found

    def passage_rows(self, ids) -> list[dict]:
        rows = self._passages(ids, ["id", "doc_row", "paragraph", "start", "end", "text"])
        documents = self._document_rows({r["doc_row"] for r in rows},
                                        ["row", "doc_id", "title", "source", "published", "author"])
        return [{"id": int(r["id"]), "doc_id": d["doc_id"], "paragraph": r["paragraph"], "start": r["start"],
                 "end": r["end"], "text": r["text"], "title": d["title"] or None, "source": d["source"],
                 "published": d["published"] or None, "author": d["author"] or None}
                for r in rows for d in [documents[int(r["doc_row"])]]]

    def sentences_of(self, ids) -> list[dict]:
        wanted = [i for pid in sorted({int(i) for i in ids}) for i in range(*self._run_span(pid))]
        rows = by_keys(self.client, self.names["sentences"], wanted, ["id", "passage_id", "start", "end"])
        return sorted(({k: int(r[k]) for k in ("passage_id", "id", "start", "end")} for r in rows),
                      key=lambda r: r["id"])

    def _run_span(self, pid: int) -> tuple[int, int]:
        first, count = self._runs[pid].tolist()
        return first, first + count

    def _of_document(self, doc_id: str) -> range:
        row = self.row_of.get(doc_id)
        if row is None:
            return range(0)
        d = self._documents[row]
        return range(int(d["first_passage"]), int(d["first_passage"]) + int(d["passages"]))

    def passage_spans(self, doc_id: str) -> list[tuple[int, int]]:
        return [(int(r["start"]), int(r["end"])) for r in sorted(
            self._passages(self._of_document(doc_id), ["id", "start", "end"]), key=lambda r: r["id"])]

    def sentence_spans(self, doc_id: str, start: int, end: int) -> list[tuple[int, int]]:
        inside = [int(r["id"]) for r in self._passages(self._of_document(doc_id), ["id", "start", "end"])
                  if r["start"] >= start and r["end"] <= end]
        return [(s["start"], s["end"]) for s in self.sentences_of(inside)]

    def _text(self, row: int) -> str:
        pieces = pieces_of(self.client, self.names["documents"], row, ["piece", "text"])
        return "".join(p["text"] for p in sorted(pieces, key=lambda p: p["piece"]))

    def text_span(self, doc_id: str, start: int, end: int) -> str:
        return self._text(self.row_of[doc_id])[start:end]

    def document(self, doc_id: str) -> dict | None:
        row = self.row_of.get(doc_id)
        if row is None:
            return None
        d = self._document_rows([row], ["doc_id", "row", "title", "source", "url", "published", "author",
                                        "passages"])[row]
        return {"doc_id": d["doc_id"], "title": d["title"] or None, "source": d["source"], "url": d["url"] or None,
                "published": d["published"] or None, "author": d["author"] or None, "text": self._text(row),
                "passages": int(d["passages"])}

    def documents_by_row(self, rows) -> list[dict]:
        rows = sorted(int(r) for r in rows)
        documents = self._document_rows(rows, ["row", "doc_id", "title", "source", "published", "first_passage"])
        leads = {int(p["id"]): p for p in self._passages([d["first_passage"] for d in documents.values()],
                                                          ["id", "paragraph", "start", "end", "text"])}
        out = []
        for r in rows:
            d = documents.get(r)
            if d is None:
                continue
            lead = leads[int(d["first_passage"])]
            out.append({"row": r, "doc_id": d["doc_id"], "title": d["title"] or None, "source": d["source"],
                        "published": d["published"] or None, "lead": lead["text"], "lead_paragraph": lead["paragraph"],
                        "lead_start": lead["start"], "lead_end": lead["end"]})
        return out


def _grown(values: np.ndarray, size: int, fill) -> np.ndarray:
    """`values` (a replica's array of a generation before) extended to `size` rows."""
    out = np.full((size,) + values.shape[1:], fill, dtype=values.dtype)
    out[:len(values)] = values
    return out
