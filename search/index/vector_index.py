"""The passage vector index: exact search while it is fast enough, approximate above.

Flat (exact) search reads every vector per query; on this class of machine it is bound
by memory bandwidth, ~3 ms per 20k passages of 384 floats, so past FLAT_LIMIT passages
the indexer switches to an inverted file with 8-bit scalar quantisation (IVF-SQ8): a
quarter of the memory, and a query scans only `nprobe` of `nlist` clusters. The kind is
chosen by size unless the build asks for one, and recorded in the manifest with the
search parameters; the index is memory-mapped when loaded, so workers share its pages.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

KINDS = ("auto", "flat", "ivf")
# Above this many passages "auto" builds IVF-SQ8 (flat at 50k is ~8 ms per query here).
FLAT_LIMIT = 50_000
# Clusters probed per query; chosen by scripts/bench for recall@10 >= 0.95 against exact
# search on real embeddings. $SEARCH_NPROBE overrides it at query time.
DEFAULT_NPROBE = 24
TRAINING_SAMPLE = 200_000  # k-means on a sample: training on all 1M gains no recall


def choose(count: int, requested: str = "auto") -> str:
    """The kind of index for `count` passages."""
    if requested not in KINDS:
        raise ValueError(f"vector index must be one of {', '.join(KINDS)}, got {requested!r}")
    if requested != "auto":
        return requested
    return "flat" if count <= FLAT_LIMIT else "ivf"


def nlist_for(count: int) -> int:
    """Clusters: ~4·sqrt(n) (faiss's guideline), at least 39 training points each."""
    return max(1, min(int(4 * math.sqrt(count)), count // 39))


def build(vectors: np.ndarray, kind: str, ids: np.ndarray | None = None, seed: int = 1234):
    """A faiss index of L2-normalised `vectors` (row i gets id `ids[i]`, default i),
    scored by inner product (= cosine)."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dimension = vectors.shape[1]
    ids = np.arange(len(vectors), dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    if kind == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    elif kind == "ivf":
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFScalarQuantizer(quantizer, dimension, nlist_for(len(vectors)),
                                              faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        sample = vectors
        if len(vectors) > TRAINING_SAMPLE:
            rows = np.random.default_rng(seed).choice(len(vectors), TRAINING_SAMPLE, replace=False)
            sample = vectors[np.sort(rows)]
        index.train(sample)
        index.nprobe = DEFAULT_NPROBE
    else:
        raise ValueError(f"unknown vector index kind {kind!r}")
    index.add_with_ids(vectors, ids)
    return index


def trained_like(ivf):
    """An empty IVF-SQ8 index trained as `ivf` is: its clusters, its 8-bit ranges, its
    residual coding and nprobe. A vector added to it is coded and scored exactly as in
    `ivf`, so the folded segments of an update (indexer/update.py) are searched like the
    base, a few clusters of them, instead of flat."""
    import faiss

    ivf = faiss.downcast_index(ivf)  # (an IndexIVF view of it has no `sq`)
    quantizer = faiss.IndexFlatIP(ivf.d)
    quantizer.add(_centroids(ivf))
    index = faiss.IndexIVFScalarQuantizer(quantizer, ivf.d, ivf.nlist, faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT, ivf.by_residual)
    index.sq.trained = ivf.sq.trained
    index.is_trained = True
    index.nprobe = ivf.nprobe
    quantizer.this.disown()  # the index frees its quantizer
    index.own_fields = True
    return index


def add_coded(target, source) -> bool:
    """Add every vector of `source`, an IVF-SQ8 index trained as `target` is, to `target`
    as it is coded: no vector decoded, assigned to a cluster or coded again, so folding a
    large folded segment again costs a copy of its codes. False (nothing added) where the
    two are not trained alike."""
    import faiss

    source = faiss.downcast_index(source)
    alike = (isinstance(source, faiss.IndexIVFScalarQuantizer) and source.nlist == target.nlist
             and source.code_size == target.code_size and source.by_residual == target.by_residual
             and np.array_equal(faiss.vector_to_array(source.sq.trained), faiss.vector_to_array(target.sq.trained))
             and np.array_equal(_centroids(source), _centroids(target)))
    if not alike:
        return False
    for n in range(source.nlist):
        size = source.invlists.list_size(n)
        if size:
            ids = np.array(faiss.rev_swig_ptr(source.invlists.get_ids(n), size))
            codes = np.array(faiss.rev_swig_ptr(source.invlists.get_codes(n), size * source.code_size))
            target.invlists.add_entries(n, size, faiss.swig_ptr(ids), faiss.swig_ptr(codes))
    target.ntotal += source.ntotal
    return True


def _centroids(ivf) -> np.ndarray:
    import faiss

    return faiss.downcast_index(ivf.quantizer).reconstruct_n(0, ivf.nlist)


def describe(index) -> dict:
    """The manifest's record of an index."""
    import faiss

    if isinstance(index, faiss.IndexIVF):
        return {"type": "IndexIVFScalarQuantizer(SQ8)", "kind": "ivf", "nlist": int(index.nlist),
                "nprobe": int(index.nprobe), "metric": "inner_product", "faiss_version": faiss.__version__}
    return {"type": "IndexIDMap2(IndexFlatIP)", "kind": "flat", "metric": "inner_product",
            "faiss_version": faiss.__version__}


def load(path: Path, nprobe: int | None = None):
    """Read an index for searching, memory-mapped: its vectors or lists stay in the page
    cache, shared by every worker, and a 1M-passage index opens in milliseconds.

    IO_FLAG_MMAP_IFC maps the file's arrays in place (zero copy). The older IO_FLAG_MMAP
    wraps IVF lists in OnDiskInvertedLists, which locks and copies per probed list: the
    same answers, but 1.74 against 0.45 ms per query at 100k passages here. The mapping
    is read-only; a searcher never adds to its index (updates build a new one)."""
    import faiss

    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
    if isinstance(index, faiss.IndexIVF) and nprobe:
        index.nprobe = nprobe
    return index
