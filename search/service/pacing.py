"""The writer's model, paced so that searches keep their latency while articles are embedded.

Embedding an article takes a core for a fifth of a second or more; embedding a batch of
them, a second. Run in one go, that is a burst in which the serving workers share what is
left of the machine, and the searches caught in it wait: their tail latency doubled while
the writer was busy (scripts/loadtest, docs/benchmarks.md). A lower CPU priority is no
answer: a saturated machine starves the writer for seconds while each PUT holds a request
thread. So, like a database's throttled background work, the writer embeds one text at a
time and, while the machine has no core to spare, sleeps after each long enough to keep
to a share of a core (`duty`, in CPU time: the model's thread runs the text). Its CPU is
the same, spread thinly instead of taken in bursts. With a core idle it runs flat out.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from search.retrieval.idle import machine_spare


class PacedEmbedder:
    """`embedder` (same interface) that yields the CPU between texts while the machine is busy."""

    def __init__(self, embedder, duty: float, idle: Callable[[], bool] = machine_spare, sleep=time.sleep,
                 clock=time.thread_time):
        if not 0 < duty <= 1:
            raise ValueError(f"the writer's duty must be in (0, 1], got {duty}")
        self._inner = embedder
        self.duty = duty
        self._idle = None if duty >= 1 else idle  # whether a core is spare now (None: never paced)
        self._sleep, self._clock = sleep, clock
        self.slept_s = 0.0  # for tests and logs: how long it yielded in all

    def __getattr__(self, name):  # name, dimension, backend, count_tokens, ...: the model's
        return getattr(self._inner, name)

    def embed(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        if self._idle is None or len(texts) <= 1 or not getattr(self._inner, "embeds_alone", False):
            # (a backend whose vectors depend on their batch is paced a call at a time)
            return self._paced(lambda: self._inner.embed(texts, batch_size=batch_size, progress=progress))
        return np.vstack([self._paced(lambda t=t: self._inner.embed([t], batch_size=1)) for t in texts])

    def _paced(self, run):
        started = self._clock()
        out = run()
        if self._idle is not None and not self._idle():
            pause = (self._clock() - started) * (1 - self.duty) / self.duty
            self._sleep(pause)
            self.slept_s += pause
        return out
