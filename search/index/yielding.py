"""Points in an update's or a merge's work where it may give the cores back to searches.

An update of a few articles is a tenth of a second of CPU or more besides its model; run
in one go, it holds a core, and the searches sharing that core answer at half speed (the
service's tail latency doubled with the update's own work alone: docs/benchmarks.md).
The service's writer therefore runs its updates and merges under a pacer
(search/service/pacing.py) that sleeps at these points to keep the thread to its share
of a core. Anywhere else (`indexer add` on its own, a build, tests) they cost nothing.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator

_local = threading.local()


def give_way() -> None:
    """A point where the work may pause: the thread's pacer, if it has one, decides."""
    pacer = getattr(_local, "pacer", None)
    if pacer is not None:
        pacer()


@contextmanager
def paced(pacer: Callable[[], None] | None) -> Iterator[None]:
    """`give_way` in this thread calls `pacer` while the block runs (None: never pauses)."""
    previous = getattr(_local, "pacer", None)
    _local.pacer = pacer
    if hasattr(pacer, "begin"):
        pacer.begin()  # the work's CPU counts from here, not from the thread's start
    try:
        yield
    finally:
        _local.pacer = previous
