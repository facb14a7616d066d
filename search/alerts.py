"""Alerts: stored questions that every new article is matched against (a percolator).

An alert is a question with filters (source, publication dates) and a depth `k`. A newly
ingested article matches an alert when, searched for at once over the whole index with
the alert's filters, the article is among its first `k` results and its best passage is
close in meaning to the question (cosine at least MIN_COSINE: on an index with little on
the subject, anything would be in the first `k`). The cosines of every alert's question
with the new passages are one matrix product; only the alerts that pass it are searched,
so the cost follows the alerts an article could match, not all of them.

Alerts and their matches live in `<index>/alerts.sqlite`, beside the generations (an
alert is not part of what a generation describes), written in transactions that are on
disk before they are acknowledged. A match records the article's best passage for the
question and its citation; an alert with a webhook URL is sent its new matches as JSON.
"""

from __future__ import annotations

import calendar
import functools
import http.client
import json
import logging
import queue
import re
import secrets
import sqlite3
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from search.errors import AlertNotFound, BadRequest
from search.query import Filters

log = logging.getLogger("search.alerts")

FILE = "alerts.sqlite"
# the cosine between an alert's question and an article's best passage below which the
# article is not news for it, whatever its rank: unrelated passages score ~0-0.2 with
# this model, answering ones 0.4-0.7 (tests/test_alerts.py)
MIN_COSINE = 0.35
WEBHOOK_TIMEOUT_S = 5.0
SINCE = re.compile(r"([1-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
                   r"(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?Z?)?")
SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id        TEXT PRIMARY KEY,
    query     TEXT NOT NULL,
    k         INTEGER NOT NULL,
    filters   TEXT NOT NULL,      -- JSON: source, published_from, published_to
    webhook   TEXT,
    created   TEXT NOT NULL,
    vector    BLOB NOT NULL       -- the question's embedding, float32
);
CREATE TABLE IF NOT EXISTS matches (
    alert_id   TEXT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    doc_id     TEXT NOT NULL,
    matched_at TEXT NOT NULL,     -- UTC, ISO 8601
    published  TEXT,
    text       TEXT NOT NULL,     -- the article's best passage for the question
    citations  TEXT NOT NULL,     -- JSON
    PRIMARY KEY (alert_id, doc_id)
);
CREATE INDEX IF NOT EXISTS matches_time ON matches(alert_id, matched_at);
"""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def since_time(value: str | None) -> str | None:
    """`since` as the matches record their time (UTC, milliseconds), so that they compare;
    a day past its month's end counts as its last, as in the search's dates."""
    if value is None:
        return None
    found = SINCE.fullmatch(value)
    if not found:
        raise BadRequest("invalid_since", f"since must be a date or a UTC time (YYYY-MM-DD[THH:MM[:SS[.sss]]Z]), "
                                          f"got {value!r}")
    year, month, day = (int(found.group(i)) for i in (1, 2, 3))
    day = min(day, calendar.monthrange(year, month)[1])
    moment = datetime.fromisoformat(f"{year:04d}-{month:02d}-{day:02d}{value[10:].replace('Z', '')}")
    return moment.replace(tzinfo=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AlertStore:
    def __init__(self, root: str | Path):
        self.path = Path(root) / FILE
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # an acknowledged alert or match survives a crash
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(SCHEMA)
        return conn

    def create(self, query: str, k: int, filters: dict, webhook: str | None, embedder) -> dict:
        """Store an alert (its question embedded by `embedder`, the index's model)."""
        return self.create_many([(query, k, filters, webhook)], embedder)[0]

    def create_many(self, asked: list[tuple[str, int, dict, str | None]], embedder) -> list[dict]:
        """Store alerts (query, k, filters, webhook) in one transaction."""
        vectors = embedder.embed([query for query, _, _, _ in asked])
        stamp = now()
        alerts = [{"id": secrets.token_hex(8), "query": query, "k": k, "filters": filters, "webhook": webhook,
                   "created": stamp} for query, k, filters, webhook in asked]
        with self._lock, self._connect() as conn:
            conn.executemany("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(a["id"], a["query"], a["k"], json.dumps(a["filters"]), a["webhook"], a["created"],
                               np.asarray(v, dtype=np.float32).tobytes()) for a, v in zip(alerts, vectors)])
        return alerts

    def get(self, alert_id: str) -> dict:
        if not self.path.exists():
            raise AlertNotFound(f"no alert with id {alert_id!r}")
        with self._connect() as conn:
            row = conn.execute("SELECT id, query, k, filters, webhook, created FROM alerts WHERE id = ?",
                               (alert_id,)).fetchone()
        if row is None:
            raise AlertNotFound(f"no alert with id {alert_id!r}")
        return {**dict(row), "filters": json.loads(row["filters"])}

    def delete(self, alert_id: str) -> None:
        self.get(alert_id)
        with self._lock, self._connect() as conn:
            conn.execute("DELETE FROM alerts WHERE id = ?", (alert_id,))

    def all(self) -> tuple[list[dict], np.ndarray]:
        """Every alert, and their question vectors as rows of one matrix."""
        if not self.path.exists():
            return [], np.zeros((0, 0), dtype=np.float32)
        with self._connect() as conn:
            rows = conn.execute("SELECT id, query, k, filters, webhook, vector FROM alerts ORDER BY created, id").fetchall()
        alerts = [{**{k: r[k] for k in ("id", "query", "k", "webhook")}, "filters": json.loads(r["filters"])}
                  for r in rows]
        vectors = np.array([np.frombuffer(r["vector"], dtype=np.float32) for r in rows], dtype=np.float32)
        return alerts, vectors

    def record(self, alert_id: str, matches: list[dict]) -> list[dict]:
        """Store `matches` of an alert (an article matched twice keeps its first); the new ones."""
        stamp, new = now(), []
        with self._lock, self._connect() as conn:
            for m in matches:
                cursor = conn.execute("INSERT OR IGNORE INTO matches VALUES (?, ?, ?, ?, ?, ?)",
                                      (alert_id, m["doc_id"], stamp, m["published"], m["text"],
                                       json.dumps(m["citations"])))
                if cursor.rowcount:
                    new.append({**m, "matched_at": stamp})
        return new

    def matches(self, alert_id: str, since: str | None = None) -> list[dict]:
        self.get(alert_id)
        with self._connect() as conn:
            rows = conn.execute("SELECT doc_id, published, text, citations, matched_at FROM matches "
                                "WHERE alert_id = ? AND matched_at >= ? ORDER BY matched_at, doc_id",
                                (alert_id, since_time(since) or "")).fetchall()
        return [{**dict(r), "citations": json.loads(r["citations"])} for r in rows]


