"""Hot reload: the searcher of an index's current generation, swapped in when a new one
is published, without stopping or failing a request.

A request takes `live.get()` once and uses that searcher to the end, so it sees one
generation throughout. At most once a second `get()` looks at the index's `CURRENT`
pointer (one small read); on a new generation a background thread opens it while the old
one keeps answering, then swaps the reference. The old searcher is freed when the last
request that took it finishes.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

from search.errors import SearchError
from search.index import generations, milvus_index
from search.searcher import Searcher

log = logging.getLogger("search.live")


class LiveSearcher:
    CHECK_S = 1.0  # how often a request may look at the pointer
    # a generation that would not open (a file still being copied in, a Milvus server
    # away) is tried again after 1, 2, 4 ... seconds, at most a minute apart
    RETRY_S = 1.0
    RETRY_MAX_S = 60.0

    def __init__(self, root: str | Path, open_searcher: Callable[[], Searcher], check_s: float = CHECK_S,
                 initial: Searcher | None = None):
        # an index directory, or the URI of an index held in Milvus
        self.root = root if milvus_index.is_milvus(root) else Path(root)
        self._open = open_searcher
        self._searcher = initial or open_searcher()
        self.check_s = check_s
        self._checked = time.monotonic()
        self._loading = threading.Lock()  # one reload at a time
        self._failed: str | None = None  # a generation that would not open ...
        self._failures = 0  # ... how many times in a row ...
        self._retry_at = 0.0  # ... and when to try it again (time.monotonic())
        self.reloads = 0
        self.on_swap: Callable[[Searcher], None] = lambda searcher: None

    @property
    def remote(self) -> bool:
        """Whether the index is held in Milvus (no directory: writes go through `indexer build --store`)."""
        return isinstance(self.root, str)

    def get(self) -> Searcher:
        """The searcher to answer one request with."""
        now = time.monotonic()
        if now - self._checked >= self.check_s:
            self._checked = now
            if self.remote and self._stale():
                # An index in Milvus holds no lease on its generation: a replica idle through
                # two publishes would answer from collections already dropped. It opens the
                # new generation before answering.
                self._loading.acquire()
                if self._stale():
                    self._reload_locked()
                else:
                    self._loading.release()
            elif self._stale() and self._loading.acquire(blocking=False):
                threading.Thread(target=self._reload_locked, name="reload", daemon=True).start()
        return self._searcher

    def reload(self) -> Searcher:
        """Open the current generation now (after this process published it)."""
        with self._loading:
            self._swap(self._open())
        return self._searcher

    def serving(self, generation: str | None) -> Searcher:
        """A searcher of `generation` or a later one: the one serving, or the current
        generation opened now (a write's answer shows the write)."""
        if self._holds(generation):
            return self._searcher
        with self._loading:  # (a reload running now may already bring it)
            if not self._holds(generation):
                self._swap(self._open())
        return self._searcher

    def _holds(self, generation: str | None) -> bool:
        served = self._searcher.generation
        return generation is None or (served is not None and generations.number(served) >= generations.number(generation))

    def _stale(self) -> bool:
        try:
            name = self._current()
        except SearchError:
            return False
        if name is None or name == self._searcher.generation:
            return False
        return name != self._failed or time.monotonic() >= self._retry_at

    def _current(self) -> str | None:
        """The name of the generation current now (of an index in Milvus: its alias's)."""
        if self.remote:
            return milvus_index.current_token(self.root)
        return generations.current_name(self.root)

    def _reload_locked(self) -> None:
        try:
            self._swap(self._open())
            self._failed, self._failures = None, 0
        except Exception as e:  # a bad generation must not take down the one being served
            name = self._current()
            self._failures = self._failures + 1 if name == self._failed else 1
            self._failed = name
            delay = min(self.RETRY_MAX_S, self.RETRY_S * 2 ** (self._failures - 1))
            self._retry_at = time.monotonic() + delay
            log.error("not reloading %s generation %s (attempt %d, next in %.0f s): %s", self.root, name,
                      self._failures, delay, e)
        finally:
            self._loading.release()

    def _swap(self, new: Searcher) -> None:
        old = self._searcher
        if new.generation == old.generation:  # nothing newer after all
            return
        # requests still running hold the old searcher; it is freed (and its generation's
        # mapped files with it) when the last of them finishes
        self._searcher = new
        self.reloads += 1
        self.on_swap(new)
        log.info("serving %s generation %s (was %s)", self.root, new.generation, old.generation)
