"""The one thread that changes an index, fed by a queue.

`PUT`, `POST` and `DELETE /documents` hand their write to a writer and wait for the
published generation: request threads never run an update themselves, and writes that
arrive while one is being written are applied together, as one update and one new
segment (group commit), not one generation each. A service runs its writer in a process
of its own (search/service/writer_process.py), which `indexer add` also writes through;
a process that cannot reach it runs this thread itself. Across processes the index's
writer lock keeps one update at a time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

# Writes applied together at most: a feed's burst is one update, yet one request's
# answer never waits behind an unbounded pile.
MAX_BATCH = 256
# At most one generation this often: every generation costs each serving process a
# reload, and writes arriving meanwhile are applied together.
PUBLISH_INTERVAL_S = 0.5
# While the machine has no core to spare the wait is longer ($SEARCH_PUBLISH_INTERVAL_S):
# a generation also costs every worker the first searches of its new BM25 statistics,
# which the searches of a busy machine pay for. With a core idle, nothing is gained by
# waiting.
IDLE_POLL_S = 0.1  # how often it looks again


@dataclass
class Write:
    documents: list = field(default_factory=list)  # indexer.sources.Document to add or replace
    remove: list[str] = field(default_factory=list)
    done: Future = field(default_factory=Future)  # the UpdateSummary

    @property
    def ids(self) -> set[str]:
        return {d.doc_id for d in self.documents} | set(self.remove)


class Writer:
    def __init__(self, root: str | Path, embedder: Callable[[], object], interval_s: float = PUBLISH_INTERVAL_S,
                 on_published: Callable[[object], None] = lambda summary: None, busy_interval_s: float | None = None,
                 idle: Callable[[], bool] | None = None, pacer: Callable[[], None] | None = None):
        from search import settings
        from search.index.milvus_index import is_milvus
        from search.retrieval.idle import machine_spare

        self.root = root if is_milvus(root) else Path(root)  # an index directory, or an index in Milvus
        self._embedder = embedder  # the model the index is written with (the service's own)
        self.interval_s = interval_s
        self.busy_interval_s = max(interval_s, settings.value("SEARCH_PUBLISH_INTERVAL_S")
                                   if busy_interval_s is None else busy_interval_s)
        self._idle = idle or machine_spare  # whether the machine has a core to spare now
        self._pacer = pacer  # what paces the updates and merges (search/service/pacing.py); None: flat out
        self.on_published = on_published  # called with each update's summary once it is published (alerts)
        self._queue: queue.Queue[Write] = queue.Queue()
        self._held: Write | None = None  # a write that conflicted with the last batch: next
        self._started = False
        self._lock = threading.Lock()
        self._merging: threading.Thread | None = None

    def write(self, documents=(), remove=()):
        """Apply the write (after those queued before it) and return its UpdateSummary
        once it is published; raises what the update raised."""
        job = Write(list(documents), list(remove))
        self._start()
        self._queue.put(job)
        return job.done.result()

    def _start(self) -> None:
        with self._lock:  # started in the process that writes (after gunicorn's fork)
            if not self._started:
                threading.Thread(target=self._run, name="search-writer", daemon=True).start()
                self._started = True

    def _run(self) -> None:
        from search.index.yielding import paced

        while True:
            batch = self._batch()
            started = time.monotonic()
            with paced(self._pacer):
                self._apply(batch)
            self._merge_if_due()
            self._pause(started)

    def _pause(self, started: float) -> None:
        """Until the next generation may begin: `interval_s` after the last began, and while
        the machine has no core to spare, up to `busy_interval_s` (writes arriving meanwhile
        are applied together)."""
        time.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))
        deadline = started + self.busy_interval_s
        while (left := deadline - time.monotonic()) > 0 and not self._idle():
            time.sleep(min(IDLE_POLL_S, left))

    def _merge_if_due(self) -> None:
        """Start a background merge when the policy asks for one (indexer/merge.py): the
        writes go on meanwhile, and the merge catches up with them before it publishes."""
        from indexer.update import merge_due

        if isinstance(self.root, str) or (self._merging is not None and self._merging.is_alive()):
            return  # (an index in Milvus has no segments to merge)
        try:
            due = merge_due(self.root)
        except Exception as e:  # noqa: BLE001 - the next write asks again
            log.warning("could not read the merge policy's inputs: %s", e)
            return
        if due:
            self._merging = threading.Thread(target=self._merge, name="search-merge", daemon=True)
            self._merging.start()

    def _merge(self) -> None:
        from indexer.merge import merge_in_background
        from search.index.yielding import paced

        try:
            with paced(self._pacer):
                merge_in_background(self.root, self._embedder())
        except Exception:  # noqa: BLE001 - the index stays as it was; the policy asks again
            log.exception("a background merge of %s failed", self.root)
        finally:
            _release_memory()

    def _batch(self) -> list[Write]:
        """The next write and every one queued behind it that touches other documents (a
        second write to the same document waits for the next batch, to keep the order)."""
        first, self._held = self._held or self._queue.get(), None
        batch, ids = [first], set(first.ids)
        while len(batch) < MAX_BATCH:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job.ids & ids:
                self._held = job
                break
            batch.append(job)
            ids |= job.ids
        return batch

    def _apply(self, batch: list[Write]) -> None:
        from indexer.update import update

        try:
            summary = update(self.root, documents=[d for job in batch for d in job.documents],
                             remove=[i for job in batch for i in job.remove], embedder=self._embedder(),
                             strict=True, batch_size=8, background_merges=True)  # small batches: the memory peak stays near a search's
        except BaseException as e:  # noqa: BLE001 - every waiting request gets its answer
            if len(batch) > 1:  # one bad write must not fail the others: each on its own
                log.info("a batch of %d writes failed (%s); applying them one by one", len(batch), e)
                for job in batch:
                    self._apply([job])
            else:
                batch[0].done.set_exception(e)
            return
        finally:
            _release_memory()
        for job in batch:
            job.done.set_result(summary)
        if summary.changed:
            self.on_published(summary)


def _release_memory() -> None:
    """Give the update's scratch memory back to the system: glibc keeps what a thread
    freed in that thread's arena (~40 MB after a write here, for good otherwise)."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass
