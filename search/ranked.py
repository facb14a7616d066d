"""Rankings as arrays: (ids, scores) best first, with ties in id order, and the few
operations on them that both the index (BM25's best passages) and the fusion need."""

from __future__ import annotations

import numpy as np

# A ranking is a pair of arrays, (ids, scores), best first; ties go to the lower id so
# that equal scores rank the same way on every run. Fusion works on whole arrays: in
# Python loops it cost more than the searches it fuses (~6 ms per query at depth 1000).
Ranking = tuple[np.ndarray, np.ndarray]


# (numpy's own lexsort and unique cost 3-10x these sorts at this size. A ranking's ids
# are distinct, so sorting them needs no stable sort: numpy's default one is AVX-512
# here, 2.5x faster on 1,000 ids. Fused scores are seldom equal (copies of one text),
# and the default sort orders them 4x faster than the stable one, its few runs of equal
# scores put in id order after it; where many are equal (BM25's often are), the stable
# sort, which uses the runs, beat fixing them.)

def ranking(ids, scores) -> Ranking:
    """(ids, scores) sorted best first, ties by id."""
    ids, scores = by_id(ids, scores)
    order = np.argsort(-scores)
    ranked = scores[order]
    tied = ranked[1:] == ranked[:-1]
    if tied.any():
        # runs of equal scores: positions a..b hold one score; ids are in id order, so
        # sorting a run's positions puts its ids in order
        edges = np.flatnonzero(np.diff(np.concatenate(([0], tied.view(np.int8), [0]))))
        if len(edges) > 2 * 256:
            order = np.argsort(-scores, kind="stable")  # stable: equal scores keep id order
        else:
            for a, b in zip(edges[::2].tolist(), edges[1::2].tolist()):
                order[a:b + 1].sort()
        ranked = scores[order]
    return ids[order], ranked


def union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted distinct ids of both arrays."""
    both = np.concatenate((a, b)).astype(np.int64)
    both.sort()
    return both[np.concatenate(([True], both[1:] != both[:-1]))] if len(both) else both


def lookup(ranked: Ranking, ids: np.ndarray, default: float = 0.0) -> np.ndarray:
    """The score `ranked` gives each of `ids`; `default` for ids it does not hold."""
    keys, values = ranked
    out = np.full(len(ids), default, dtype=np.float64)
    if len(keys):
        if not _is_sorted(keys):
            order = np.argsort(keys)
            keys, values = keys[order], values[order]
        at = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
        found = keys[at] == ids
        out[found] = values[at[found]]
    return out


def _is_sorted(a: np.ndarray) -> bool:
    return bool(len(a) < 2 or (a[1:] >= a[:-1]).all())


def by_id(ids, scores) -> tuple[np.ndarray, np.ndarray]:
    """(ids, scores) in id order: what fusion needs of a list, which looks scores up by
    id, one sort where a ranking takes two."""
    ids, scores = np.asarray(ids, dtype=np.int64), np.asarray(scores, dtype=np.float64)
    if _is_sorted(ids):
        return ids, scores
    order = np.argsort(ids)
    return ids[order], scores[order]
