"""Where the passage vectors live, behind one small interface with two backends.

    faiss   (default) the generation's own vectors.faiss, memory-mapped in the process
    milvus  a collection on a Milvus server: `--vector-store milvus://host:port/collection`

Everything else an index holds (passages, citations, BM25, sentence vectors, duplicate
groups) stays in the generation directory, so fusion, collapse and highlighting do not
know which backend answered. Every store answers the same five calls: `add`, `remove`,
`search`, `count`, `describe`; a search returns (scores, ids) per query the way faiss
does, ids of -1 padding a short list.

A Milvus-backed build or merge writes one collection, `<collection>_<token>`, before its
generation is published, and names it in its manifest. The updates after it share that
collection: each upserts its new passages' vectors under their ids (which are never
reused until a merge) and, once published, deletes the passages it removed; a reader
asks only for the ids its generation holds live. The collection is dropped when the
last generation naming it is collected.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from search.errors import VectorStoreError
from search.index.store import MANIFEST, VECTORS

FAISS = "faiss"
_MILVUS_URI = re.compile(r"milvus://(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>[0-9]{1,5})/"
                         r"(?P<collection>[A-Za-z_][A-Za-z0-9_]{0,200})")
# Milvus answers at most 16,384 hits a query; the searcher asks for 1,000.
MILVUS_MAX_LIMIT = 16384
# Rows per insert request: well under gRPC's 64 MB message limit at 384 floats a row.
INSERT_BATCH = 2000
# Searches of up to this many query vectors run on the calling thread alone (_one_thread)
FEW_QUERIES = 16


class VectorStore(Protocol):
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> None: ...

    def scores(self, vector: np.ndarray, ids: np.ndarray) -> np.ndarray: ...

    def search(self, vectors: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]: ...

    def count(self) -> int: ...

    def describe(self) -> dict: ...


@dataclass(frozen=True)
class MilvusAddress:
    host: str
    port: int
    collection: str  # the base name; each generation adds its own suffix

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"


def parse(spec: str | None) -> MilvusAddress | None:
    """None for the default embedded store ("faiss" or nothing), else a Milvus address."""
    if spec is None or spec.strip() in ("", FAISS):
        return None
    match = _MILVUS_URI.fullmatch(spec.strip())
    if not match or not 0 < int(match["port"]) < 65536:
        raise ValueError(f"vector store must be 'faiss' or milvus://host:port/collection "
                         f"(collection: letters, digits, _), got {spec!r}")
    return MilvusAddress(match["host"].strip("[]"), int(match["port"]), match["collection"])


def id_expression(allowed: np.ndarray) -> str:
    """A Milvus filter expression for the ids `allowed` marks: ranges of consecutive ids
    (a document's passages are), of the allowed ones or, when that is shorter, of the
    others negated. Listing every allowed id made a broad filter an expression of up to
    every id in the collection, which Milvus refused."""
    def runs(mask: np.ndarray) -> list[tuple[int, int]]:
        edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
        return list(zip(edges[::2].tolist(), (edges[1::2] - 1).tolist()))

    def ranges(spans: list[tuple[int, int]]) -> str:
        return " or ".join(f"id == {a}" if a == b else f"(id >= {a} and id <= {b})" for a, b in spans)

    allowed = np.asarray(allowed, dtype=bool)
    kept, others = runs(allowed), runs(~allowed)
    if not others:
        return "id >= 0"
    return ranges(kept) if len(kept) <= len(others) else f"not ({ranges(others)})"


def filtered_nprobe(ivf, allowed: np.ndarray) -> int:
    """Clusters to probe when only `allowed` passages may answer: as many more as the filter
    is selective, so that the probed clusters hold as many allowed passages as an
    unfiltered search sees (all of them, for a filter that allows 1 in nprobe/nlist or
    fewer). Probing the usual few would miss allowed passages an exact search finds."""
    share = max(float(np.count_nonzero(allowed)) / max(len(allowed), 1), 1e-9)
    return int(min(ivf.nlist, np.ceil(ivf.nprobe / share)))


@contextlib.contextmanager
def _one_thread(alone: bool):
    """faiss on the calling thread alone, where `alone`. A few query vectors gain nothing
    from OpenMP, and its team's threads busy-wait after each parallel region (IndexIDMap's
    id translation is one, on every segment a search asks). libgomp keeps the thread count
    per calling thread, so the setting made where a searcher opens did not reach the
    threads that search: under steady ingestion, a dozen segments made a served search
    cost 2.5 times its CPU. Many query vectors (an update's duplicate search) keep the team."""
    if not alone:
        yield
        return
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class FaissStore:
    """A faiss index: flat (exact) or IVF-SQ8, built by search/index/vector_index.py."""

    def __init__(self, index, path: Path | None = None):
        self.index = index
        self._path = path  # the file it is mapped from (None: built or read in memory)
        self._flat = None  # (vectors, row of each id), made on first use by `scores`
        self._codes = None  # an IVF-SQ8 index's mapped codes (search/index/ivf_codes.py), made with it
        self._making = threading.Lock()

    @classmethod
    def read(cls, directory: Path, nprobe: int | None = None) -> "FaissStore":
        """The vectors.faiss in `directory` (memory-mapped where faiss can)."""
        from search.index import vector_index

        path = Path(directory) / VECTORS
        return cls(vector_index.load(path, nprobe), path)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of passages `ids` (IVF-SQ8: their 8-bit codes decoded)."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return np.empty((0, self.index.d), dtype=np.float32)
        flat = self._flat_once()
        if flat is not False:
            rows, position = flat
            return np.array(rows[position[ids]])
        return self.index.reconstruct_batch(ids)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._flat = self._codes = self._path = None  # the vectors may move, and live in memory now
        self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        self._flat = self._codes = self._path = None
        self.index.remove_ids(np.asarray(ids, dtype=np.int64))

    def search(self, vectors, k, allowed=None):
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with _one_thread(len(vectors) <= FEW_QUERIES):
            if allowed is None:
                return self.index.search(vectors, k)
            # a bitmap of the allowed ids: the index skips the rest while it scans
            selector = faiss.IDSelectorBitmap(np.packbits(allowed, bitorder="little"))
            ivf = faiss.try_extract_index_ivf(self.index)
            params = (faiss.SearchParametersIVF(sel=selector, nprobe=filtered_nprobe(ivf, allowed))
                      if ivf is not None else faiss.SearchParameters(sel=selector))
            return self.index.search(vectors, k, params=params)

    def above(self, vectors, floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """faiss's range search: every stored vector scoring above `floor` for each query,
        as (lims, scores, ids), query q's at lims[q]:lims[q + 1], in no order."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with _one_thread(len(vectors) <= FEW_QUERIES):
            return self.index.range_search(vectors, floor)

    def scores(self, vector: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The query's inner product with the stored vectors of `ids` (IVF-SQ8: of their
        8-bit codes, as its search scores them)."""
        ids = np.asarray(ids, dtype=np.int64)
        vector = np.asarray(vector, dtype=np.float32)
        flat = self._flat_once()
        if flat is not False:
            rows, position = flat
            return rows[position[ids]] @ vector
        if self._codes is not None:
            return self._codes.scores(vector, ids)
        return self.index.reconstruct_batch(ids) @ vector

    def _flat_once(self):
        """`_flat_rows`, made once (two threads making IVF's map at once: one reads it half made)."""
        if self._flat is None:
            with self._making:
                if self._flat is None:
                    self._flat = self._flat_rows()
        return self._flat

    def _flat_rows(self):
        """A flat index's vectors as an array over its memory (no copy) and each id's row in
        it; False for IVF, whose reconstruct goes through an id -> list map made here once
        (milliseconds, 8 bytes a vector), as do its mapped codes' scores. Reading rows
        directly is twice as fast as faiss's reconstruct_batch for the few hundred a search
        asks for."""
        import faiss

        from search.index.ivf_codes import MappedCodes

        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            if ivf.direct_map.type == faiss.DirectMap.NoMap:
                try:
                    ivf.make_direct_map()
                except RuntimeError:  # ids not 0..n-1 (a folded segment's): found by hash, reconstructed
                    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
            self._codes = MappedCodes.of(ivf, self._path)
            return False
        flat = faiss.downcast_index(self.index.index) if isinstance(self.index, faiss.IndexIDMap2) else None
        if not isinstance(flat, faiss.IndexFlat):
            return False
        rows = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)
        ids = faiss.vector_to_array(self.index.id_map)
        position = np.zeros(int(ids.max()) + 1 if len(ids) else 0, dtype=np.int64)
        position[ids] = np.arange(len(ids))
        return rows, position

    def count(self) -> int:
        return int(self.index.ntotal)

    def describe(self) -> dict:
        from search.index import vector_index

        return {"backend": FAISS, **vector_index.describe(self.index)}

    def save(self, directory: Path) -> list[str]:
        import faiss

        faiss.write_index(self.index, str(directory / VECTORS))
        return [VECTORS]


class MilvusStore:
    """One collection on a Milvus server (a cluster, or `milvus-lite server` on one machine),
    through pymilvus's MilvusClient: the client code is the same for both.

    Exact search (FLAT, inner product) up to FLAT_LIMIT passages, so that both backends
    return the same passages in the same order; HNSW above, where a cluster earns its keep.
    """

    FLAT_LIMIT = 1_000_000

    def __init__(self, address: MilvusAddress, collection: str, client=None):
        self.address, self.collection = address, collection
        self._client = client  # made on first use when not given

    @classmethod
    def named(cls, described: dict) -> "MilvusStore":
        """The collection a manifest's `vector_index` record names."""
        return cls(parse(described["uri"]), described["collection"])

    @property
    def client(self):
        if self._client is None:
            try:
                from pymilvus import MilvusClient
            except ImportError as exc:
                raise VectorStoreError("the milvus vector store needs pymilvus: pip install '.[milvus]'") from exc
            try:
                self._client = MilvusClient(uri=self.address.uri, timeout=10)
            except Exception as exc:  # noqa: BLE001 - pymilvus raises its own kinds for one failure
                raise VectorStoreError(f"cannot reach Milvus at {self.address.uri}: {exc}") from exc
        return self._client

    @classmethod
    def create(cls, address: MilvusAddress, dimension: int, expected: int) -> "MilvusStore":
        """A new, empty collection for one generation."""
        from pymilvus import DataType, MilvusClient

        store = cls(address, f"{address.collection}_{uuid.uuid4().hex[:12]}")
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(dimension))
        params = store.client.prepare_index_params()
        if expected <= cls.FLAT_LIMIT:
            params.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
        else:
            params.add_index(field_name="vector", index_type="HNSW", metric_type="IP",
                             params={"M": 16, "efConstruction": 200})
        store.client.create_collection(store.collection, schema=schema, index_params=params)
        return store

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        for rows in _batches(ids, vectors):
            self.client.insert(self.collection, rows)

    def put(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or overwrite (an update that died before publishing left its ids behind)."""
        for rows in _batches(ids, vectors):
            self.client.upsert(self.collection, rows)

    def ready(self) -> None:
        """Make what was added searchable (flush and load the collection)."""
        self.client.flush(self.collection)
        self.client.load_collection(self.collection)

    def remove(self, ids: np.ndarray) -> None:
        self.client.delete(self.collection, ids=[int(i) for i in ids])

    def search(self, vectors, k, allowed=None, where: str = ""):
        """faiss's answer; only the ids `where` allows (a Milvus expression), or else `allowed`."""
        vectors = np.asarray(vectors, dtype=np.float32)
        k = min(int(k), MILVUS_MAX_LIMIT)
        scores = np.full((len(vectors), k), -np.inf, dtype=np.float32)
        ids = np.full((len(vectors), k), -1, dtype=np.int64)
        expression = where
        if allowed is not None and not where:
            allowed_ids = np.flatnonzero(allowed)
            if not len(allowed_ids):
                return scores, ids
            expression = id_expression(allowed)
        try:
            answers = self.client.search(self.collection, data=vectors.tolist(), limit=k, filter=expression,
                                         search_params={"metric_type": "IP", "params": {"ef": max(k, 64)}})
        except Exception as exc:  # noqa: BLE001
            raise VectorStoreError(f"Milvus search in {self.collection} failed: {exc}") from exc
        for row, hits in enumerate(answers):
            for j, hit in enumerate(hits[:k]):
                ids[row, j], scores[row, j] = int(hit["id"]), float(hit["distance"])
        return scores, ids

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of `ids`, in that order (an update keeps them)."""
        ids = [int(i) for i in ids]
        rows = {}
        for start in range(0, len(ids), INSERT_BATCH):
            for row in self.client.query(self.collection, ids=ids[start:start + INSERT_BATCH],
                                         output_fields=["vector"]):
                rows[int(row["id"])] = row["vector"]
        missing = [i for i in ids if i not in rows]
        if missing:  # never carry a passage forward without its vector
            raise VectorStoreError(f"Milvus collection {self.collection} lacks {len(missing)} of the vectors "
                                   f"asked for (first: id {missing[0]})")
        return np.asarray([rows[i] for i in ids], dtype=np.float32).reshape(len(ids), -1)

    def scores(self, vector: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The query's inner product with the stored vectors of `ids`."""
        return self.vectors(ids) @ np.asarray(vector, dtype=np.float32)

    def count(self) -> int:
        return int(self.client.get_collection_stats(self.collection)["row_count"])

    def describe(self) -> dict:
        return {"backend": "milvus", "type": "Milvus collection", "kind": "milvus",
                "uri": f"milvus://{self.address.host}:{self.address.port}/{self.address.collection}",
                "collection": self.collection, "metric": "inner_product"}

    def drop(self) -> None:
        if self.client.has_collection(self.collection):
            self.client.drop_collection(self.collection)


def _batches(ids: np.ndarray, vectors: np.ndarray):
    """Milvus rows of `ids` and their `vectors`, INSERT_BATCH a request."""
    ids, vectors = np.asarray(ids, dtype=np.int64), np.asarray(vectors, dtype=np.float32)
    for start in range(0, len(ids), INSERT_BATCH):
        yield [{"id": int(i), "vector": v.tolist()}
               for i, v in zip(ids[start:start + INSERT_BATCH], vectors[start:start + INSERT_BATCH])]


def publish(spec: str | None, index, vectors: np.ndarray, directory: Path) -> tuple[dict, list[str]]:
    """Put a new generation's vectors where `spec` says: `index` (the faiss index the
    indexer built, which also finds duplicates) written into `directory`, or `vectors`
    (row i is passage i) inserted into a new Milvus collection. Returns the manifest's
    record of the store and the files written."""
    address = parse(spec)
    if address is None:
        store = FaissStore(index)
        return store.describe(), store.save(directory)
    store = MilvusStore.create(address, vectors.shape[1], len(vectors))
    try:
        store.add(np.arange(len(vectors)), vectors)
        store.ready()
    except BaseException:
        store.drop()  # a failed build leaves no collection behind
        raise
    return store.describe(), []


def open_store(manifest: dict, index_dir: Path, nprobe: int | None = None) -> FaissStore | MilvusStore:
    """The vector store a generation's manifest names (its own faiss file by default)."""
    described = manifest.get("vector_index", {})
    if described.get("backend") == "milvus":
        store = MilvusStore.named(described)
        client = store.client  # VectorStoreError when the server cannot be reached
        try:
            client.load_collection(store.collection)
        except Exception as exc:  # noqa: BLE001 - pymilvus raises its own kinds for one failure
            raise VectorStoreError(f"Milvus collection {store.collection} cannot be loaded: {exc}") from exc
        return store
    return FaissStore.read(index_dir, nprobe)


def collection_of(generation_dir: Path) -> dict | None:
    """The manifest's record of the Milvus collection a generation names, if any."""
    try:
        described = json.loads((generation_dir / MANIFEST).read_text(encoding="utf-8"))["vector_index"]
    except (OSError, ValueError, KeyError):
        return None
    return described if described.get("backend") == "milvus" else None


def drop_collection_of(generation_dir: Path, others: list[Path] = ()) -> None:
    """Drop the Milvus collection of a generation being collected, unless one of the
    `others` (the generations that stay) names it too (best effort: an unreachable server
    leaves it for an operator)."""
    described = collection_of(generation_dir)
    if described is None:
        return
    if any((c := collection_of(other)) and c["collection"] == described["collection"] for other in others):
        return
    try:
        MilvusStore.named(described).drop()
    except Exception:  # noqa: BLE001
        logging.getLogger(__name__).warning("could not drop Milvus collection %s", described.get("collection"))
