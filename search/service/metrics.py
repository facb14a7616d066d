"""Prometheus metrics for `GET /metrics`: requests by route and status, latency
histograms, and the generation and size of the index served.

Under gunicorn every worker counts its own requests; `search/service/gunicorn_conf.py` points
`PROMETHEUS_MULTIPROC_DIR` at a fresh directory so that one scrape, answered by any
worker, adds up all of them (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from search.index.generations import number

REQUESTS = Counter("search_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram("search_request_seconds", "Time to answer an HTTP request", ["method", "route"],
                    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
GENERATION = Gauge("search_index_generation", "Number of the index generation served (0: single directory)",
                   multiprocess_mode="livemax")
DOCUMENTS = Gauge("search_index_documents", "Documents in the index served", multiprocess_mode="livemostrecent")
PASSAGES = Gauge("search_index_passages", "Passages in the index served", multiprocess_mode="livemostrecent")
RELOADS = Counter("search_index_reloads_total", "New index generations swapped in without a restart")


def observe_index(searcher) -> None:
    GENERATION.set(number(searcher.generation))
    DOCUMENTS.set(searcher.manifest["counts"]["documents"])
    PASSAGES.set(searcher.manifest["counts"]["passages"])


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


def render() -> tuple[bytes, str]:
    """The text exposition of every metric (of all workers, under gunicorn)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
