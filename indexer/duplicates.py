"""Near-duplicate passages: the same statement in syndicated or translated copies.

Found once at build time, so the query path only looks groups up.
"""

from __future__ import annotations

import numpy as np

# Cosine similarity at or above which two passages of different documents say the same
# thing. On the seeds (000 and 001 are one op-ed in two translations) the 14 counterpart
# pairs score 0.849-0.993 and the closest pair of different statements 0.831 (two
# articles reporting the same troop numbers in their own words): 0.84 sits between them.
THRESHOLD = 0.84
NEIGHBOURS = 8  # a statement is rarely syndicated more often than this within one index


def groups(vectors: np.ndarray, doc_ids: list[str], index=None, threshold: float = THRESHOLD,
           rows: list[int] | None = None, linked: list[tuple[int, int]] = ()) -> dict[int, int]:
    """Group passages whose vectors are within `threshold` of each other.

    Args:
        vectors: L2-normalised passage vectors, row = passage id.
        doc_ids: the document of each passage; copies are only sought across documents.
        index: the passages' own faiss index (ids = rows) to find neighbours with; an
            approximate one keeps this linear for large collections. Default: exact.
        rows: the passages whose copies to look for (default: all); an update looks
            only for its new passages' copies.
        linked: pairs of passages already known to be copies of each other.

    Returns:
        passage id -> group id (the smallest passage id of its group), for grouped passages only.
    """
    import faiss

    n = len(vectors)
    if n < 2:
        return {}
    if index is None:
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
    rows = list(range(n)) if rows is None else sorted(set(rows))
    together = Groups()
    for i, j in linked:
        together.join(i, j)
    if rows:
        scores, neighbours = index.search(np.ascontiguousarray(vectors[rows]), min(NEIGHBOURS + 1, n))
        for i, found, near in zip(rows, scores, neighbours):
            for score, j in zip(found, near):
                if j >= 0 and j != i and score >= threshold and doc_ids[j] != doc_ids[i]:
                    together.join(i, int(j))
    return {i: min(group) for group in together.groups() if len(group) > 1 for i in group}


class Groups:
    """Union-find over passage ids: each group's root is its smallest member."""

    def __init__(self):
        self._parent: dict[int, int] = {}

    def find(self, i: int) -> int:
        parent = self._parent
        parent.setdefault(i, i)
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        self._parent[max(a, b)] = min(a, b)

    def groups(self) -> list[list[int]]:
        """Every group of the ids joined (one passage alone is no group and is not listed)."""
        members: dict[int, list[int]] = {}
        for node in list(self._parent):
            members.setdefault(self.find(node), []).append(node)
        return list(members.values())
