"""The writer's work, paced so that searches keep their latency while articles are written.

Embedding an article takes a core for a fifth of a second or more, and the rest of an
update a tenth of a second more; a merge, seconds. Run in one go, each is a burst in
which the serving workers share what is left of the machine, and the searches caught in
it wait: their tail latency doubled while the writer was busy, and still doubled with
the model's share spread out and the rest of the update left in one go (scripts/loadtest,
docs/benchmarks.md). A lower CPU priority is no answer: a saturated machine starves the
writer for seconds while each PUT holds a request thread. So, like a database's
throttled background work, the writer's threads stop at points along the way (the model
between texts, the update and the merge at `search.index.yielding.give_way`) and, while the
machine has no core to spare, sleep long enough to keep to a share of a core (`duty`, in
each thread's own CPU time). The CPU is the same, spread thinly instead of taken in
bursts. With a core idle it runs flat out.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np

from search.retrieval.idle import machine_spare

# CPU a thread runs before the pacer looks at the machine: a look costs microseconds, a
# pause a wake-up, and a few milliseconds at a time is below what a search notices
SLICE_S = 0.002


class Pacer:
    """Called at the points where background work may pause; while the machine is busy,
    sleeps so that the calling thread keeps to `duty` of a core since its last pause."""

    def __init__(self, duty: float, idle: Callable[[], bool] = machine_spare, sleep=time.sleep,
                 clock=time.thread_time):
        if not 0 < duty <= 1:
            raise ValueError(f"the writer's duty must be in (0, 1], got {duty}")
        self.duty = duty
        self._idle = None if duty >= 1 else idle  # whether a core is spare now (None: never paced)
        self._sleep, self._clock = sleep, clock
        self._since = threading.local()  # each thread's CPU clock at its last pause
        self.slept_s = 0.0  # for tests and logs: how long it yielded in all

    @property
    def active(self) -> bool:
        return self._idle is not None

    def begin(self) -> None:
        """Starts counting the calling thread's CPU here, unless it is counting already: what
        the thread ran before its paced work (a test's, a model's loading) is not the work's."""
        if self._idle is not None and not hasattr(self._since, "cpu"):
            self._since.cpu = self._clock()

    def __call__(self) -> None:
        if self._idle is None:
            return
        if not hasattr(self._since, "cpu"):
            self.begin()  # a thread's first look only starts its count
            return
        spent = self._clock() - self._since.cpu
        if spent < SLICE_S:
            return
        if not self._idle():
            pause = spent * (1 - self.duty) / self.duty
            self._sleep(pause)
            self.slept_s += pause
        self._since.cpu = self._clock()


class PacedEmbedder:
    """`embedder` (same interface) that lets `pacer` pause the thread between texts."""

    def __init__(self, embedder, pacer: Pacer):
        self._inner = embedder
        self.pacer = pacer

    def __getattr__(self, name):  # name, dimension, backend, count_tokens, ...: the model's
        return getattr(self._inner, name)

    def embed(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        self.pacer.begin()
        if not self.pacer.active or len(texts) <= 1 or not getattr(self._inner, "embeds_alone", False):
            # (a backend whose vectors depend on their batch is paced a call at a time)
            return self._paced(lambda: self._inner.embed(texts, batch_size=batch_size, progress=progress))
        return np.vstack([self._paced(lambda t=t: self._inner.embed([t], batch_size=1)) for t in texts])

    def _paced(self, run):
        out = run()
        self.pacer()
        return out
