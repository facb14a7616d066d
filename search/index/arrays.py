"""Reading the index's .npy arrays, one thread at a time.

np.load parses each file's header with ast.literal_eval, and CPython 3.11 keeps the AST
constructor's recursion count per interpreter, not per thread: two threads parsing at
once (a background merge opening its result while the alert matcher opens a generation)
can fail with "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905).
"""

from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path

import numpy as np

_parsing = threading.Lock()


def load(path: str | Path, mmap: bool = False) -> np.ndarray:
    """The array in `path` (memory-mapped read-only with `mmap`); never a pickle."""
    with _parsing:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def header(path: str | Path) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """A .npy file's shape, Fortran order, dtype and where its data starts."""
    formats = np.lib.format
    with open(path, "rb") as f, _parsing:
        read = {(1, 0): formats.read_array_header_1_0, (2, 0): formats.read_array_header_2_0}.get(formats.read_magic(f))
        if read is None:
            raise ValueError(f"{path} is a .npy file of a version this does not read")
        shape, fortran, dtype = read(f)
        return shape, fortran, dtype, f.tell()


class Rows:
    """The rows (or items) of a 1-d or 2-d .npy file, read with pread where they are asked
    for, not memory-mapped. A search reads a few hundred passages' sentence vectors
    scattered over their file, and a few terms' postings, and a mapping keeps far more
    than that resident in the process: the kernel maps the 64 KB around a faulting page,
    and on file systems with large folios (ext4 since Linux 6.16) the whole folio. One
    search of a million-passage index left 586 MB of its sentence vectors mapped, 1,000
    questions all 1.77 GB and most of the BM25 arrays, in every worker. What is read stays
    in the page cache, shared, as the file system keeps it."""

    def __init__(self, path: str | Path):
        shape, fortran, dtype, offset = header(path)
        if len(shape) not in (1, 2) or (fortran and len(shape) == 2) or dtype.hasobject:
            raise ValueError(f"{path} is not a C-ordered 1-d or 2-d array of numbers")
        self.shape, self.dtype, self._offset, self._path = shape, dtype, offset, Path(path)
        self._row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        """Rows by a slice or an array of row numbers, as a new array."""
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return self[np.arange(start, stop, step)]
            return self._read([(start, max(stop - start, 0))])
        rows = np.asarray(index, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row out of range 0..{len(self) - 1}")
        # consecutive rows in one read: a passage's sentences are one run
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        starts = np.concatenate(([0], breaks)) if len(rows) else np.zeros(0, dtype=np.int64)
        counts = np.diff(np.concatenate((starts, [len(rows)])))
        return self._read(zip(rows[starts].tolist(), counts.tolist()))

    def spans(self, spans: list[tuple[int, int]]) -> np.ndarray:
        """Items [start, stop) of each span, one after the other, in one array (what
        concatenating the slices gives, read straight into it)."""
        return self._read((start, stop - start) for start, stop in spans)

    def _read(self, runs) -> np.ndarray:
        runs = list(runs)
        out = np.empty((sum(n for _, n in runs), *self.shape[1:]), dtype=self.dtype)
        if not out.size:
            return out
        view, at = memoryview(out.reshape(-1).view(np.uint8)), 0
        for first, n in runs:
            size, offset = n * self._row_bytes, self._offset + first * self._row_bytes
            while size:  # a read may return less than asked (2 GB at most on Linux)
                got = os.preadv(self._fd, [view[at:at + size]], offset)
                if got <= 0:
                    raise OSError(f"{self._path} ends before its header says (truncated?)")
                at, offset, size = at + got, offset + got, size - got
        return out
