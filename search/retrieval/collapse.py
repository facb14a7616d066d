"""Near-duplicate collapse: copies of one passage (a wire story in two papers, an op-ed
and its translation) leave the ranking as one result that cites every copy."""

from __future__ import annotations

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
    def of(cls, recorded: np.ndarray, live: np.ndarray | None = None) -> "Duplicates":
        """The groups the build and updates recorded (passage id -> group, -1: none;
        indexer/duplicates.py), less the deleted passages: a group left with one live
        passage is none."""
        group_of = recorded.copy()
        if live is not None:
            group_of[~live[:len(group_of)]] = -1
        grouped = np.flatnonzero(group_of >= 0)
        groups, sizes = np.unique(group_of[grouped], return_counts=True)
        lone = groups[sizes < 2]
        if len(lone):
            group_of[grouped[np.isin(group_of[grouped], lone)]] = -1
            grouped = np.flatnonzero(group_of >= 0)
        members: dict[int, list[int]] = {}
        for pid, group in zip(grouped.tolist(), group_of[grouped].tolist()):
            members.setdefault(group, []).append(pid)
        return cls(group_of, members)

    def collapse(self, ranked: Ranking, k: int, allowed: np.ndarray | None = None,
                 members_by: np.ndarray | None = None) -> list[tuple[int, float, list[int]]]:
        """Merge near-duplicate passages into one result, its members ordered best first
        (only the members the filters allow): in the order of `members_by`, ids best
        first, when given, else the ranking's."""
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
                    members = self.members_best_first(group, ids if members_by is None else members_by, allowed)
                    if members[0] != pid:  # (the result's own passage is cited first)
                        members = [pid] + [m for m in members if m != pid]
                    results.append((pid, score, members))
                if len(results) == k:
                    return results
        return results

    def members_best_first(self, group: int, ids: np.ndarray, allowed: np.ndarray | None = None) -> list[int]:
        """A group's passages in ranking order, the unranked last."""
        members = [m for m in self.members[group] if allowed is None or allowed[m]]
        at = np.flatnonzero(np.isin(ids, members))
        position = dict(zip(ids[at].tolist(), at.tolist()))
        return sorted(members, key=lambda m: (position.get(m, len(ids)), m))


def first_distinct(results: list[tuple[int, float, list[int]]], key, k: int) -> list[tuple[int, float, list[int]]]:
    """The first `k` results none of whose members shares a `key` (an article, a story)
    with an earlier one's: a collapsed result counts for every key its members have."""
    kept, seen = [], set()
    for pid, score, members in results:
        keys = {key(m) for m in members}
        if keys & seen:
            continue
        seen |= keys
        kept.append((pid, score, members))
        if len(kept) == k:
            break
    return kept


def per_article(results: list[tuple[int, float, list[int]]], ranked: Ranking, document_row: np.ndarray, k: int,
                more: int) -> tuple[list[tuple[int, float, list[int]]], dict[int, list[int]]]:
    """The first `k` results of distinct articles (a collapsed result counts for every
    article it cites), and for each, up to `more` other passages of its article from
    the ranking, best first."""
    kept = first_distinct(results, lambda m: int(document_row[m]), k)
    ids = ranked[0]
    rows = document_row[ids]
    others = {}
    for pid, _, members in kept:
        same = ids[rows == document_row[pid]]
        others[pid] = [int(m) for m in same if m not in members][:more]
    return kept, others


def count_facets(citations: list, fields: list[str]) -> dict[str, list[dict]]:
    """{field: [{"value", "count"}]}: the articles among `citations`, counted once each by
    their source, author or month of publication (YYYY-MM), most first, then by value."""
    articles = {c.doc_id: c for c in citations}
    out = {}
    for name in fields:
        counts: dict = {}
        for c in articles.values():
            value = (c.published or "")[:7] or None if name == "published_month" else getattr(c, name)
            counts[value] = counts.get(value, 0) + 1
        out[name] = [{"value": v, "count": n}
                     for v, n in sorted(counts.items(), key=lambda item: (-item[1], item[0] is None, item[0] or ""))]
    return out


def at_most_per_source(results: list[tuple[int, float, list[int]]], source_of: np.ndarray, n: int,
                       k: int) -> list[tuple[int, float, list[int]]]:
    """The first `k` results, at most `n` of them from one source (`source_of[id]`: a
    passage's source, by the result's first, best-ranked passage)."""
    kept, taken = [], {}
    for result in results:
        source = int(source_of[result[0]])
        if taken.get(source, 0) < n:
            taken[source] = taken.get(source, 0) + 1
            kept.append(result)
            if len(kept) == k:
                break
    return kept
