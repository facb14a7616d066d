"""Sentence vectors on disk: one int8 row per sentence and a float32 scale per row.

Every passage sentence has a vector, used to rank passages by their best sentence and to
highlight it. There are ~5 sentences a passage, so these are the index's largest file: a
query reads the rows of its few hundred candidate passages, from a memory map when the
file is small and with pread when it is big (`SentenceVectors.open`). As float32 that was
743 MB at 100k passages; as int8 rows it is a quarter of that. Per-row symmetric quantisation keeps a
unit vector's cosine with its float32 original above 0.9999 (tests/test_sentence_vectors.py),
far below the differences between the model's own backends.

Indexes of format 2 hold float32 (or float16) rows and no scales; they still load.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from search import settings
from search.index import arrays
from search.index.store import SENTENCE_SCALES as SCALES
from search.index.store import SENTENCE_VECTORS as CODES


BLOCK = 65536  # rows quantised at a time: a million-passage build holds 5M sentence rows


def quantize(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes and per-row scales with codes * scale ≈ vectors. Row by row, in blocks:
    whole-array temporaries would be four float32 copies of millions of rows."""
    vectors = np.asarray(vectors, dtype=np.float32)
    codes = np.empty(vectors.shape, dtype=np.int8)
    scales = np.empty(len(vectors), dtype=np.float32)
    for start in range(0, len(vectors), BLOCK):
        block = vectors[start:start + BLOCK]
        peak = np.abs(block).max(axis=1)
        scales[start:start + BLOCK] = np.where(peak > 0, peak / 127, 1)
        codes[start:start + BLOCK] = np.clip(np.rint(block / scales[start:start + BLOCK, None]), -127, 127)
    return codes, scales


def save(directory: Path, vectors: np.ndarray, kept: "tuple[SentenceVectors, np.ndarray] | None" = None) -> list[str]:
    """Write the vectors (float rows, unit length) quantised; returns the files written.
    `kept`: an index's sentence vectors and the rows of them that come first, copied as
    they are stored (re-quantising their decoded values would give the same codes)."""
    codes, scales = quantize(vectors)
    if kept is not None:
        old, rows = kept
        old_codes, old_scales = old.quantized(rows)
        codes, scales = np.concatenate((old_codes, codes)), np.concatenate((old_scales, scales))
    np.save(Path(directory) / CODES, codes, allow_pickle=False)
    np.save(Path(directory) / SCALES, scales, allow_pickle=False)
    return [CODES, SCALES]


class SentenceVectors:
    """Read-only sentence vectors of an index directory: the rows read where asked, the
    scales memory-mapped."""

    def __init__(self, codes: np.ndarray, scales: np.ndarray | None):
        self._codes = codes
        self._scales = scales  # None: a format-2 index's float rows

    @classmethod
    def open(cls, directory: Path) -> "SentenceVectors | None":
        """The directory's sentence vectors, or None for an index built without them."""
        directory = Path(directory)
        if not (directory / CODES).exists():
            return None
        # A small index's rows are mapped: one gather from memory instead of a pread for
        # each of a search's few hundred passages. A big archive's are read where asked
        # (arrays.Rows): mapped, every row its searches touched would stay resident, 1.8 GB
        # at a million passages. The scales, 4 bytes against a row's 384, are mapped as
        # plain arrays (indexing an np.memmap is slower).
        path = directory / CODES
        mapped = path.stat().st_size <= settings.value("SEARCH_SENTENCES_MAPPED_MB") * 2**20
        codes = np.asarray(arrays.load(path, mmap=True)) if mapped else arrays.Rows(path)
        scales = (np.asarray(arrays.load(directory / SCALES, mmap=True))
                  if codes.dtype == np.int8 else None)
        return cls(codes, scales)

    def __len__(self) -> int:
        return len(self._codes)

    @property
    def dimension(self) -> int:
        return self._codes.shape[1]

    def rows(self, index: np.ndarray | slice) -> np.ndarray:
        """The float32 vectors of some rows (an index array or a slice)."""
        vectors = np.asarray(self._codes[index], dtype=np.float32)
        return vectors if self._scales is None else vectors * self._scales[index][:, None]

    def quantized(self, index: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        """The int8 codes and scales of some rows (a format-2 index's float rows quantised)."""
        if self._scales is None:
            return quantize(self.rows(index))
        return np.asarray(self._codes[index]), np.asarray(self._scales[index])

    def scores(self, index: np.ndarray | slice, query: np.ndarray) -> np.ndarray:
        """Cosine of each of these rows with a unit query vector."""
        # scaling the products, not the rows: one multiply per row instead of per value
        products = np.asarray(self._codes[index], dtype=np.float32) @ np.asarray(query, dtype=np.float32)
        return products if self._scales is None else products * self._scales[index]

    def all(self) -> np.ndarray:
        """Every row as a float32 unit vector (quantised rows are within 0.2% of unit
        length), for the bench and tests that stand them in for the model's vectors."""
        rows = self.rows(slice(None))
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
