"""Near-duplicate collapse: copies of one passage (a wire story in two papers, an op-ed
and its translation) leave the ranking as one result that cites every copy."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import numpy as np

from search.ranked import Ranking


@dataclass(frozen=True)
class Duplicates:
    """passage id -> its near-duplicate group (-1: none), and each group's passages.
    Held in memory: collapse looks up every ranked passage, and the table is small
    (one row per passage that has a copy)."""

    group_of: np.ndarray
    members: dict[int, list[int]]

    @classmethod
    def read(cls, db: sqlite3.Connection, count: int) -> "Duplicates":
        """The groups the build recorded in the store (indexer/duplicates.py)."""
        group_of = np.full(count, -1, dtype=np.int64)
        members: dict[int, list[int]] = {}
        for pid, group in db.execute("SELECT passage_id, group_id FROM duplicates ORDER BY passage_id"):
            group_of[pid] = group
            members.setdefault(group, []).append(pid)
        return cls(group_of, members)

    def collapse(self, ranked: Ranking, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float, list[int]]]:
        """Merge near-duplicate passages into one result, its members ordered best first
        (only the members the filters allow)."""
        ids, scores = ranked
        results, taken = [], set()
        # read the ranking a slice at a time: k results are almost always in its first
        # few k rows, and listing all 2,000 fused rows cost more than the rest of collapse
        step = 4 * k
        for start in range(0, len(ids), step):
            head = slice(start, start + step)
            for pid, score, group in zip(ids[head].tolist(), scores[head].tolist(), self.group_of[ids[head]].tolist()):
                if group < 0:
                    results.append((pid, score, [pid]))
                elif group not in taken:
                    taken.add(group)
                    results.append((pid, score, self.members_best_first(group, ids, allowed)))
                if len(results) == k:
                    return results
        return results

    def members_best_first(self, group: int, ids: np.ndarray, allowed: np.ndarray | None = None) -> list[int]:
        """A group's passages in ranking order, the unranked last."""
        members = [m for m in self.members[group] if allowed is None or allowed[m]]
        at = np.flatnonzero(np.isin(ids, members))
        position = dict(zip(ids[at].tolist(), at.tolist()))
        return sorted(members, key=lambda m: (position.get(m, len(ids)), m))
