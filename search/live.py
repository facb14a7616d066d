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
from search.index import generations
from search.searcher import Searcher

log = logging.getLogger("search.live")


class LiveSearcher:
    CHECK_S = 1.0  # how often a request may look at the pointer

    def __init__(self, root: str | Path, open_searcher: Callable[[], Searcher], check_s: float = CHECK_S,
                 initial: Searcher | None = None):
        self.root = Path(root)
        self._open = open_searcher
        self._searcher = initial or open_searcher()
        self.check_s = check_s
        self._checked = time.monotonic()
        self._loading = threading.Lock()  # one reload at a time
        self._failed: str | None = None  # a generation that would not open: not retried
        self.reloads = 0
        self.on_swap: Callable[[Searcher], None] = lambda searcher: None

    def get(self) -> Searcher:
        """The searcher to answer one request with."""
        now = time.monotonic()
        if now - self._checked >= self.check_s:
            self._checked = now
            if self._stale() and self._loading.acquire(blocking=False):
                threading.Thread(target=self._reload_locked, name="reload", daemon=True).start()
        return self._searcher

    def reload(self) -> Searcher:
        """Open the current generation now (after this process published it)."""
        with self._loading:
            self._swap(self._open())
        return self._searcher

    def _stale(self) -> bool:
        try:
            name = generations.current_name(self.root)
        except SearchError:
            return False
        return name is not None and name != self._searcher.generation and name != self._failed

    def _reload_locked(self) -> None:
        try:
            self._swap(self._open())
        except Exception as e:  # a bad generation must not take down the one being served
            self._failed = generations.current_name(self.root)
            log.error("not reloading %s generation %s: %s", self.root, self._failed, e)
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
