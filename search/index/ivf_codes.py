"""A query's inner product with IVF-SQ8 vectors, read from their 8-bit codes where faiss
keeps them.

Fusion needs the dense score of every BM25 candidate the IVF search did not return: a
few hundred passages a search. faiss's `reconstruct_batch` decodes them one by one into
floats (~0.4 ms a search at 100k passages). Here the codes are gathered straight from the
index's memory-mapped lists and scored in one product: a stored vector is its list's
centroid plus, per dimension d, `vmin[d] + (code[d] + 0.5) / 255 * vdiff[d]`
(faiss's non-uniform 8-bit codec), so the inner product with q is

    q . centroid + q . vmin + sum_d code[d] * w[d] + 0.5 * sum_d w[d],  w = q * vdiff / 255

the same number as `reconstruct_batch(ids) @ q` up to float rounding (~1e-6).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np


class MappedCodes:
    def __init__(self, ivf, lists: np.ndarray, codes: np.ndarray, where: np.ndarray, trained: np.ndarray,
                 centroids: np.ndarray | None):
        self._ivf = ivf  # keeps the index (and so its mapping) alive as long as the views
        self._lists = lists  # faiss's direct map, a view: id -> list << 32 | offset in it
        self._codes = codes  # (span - code_size + 1, code_size) view: row r = the bytes from r
        self._where = where  # each list's first code, as a row of `_codes`
        self._code_size = int(ivf.code_size)
        d = int(ivf.d)
        self._vmin, self._vdiff = trained[:d], trained[d:]
        self._centroids = centroids  # None when the codes are not residuals

    @classmethod
    def of(cls, ivf, path: Path | None) -> "MappedCodes | None":
        """For an IVF-SQ8 index read memory-mapped from `path`, with its direct map made;
        None for any other (the caller reconstructs)."""
        try:
            return cls._of(ivf, path)
        except (AttributeError, TypeError):  # a faiss whose wrappers differ: reconstruct
            return None

    @classmethod
    def _of(cls, ivf, path: Path | None) -> "MappedCodes | None":
        import faiss

        if path is None or ivf.direct_map.type != faiss.DirectMap.Array or ivf.metric_type != faiss.METRIC_INNER_PRODUCT:
            return None
        sq = getattr(faiss.downcast_index(ivf), "sq", None)
        if sq is None or sq.qtype != faiss.ScalarQuantizer.QT_8bit or ivf.code_size != ivf.d:
            return None
        size = ivf.code_size
        sizes = np.array([ivf.invlists.list_size(n) for n in range(ivf.nlist)], dtype=np.int64)
        starts = np.zeros(ivf.nlist, dtype=np.int64)
        for n in np.flatnonzero(sizes):
            starts[n] = faiss.rev_swig_ptr(ivf.invlists.get_codes(int(n)), int(sizes[n]) * size).ctypes.data
        held = sizes > 0
        if not held.any():
            return None
        first, end = int(starts[held].min()), int((starts[held] + sizes[held] * size).max())
        if not _within_one_mapping(first, end, path):
            return None  # lists in separate buffers: no one array spans them
        span = np.ctypeslib.as_array((ctypes.c_uint8 * (end - first)).from_address(first))
        codes = np.lib.stride_tricks.as_strided(span, shape=(end - first - size + 1, size), strides=(1, 1),
                                                writeable=False)
        lists = faiss.rev_swig_ptr(ivf.direct_map.array.data(), ivf.direct_map.array.size())
        centroids = None
        if ivf.by_residual:
            flat = faiss.downcast_index(ivf.quantizer)
            if not isinstance(flat, faiss.IndexFlat):
                return None
            centroids = faiss.rev_swig_ptr(flat.get_xb(), ivf.nlist * ivf.d).reshape(ivf.nlist, ivf.d)
        return cls(ivf, lists, codes, np.where(held, starts - first, 0), faiss.vector_to_array(sq.trained),
                   centroids)

    def scores(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        located = self._lists[ids]
        lists, offsets = located >> 32, located & 0xFFFFFFFF
        rows = self._codes[self._where[lists] + offsets * self._code_size]
        w = query * (self._vdiff / np.float32(255.0))
        out = rows.astype(np.float32) @ w + np.float32(query @ self._vmin + 0.5 * w.sum())
        if self._centroids is not None:
            used, which = np.unique(lists, return_inverse=True)
            out += (self._centroids[used] @ query)[which]
        return out


def _within_one_mapping(first: int, end: int, path: Path) -> bool:
    """Whether [first, end) lies inside one mapping of `path` in this process."""
    try:
        target = str(Path(path).resolve())
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].strip() == target:
                    start, stop = (int(x, 16) for x in fields[0].split("-"))
                    if start <= first and end <= stop:
                        return True
    except OSError:  # no /proc (not Linux): faiss's own reconstruct
        return False
    return False