def match(searcher, alerts: list[dict], vectors: np.ndarray, doc_ids: list[str]) -> dict[str, list[dict]]:
    """alert id -> the articles of `doc_ids` (just published in `searcher`'s generation)
    that match it, as {"doc_id", "published", "text", "citations"}."""
    rows = searcher._store.for_passages("SELECT id, doc_id FROM passages WHERE id IN ({ids})",
                                        searcher._store.passages_of(doc_ids))
    if not alerts or not rows:
        return {}
    passages = np.array([r["id"] for r in rows], dtype=np.int64)
    articles = sorted({r["doc_id"] for r in rows})
    article_of = np.searchsorted(articles, [r["doc_id"] for r in rows])
    cosines = vectors @ searcher._vectors.vectors(passages).T
    # each alert's best cosine with each new article
    best = np.stack([cosines[:, article_of == a].max(axis=1) for a in range(len(articles))], axis=1)
    out = {}
    for i in np.flatnonzero(best.max(axis=1) >= MIN_COSINE).tolist():
        alert, close = alerts[i], {articles[a] for a in np.flatnonzero(best[i] >= MIN_COSINE)}
        f = alert["filters"]
        filters = Filters.of(source=f.get("source"), published_from=f.get("published_from"),
                             published_to=f.get("published_to"))
        found = []
        for hit in searcher.search(alert["query"], alert["k"], filters=filters, highlight=False):
            cited = next((c for c in hit.citations if c.doc_id in close), None)
            if cited is not None and all(m["doc_id"] != cited.doc_id for m in found):
                found.append({"doc_id": cited.doc_id, "published": cited.published, "text": hit.text,
                              "citations": [vars(c) for c in hit.citations]})
        if found:
            out[alert["id"]] = found
    return out


class Matcher:
    """Matches what a writer publishes against the index's alerts, on a thread of its own
    (the next write does not wait for it), and calls the webhooks of the alerts matched."""

    def __init__(self, root: str | Path, live=None, background: bool = True):
        self.root = Path(root)
        self.store = AlertStore(root)
        self._live = live  # a LiveSearcher of the index (None: opened when an alert first needs one)
        self._queue: queue.Queue[tuple[str | None, list[str]]] | None = None
        if background:  # a service's writer: the next write does not wait for the matching
            self._queue = queue.Queue()
            threading.Thread(target=self._run, name="search-alerts", daemon=True).start()

    def published(self, summary) -> dict[str, list[dict]]:
        """Match the articles an update added or replaced (its UpdateSummary): queued when
        in the background, else now (`indexer add` with no service; returns the matches)."""
        doc_ids = list(summary.added) + list(summary.replaced)
        if not doc_ids or not self.store.path.exists():
            return {}
        if self._queue is None:
            return self.match_now(summary.generation, doc_ids)
        self._queue.put((summary.generation, doc_ids))
        return {}

    def _run(self) -> None:
        while True:
            generation, doc_ids = self._queue.get()
            try:
                self.match_now(generation, doc_ids)
            except Exception:  # noqa: BLE001 - the next article is matched all the same
                log.exception("matching %d articles against the alerts failed", len(doc_ids))

    def match_now(self, generation: str | None, doc_ids: list[str]) -> dict[str, list[dict]]:
        alerts, vectors = self.store.all()
        if not alerts:
            return {}
        searcher = self._searcher(generation)
        started = time.perf_counter()
        found = match(searcher, alerts, vectors, doc_ids)
        by_id = {a["id"]: a for a in alerts}
        for alert_id, matches in found.items():
            new = self.store.record(alert_id, matches)
            if new and by_id[alert_id]["webhook"]:
                _notify(by_id[alert_id]["webhook"], alert_id, new)
        log.info("%d articles matched against %d alerts in %.3f s: %d matched", len(doc_ids), len(alerts),
                 time.perf_counter() - started, len(found))
        return found


    def _searcher(self, generation: str | None):
        if self._live is None:
            from search import settings
            from search.live import LiveSearcher
            from search.searcher import Searcher

            self._live = LiveSearcher(self.root, functools.partial(Searcher.open, str(self.root),
                                                                   model=settings.value("SEARCH_MODEL")))
        return self._live.serving(generation)


def _notify(url: str, alert_id: str, matches: list[dict]) -> None:
    body = json.dumps({"alert": alert_id, "matches": matches}).encode("utf-8")
    try:
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:
            response.read()
    # unreachable, a URL urllib cannot use (InvalidURL is an HTTPException, not a ValueError), or a
    # server that does not speak HTTP: the match is stored either way
    except (OSError, ValueError, http.client.HTTPException) as e:
        log.warning("alert %s: webhook %s failed: %s", alert_id, url, e)
