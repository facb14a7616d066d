"""`POST /alerts`, `GET` and `DELETE /alerts/<id>`, `GET /alerts/<id>/matches?since=`:
stored questions that the writer matches every new article against (search/alerts.py).
Creating and deleting an alert are writes: they need the API key, as `PUT /documents`
does."""

from __future__ import annotations

import re

from flask import Flask, request

from search.alerts import AlertStore, since_time
from search.errors import BadRequest
from search.live import LiveSearcher
from search.service.contract import AlertWrite
from search.service.documents import refuse
from search.service.requests import authorize, from_body, json_response, reject_unknown

ALERT_ID = re.compile(r"[0-9a-f]{16}")


def register(app: Flask, live: LiveSearcher) -> None:
    if live.remote:  # alerts are kept beside an index directory, and matched by its writer
        refuse(app, "alerts", [("POST", "/alerts"), ("GET", "/alerts/<alert_id>"), ("DELETE", "/alerts/<alert_id>"),
                               ("GET", "/alerts/<alert_id>/matches")])
        return
    store = AlertStore(live.root)

    @app.post("/alerts")
    def create_alert():
        authorize(app)
        asked = from_body(AlertWrite)
        filters = {k: v for k, v in (("source", asked.source), ("published_from", asked.published_from),
                                     ("published_to", asked.published_to)) if v is not None}
        return json_response(store.create(asked.query, asked.k, filters, asked.webhook, live.get().embedder), 201)

    @app.get("/alerts/<alert_id>")
    def get_alert(alert_id: str):
        return json_response(store.get(_checked_id(alert_id)))

    @app.delete("/alerts/<alert_id>")
    def delete_alert(alert_id: str):
        authorize(app)
        store.delete(_checked_id(alert_id))
        return json_response({"id": alert_id, "status": "deleted"})

    @app.get("/alerts/<alert_id>/matches")
    def alert_matches(alert_id: str):
        reject_unknown(set(request.args), {"since"}, "parameter")
        since = request.args.get("since")
        return json_response({"alert": alert_id, "since": since_time(since),
                              "matches": store.matches(_checked_id(alert_id), since)})


def _checked_id(alert_id: str) -> str:
    if not ALERT_ID.fullmatch(alert_id):
        raise BadRequest("invalid_alert_id", f"an alert id is 16 hexadecimal digits, got {alert_id!r}")
    return alert_id

