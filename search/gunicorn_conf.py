"""gunicorn settings for this service (`gunicorn -c python:search.gunicorn_conf search.wsgi:app`).

Each worker loads the model and index once (no --preload: torch's thread pools do not
survive fork). Requests are short and CPU-bound; threads let a worker overlap I/O and
JSON work with another request's model call.
"""

import os

bind = os.environ.get("SEARCH_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("SEARCH_WORKERS", "2"))
threads = int(os.environ.get("SEARCH_THREADS", "4"))
worker_class = "gthread"
timeout = 120  # a worker's start includes loading the model
graceful_timeout = 30
# SEARCH_ACCESS_LOG=off drops the per-request line (scripts/bench, very busy services)
accesslog = None if os.environ.get("SEARCH_ACCESS_LOG", "").lower() in ("off", "false", "0") else "-"
errorlog = "-"
# One model thread per worker: two workers on two cores, not four threads fighting for them.
if not (os.environ.get("SEARCH_EMBED_THREADS") or os.environ.get("SEARCH_TORCH_THREADS")):
    os.environ["SEARCH_EMBED_THREADS"] = "1"
