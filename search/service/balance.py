"""Connections spread evenly over gunicorn's workers (least connections, as a proxy would).

gunicorn's workers share one listening socket and whichever wakes first accepts; a
kept-alive connection then stays with that worker. Sixteen clients connecting at once
were split 12/4 and 14/2 (docs/benchmarks.md): the busier worker's clients waited three
times as long as the others', the other worker ran short of work, and the p99 was set by
the split. Here each worker publishes how many connections it holds in memory shared
with the master and the other workers, and takes new ones only while no other worker
holds fewer.

Slots are claimed in the master when it makes a worker, published by the worker once it
serves (a worker still loading its model holds none, and counts as absent), and freed
when the master reaps it, so a worker that died can never keep the others from accepting.
"""

from __future__ import annotations

import ctypes
from multiprocessing.sharedctypes import RawArray

import numpy as np
from gunicorn.workers.gthread import ThreadWorker

SLOTS = 64  # workers at once, restarts included; past this a worker accepts freely
ABSENT = -1  # a free slot, or a worker not serving yet
# A worker not taking connections looks again this often, so that it resumes as soon as
# it is the least loaded (gunicorn's loop would otherwise sleep up to a second).
RECHECK_S = 0.05

# Created when the master imports the worker class, before any fork: every worker shares it.
_slots = RawArray(ctypes.c_int64, SLOTS)
_counts = np.frombuffer(_slots, dtype=np.int64)
_counts[:] = ABSENT
_claimed: set[int] = set()  # (in the master) slots of workers alive


def claim() -> int | None:
    """A free slot for a worker being made (in the master); None when all are taken."""
    slot = next((s for s in range(SLOTS) if s not in _claimed), None)
    if slot is not None:
        _claimed.add(slot)
        _counts[slot] = ABSENT
    return slot


def release(worker) -> None:
    """The master reaped `worker`: its connections are gone, its slot free."""
    slot = getattr(worker, "balance_slot", None)
    if slot is not None:
        _counts[slot] = ABSENT
        _claimed.discard(slot)


def least_loaded(slot: int | None, counts: np.ndarray = _counts) -> bool:
    """Whether the worker in `slot` holds no more connections than any other serving one."""
    if slot is None:
        return True
    others = np.delete(counts, slot)
    serving = others[others != ABSENT]
    return not len(serving) or bool(counts[slot] <= serving.min())


class BalancedWorker(ThreadWorker):
    """gunicorn's threaded worker, accepting only while it is the least loaded."""

    _serving = False  # (its count is published once it runs)

    def __init__(self, *args, **kwargs):
        self.balance_slot = claim()  # (before ThreadWorker sets nr_conns)
        self._held = 0
        super().__init__(*args, **kwargs)

    @property
    def nr_conns(self) -> int:
        return self._held

    @nr_conns.setter
    def nr_conns(self, value: int) -> None:
        self._held = value
        if self.balance_slot is not None and self._serving:
            _counts[self.balance_slot] = value

    def run(self):
        self._serving = True
        self.nr_conns = self._held  # published: from now on it counts
        super().run()

    def set_accept_enabled(self, enabled):
        super().set_accept_enabled(enabled and least_loaded(self.balance_slot))

    def accept(self, listener):
        if not least_loaded(self.balance_slot):
            self.set_accept_enabled(False)  # another worker takes it
            return
        super().accept(listener)

    def wait_for_and_dispatch_events(self, timeout):
        waiting = self.alive and not self._accepting and self.nr_conns < self.worker_connections
        super().wait_for_and_dispatch_events(min(timeout, RECHECK_S) if waiting else timeout)
