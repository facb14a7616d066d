"""The one thread of a service process that changes the index.

`PUT`, `POST` and `DELETE /documents` hand their write to it and wait for the published
generation: the request threads never run an update themselves, and writes that arrive
while one is being written are applied together, as one update and one new segment
(group commit), not one generation each. Across processes (gunicorn's workers, `indexer
add`) the index's writer lock keeps one writer at a time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Writes applied together at most: a feed's burst is one update, yet one request's
# answer never waits behind an unbounded pile.
MAX_BATCH = 256


@dataclass
class Write:
    documents: list = field(default_factory=list)  # indexer.sources.Document to add or replace
    remove: list[str] = field(default_factory=list)
    done: Future = field(default_factory=Future)  # (UpdateSummary, the searcher serving it)

    @property
    def ids(self) -> set[str]:
        return {d.doc_id for d in self.documents} | set(self.remove)


class Writer:
    def __init__(self, live):
        self._live = live
        self._queue: queue.Queue[Write] = queue.Queue()
        self._held: Write | None = None  # a write that conflicted with the last batch: next
        self._started = False
        self._lock = threading.Lock()

    def write(self, documents=(), remove=()):
        """Apply the write (after those queued before it) and return (summary, searcher)
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
        while True:
            self._apply(self._batch())

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
            summary = update(self._live.root, documents=[d for job in batch for d in job.documents],
                             remove=[i for job in batch for i in job.remove], embedder=self._live.get().embedder,
                             strict=True, batch_size=8)  # small batches: the memory peak stays near a search's
            searcher = self._live.reload() if summary.changed else self._live.get()
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
            job.done.set_result((summary, searcher))


def _release_memory() -> None:
    """Give the update's scratch memory back to the system: glibc keeps what a thread
    freed in that thread's arena (~40 MB after a write here, for good otherwise)."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass
