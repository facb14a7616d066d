"""gunicorn settings for this service (`gunicorn -c python:search.service.gunicorn_conf search.service.wsgi:app`).

Each worker loads the model and index once (no --preload: torch's thread pools do not
survive fork). Requests are short and CPU-bound; threads let a worker overlap I/O and
JSON work with another request's model call.
"""

import gc
import json
import os
import re

from gunicorn import util

from search import settings

bind = settings.value("SEARCH_BIND")
workers = settings.value("SEARCH_WORKERS")
threads = settings.value("SEARCH_THREADS")
settings.value("SEARCH_WRITER_DUTY")  # read by the writer process, but refused here, at start
# gunicorn's threaded worker, taking new connections only while it holds the fewest
# (search/service/balance.py): kept-alive clients split evenly, not 14 to 2
worker_class = "search.service.balance.BalancedWorker"
timeout = 120  # a worker's start includes loading the model
graceful_timeout = 30
# The app writes the access log line itself, with the request id (SEARCH_ACCESS_LOG=off
# drops it); gunicorn's own would be a second line per request.
accesslog = None
errorlog = "-"
# One model thread per worker: two workers on two cores, not four threads fighting for them.
if settings.value("SEARCH_EMBED_THREADS") is None:
    os.environ["SEARCH_EMBED_THREADS"] = "1"
# A worker's threads are for requests that wait (a PUT waits for the writer); searches are
# CPU work, run in turn on the worker's own search threads, one for each core it has
# (search/service/app.py: a search handed to whichever request thread is free found that
# thread's malloc arena cold).
if settings.value("SEARCH_WORKER_SEARCHES") is None:
    os.environ["SEARCH_WORKER_SEARCHES"] = str(max(1, len(os.sched_getaffinity(0)) // workers))
# Workers hand the model's batch memory back (search/embedding/embedder.py): a PUT of a long article
# must not leave a worker hundreds of MB larger for good.
os.environ.setdefault("SEARCH_EMBED_ARENA", "off")

# /metrics adds up every worker's counts: prometheus_client's multiprocess mode keeps them
# in files here (set before any worker imports it; emptied at each start).
# A directory made here is removed at exit: one left behind by every start piled up in /tmp.
_OWN_METRICS_DIR = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    _OWN_METRICS_DIR = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="search-metrics-")


def on_starting(server):
    import glob

    for path in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(path)


def when_ready(server):
    # With writes on, the index gets one writer process (search/service/writer_process.py):
    # the workers send it their writes, and `indexer add` finds it through the index.
    if settings.value("SEARCH_API_KEY") and not settings.value("SEARCH_STORE"):
        import subprocess
        import sys

        # One model thread, at the workers' priority, its threads asleep when idle: with
        # two, each article's embedding took both cores from the searches in bursts; at a
        # lower priority each PUT waited seconds holding a request thread. On a busy machine
        # it paces itself instead (search/service/pacing.py; scripts/loadtest,
        # docs/benchmarks.md)
        env = {**os.environ, "SEARCH_EMBED_THREADS": str(settings.value("SEARCH_WRITER_THREADS")),
               "SEARCH_EMBED_SPIN": "off"}
        server.search_writer = subprocess.Popen(
            [sys.executable, "-m", "search.service.writer_process", str(settings.value("SEARCH_INDEX"))], env=env)


def on_exit(server):
    writer = getattr(server, "search_writer", None)
    if writer is not None:
        writer.terminate()
        try:
            writer.wait(10)
        except Exception:  # noqa: BLE001 - it is leaving either way
            writer.kill()
    if _OWN_METRICS_DIR:
        import shutil

        shutil.rmtree(_OWN_METRICS_DIR, ignore_errors=True)


def post_worker_init(worker):
    # What the worker loaded to serve (modules, the model, the first searcher: ~80,000
    # objects) lives as long as it does; frozen, the cyclic collector stops walking it
    # at every full collection, each of which held the worker 30-100 ms while articles
    # arrived (docs/benchmarks.md). Later generations' objects are collected as before.
    gc.freeze()
    # Logged once the worker has loaded the model and index, just before it takes
    # connections: until then gunicorn's other workers take them all, and a kept-alive
    # connection stays with the worker that accepted it (tools/served.py waits for these).
    worker.log.info("worker %s ready", worker.pid)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    from search.service import balance

    multiprocess.mark_process_dead(worker.pid)
    balance.release(worker)


# Requests gunicorn refuses itself (a request line over limit_request_line, malformed
# headers) get the service's JSON error body too, not gunicorn's HTML page.
limit_request_line = 8190  # gunicorn's maximum: long questions fit; longer ones go by POST


def _json_error(sock, status_int, reason, mesg):
    code = re.sub(r"\W+", "_", reason.lower()).strip("_")
    hint = " (send long questions with POST /search)" if status_int == 414 else ""
    body = json.dumps({"error": {"code": code, "message": (mesg or reason) + hint}})
    util.write_nonblock(sock, (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
                               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                               f"{body}").encode("latin1"))


util.write_error = _json_error
