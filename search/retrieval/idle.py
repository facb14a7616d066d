"""Whether the machine has a core to spare right now.

A search that finds a core idle runs BM25 on it while the model encodes the query; a
service under load has none, and handing work to another thread would only add CPU. The
answer has to be the machine's, not the process's: gunicorn's other workers use the same
cores. The kernel's instantaneous count of runnable threads (/proc/loadavg) flickers with
its own housekeeping (on an idle machine it read 2 a third of the time), so this looks at
the idle time /proc/stat has counted over the last tenth of a second instead.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from search.embedding.embedder import embed_threads

WINDOW_S = 0.1  # how far back "right now" reaches
SPARE = 0.5  # idle cores, on average over the window, that count as one to spare


class IdleCores:
    """Idle cores of the machine over the last WINDOW_S, from /proc/stat."""

    def __init__(self, path: str = "/proc/stat"):
        self._fd = os.open(path, os.O_RDONLY)  # pread on a kept descriptor: a few us a look
        self._tick = os.sysconf("SC_CLK_TCK")
        self._lock = threading.Lock()
        self._last = (time.monotonic(), self._idle_ticks())
        self._spare = True

    def _idle_ticks(self) -> int:
        # first line: "cpu  user nice system idle iowait ..." in clock ticks, all cores
        fields = os.pread(self._fd, 256, 0).split(b"\n", 1)[0].split()
        return int(fields[4]) + int(fields[5])

    def spare(self) -> bool:
        """Whether, over the last WINDOW_S, at least SPARE cores sat idle."""
        now = time.monotonic()
        with self._lock:
            then, idle_then = self._last
            if now - then >= WINDOW_S:
                idle = self._idle_ticks()
                self._spare = (idle - idle_then) / self._tick / (now - then) >= SPARE
                self._last = (now, idle)
            return self._spare


@functools.cache
def machine() -> IdleCores | None:
    """This process's view of the machine's idle cores; None without /proc/stat (not Linux)."""
    try:
        return IdleCores()
    except OSError:
        return None


def machine_spare() -> bool:
    """Whether the machine has a core to spare now (where it cannot be told: yes)."""
    found = machine()
    return found is None or found.spare()


def _idle_cores() -> IdleCores | None:
    cores = len(os.sched_getaffinity(0))
    if cores <= (embed_threads() or cores):
        return None  # the model takes every core
    return machine()  # (None: BM25 runs inline)


def spare_core() -> bool:
    """Whether a core would sit idle while the model encodes a query."""
    idle = _idle_cores()
    return idle is not None and idle.spare()


@functools.cache
def helper() -> ThreadPoolExecutor:
    """This process's one thread for work beside the model (started on first use, so in
    each gunicorn worker after the fork)."""
    return ThreadPoolExecutor(1, thread_name_prefix="search-helper")
