"""Reading the index's .npy arrays, one thread at a time.

np.load parses each file's header with ast.literal_eval, and CPython 3.11 keeps the AST
constructor's recursion count per interpreter, not per thread: two threads parsing at
once (a background merge opening its result while the alert matcher opens a generation)
can fail with "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

_parsing = threading.Lock()


def load(path: str | Path, mmap: bool = False) -> np.ndarray:
    """The array in `path` (memory-mapped read-only with `mmap`); never a pickle."""
    with _parsing:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
