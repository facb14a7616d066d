"""An index's writer in a process of its own, reached over a Unix socket.

`scripts/serve` (gunicorn's master) starts one per index when writes are enabled. Its
workers send their writes here rather than updating in their own processes: an update's
Python work never holds a serving process's GIL, writes from every worker are batched
together (search/service/writer.py), and `indexer add` run while the service is up goes
through it too. Where it listens is recorded in the index's `writer.json` (owner-only:
it holds the key the socket checks); the socket itself lives in a private temporary
directory. Messages are JSON, never pickles.

    python -m search.service.writer_process INDEX
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from multiprocessing.connection import AuthenticationError, Client, Listener
from pathlib import Path

from search import errors
from search.errors import SearchError

log = logging.getLogger("search.writer")

ADDRESS_FILE = "writer.json"


class WriterUnreachable(Exception):
    """No writer answered: nothing was sent (the caller may write by itself). `recorded`:
    whether the index names one (that then did not answer)."""

    def __init__(self, message: str, recorded: bool):
        super().__init__(message)
        self.recorded = recorded


def serve(root: str | Path) -> None:
    """Answer writes for the index at `root` until stopped (SIGTERM, or the parent's end)."""
    from search import settings
    from search.embedding.embedder import canonical_model_name, get_embedder
    from search.alerts import Matcher
    from search.service.pacing import PacedEmbedder, Pacer
    from search.service.writer import Writer

    root = Path(root)
    os.nice(settings.value("SEARCH_WRITER_NICE"))
    pacer = Pacer(settings.value("SEARCH_WRITER_DUTY"))
    embedder = PacedEmbedder(get_embedder(canonical_model_name(settings.value("SEARCH_MODEL")), None), pacer)
    writer = Writer(root, lambda: embedder, on_published=Matcher(root).published, pacer=pacer)
    key = secrets.token_bytes(32)
    private = tempfile.mkdtemp(prefix="search-writer-")  # 0700: only this user reaches the socket
    address = os.path.join(private, "socket")
    listener = Listener(address, family="AF_UNIX", authkey=key)
    _record(root, {"socket": address, "key": key.hex(), "pid": os.getpid()})

    def stop(*_):
        _forget(root)
        shutil.rmtree(private, ignore_errors=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    parent = os.getppid()
    threading.Thread(target=_exit_with_parent, args=(parent, stop), daemon=True).start()
    threading.Thread(target=_accept, args=(listener, writer), name="search-writer-accept", daemon=True).start()
    log.info("writer %d for %s listening", os.getpid(), root)
    while True:
        # The main thread only waits. Python runs a signal's handler in the main thread,
        # between bytecodes; blocked in accept(), it was seen to miss SIGTERM (a test's
        # teardown waited 30 s for the writer one run in eight). Waking every half second,
        # it always runs the handler.
        time.sleep(0.5)


def _accept(listener, writer) -> None:
    while True:
        try:
            conn = listener.accept()
        except (AuthenticationError, OSError) as e:  # a caller without the key, or one that left
            log.warning("refused a connection: %s", e)
            continue
        threading.Thread(target=_answer, args=(conn, writer), daemon=True).start()


def _exit_with_parent(parent: int, stop) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    stop()


def _record(root: Path, record: dict) -> None:
    tmp = root / f".{ADDRESS_FILE}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(record, f)
    os.replace(tmp, root / ADDRESS_FILE)


def _forget(root: Path) -> None:
    """Remove writer.json if it is still this process's."""
    try:
        if json.loads((root / ADDRESS_FILE).read_text(encoding="utf-8")).get("pid") == os.getpid():
            (root / ADDRESS_FILE).unlink()
    except (OSError, ValueError):
        pass


def _answer(conn, writer) -> None:
    from indexer.sources import Document

    try:
        with conn:
            request = json.loads(conn.recv_bytes())
            try:
                summary = writer.write([Document(**d) for d in request.get("documents", [])],
                                       request.get("remove", []))
                reply = {"summary": summary_record(summary)}
            except SearchError as e:
                reply = {"error": {"type": type(e).__name__, "code": e.code, "message": str(e)}}
            except Exception as e:  # noqa: BLE001 - the caller gets an answer, the log the trace
                log.exception("a write failed")
                reply = {"error": {"type": "SearchError", "code": "write_failed", "message": f"the write failed: {e}"}}
            conn.send_bytes(json.dumps(reply).encode("utf-8"))
    except (OSError, EOFError, ValueError, TypeError) as e:  # a caller that left, or sent what is no write
        log.warning("a write request was not answered: %s", e)


def summary_record(summary) -> dict:
    record = {f.name: getattr(summary, f.name) for f in dataclasses.fields(summary) if f.name != "index_dir"}
    record["skipped"] = [[s.where, s.reason] for s in summary.skipped]
    return record


def _summary(root: Path, record: dict):
    from indexer.sources import Skipped
    from indexer.update import UpdateSummary

    known = {f.name for f in dataclasses.fields(UpdateSummary)}
    # (fields this version does not know are dropped: a writer process started from newer
    # code, mid-deploy, still answers these workers)
    record = {k: v for k, v in record.items() if k in known and k != "index_dir"}
    record["skipped"] = [Skipped(where, reason) for where, reason in record.get("skipped", [])]
    return UpdateSummary(index_dir=root, **record)


def find(root: str | Path) -> dict | None:
    """Where the index's writer process listens, if one recorded it and is alive."""
    try:
        record = json.loads((Path(root) / ADDRESS_FILE).read_text(encoding="utf-8"))
        os.kill(int(record["pid"]), 0)
        return record
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write(root: str | Path, documents=(), remove=()):
    """Send a write to the index's writer process and return its UpdateSummary once
    published; raises what the update raised.

    Raises:
        WriterUnreachable: no writer process answered (nothing was sent).
        WriterUnavailable: it stopped after taking the write (whether it was applied is unknown).
    """
    record = find(root)
    if record is None:
        raise WriterUnreachable(f"no writer process for {root}", recorded=False)
    try:
        conn = Client(record["socket"], family="AF_UNIX", authkey=bytes.fromhex(record["key"]))
    except (OSError, AuthenticationError, EOFError, ValueError) as e:
        raise WriterUnreachable(f"the writer process for {root} does not answer: {e}", recorded=True) from e
    try:
        with conn:
            conn.send_bytes(json.dumps({"documents": [dataclasses.asdict(d) for d in documents],
                                        "remove": list(remove)}).encode("utf-8"))
            reply = json.loads(conn.recv_bytes())
    except (OSError, EOFError) as e:
        raise errors.WriterUnavailable(f"the index's writer stopped during the write ({e}); whether it was "
                                       "applied is unknown: send it again") from e
    if "error" in reply:
        raise _error(reply["error"])
    return _summary(Path(root), reply["summary"])


def _error(error: dict) -> SearchError:
    kind = getattr(errors, error["type"], SearchError)
    if not (isinstance(kind, type) and issubclass(kind, SearchError)):
        kind = SearchError
    if issubclass(kind, errors.BadRequest):
        return kind(error["code"], error["message"])
    raised = kind(error["message"])
    raised.code = error["code"]
    return raised


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m search.service.writer_process INDEX", file=sys.stderr)
        return 2
    logging.basicConfig(format="%(name)s: %(levelname)s: %(message)s", level=logging.INFO)
    serve(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
