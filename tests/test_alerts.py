"""Alerts (search/alerts.py): stored questions that every article written through the
service is matched against; matches within seconds, none false on a set of alerts and
articles with known answers, webhooks called, bad input refused."""

import http.server
import json
import logging
import threading
import time

import pytest

from search.alerts import AlertStore

from helpers import error

KEY = "alert-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
# each alert, and the one article below that answers it (None: no article does)
ALERTS = {
    "seals": "seal pups counted in the river Thames",
    "rates": "central bank interest rate decision",
    "troops": "North Korean soldiers fighting for Russia in Kursk",
    "volcano": "volcanic eruption in Iceland",
}
ARTICLES = {
    "seals": {"title": "Seal pups thrive in the Thames", "published": "2026-11-30",
              "text": "Conservationists counted more than 130 harbour seal pups in the Thames estuary this year, the "
                      "highest number since records began.\n\nThe Zoological Society said the river's water quality "
                      "had improved enough for the colony to grow."},
    "rates": {"title": "Central bank holds interest rates", "published": "2026-11-30",
              "text": "The central bank kept its main interest rate at 4.25 percent on Thursday, saying inflation was "
                      "easing more slowly than hoped.\n\nMost economists had expected the rate decision."},
    "troops": {"title": "More North Korean units reach Kursk", "published": "2026-11-30",
               "text": "A further 3,000 North Korean soldiers have arrived in the Kursk region to fight alongside "
                       "Russian forces, Ukraine's intelligence service said on Monday.\n\nThe troops were trained "
                       "in Russia's far east before being moved to the front."},
    "football": {"title": "Late goal settles the derby", "published": "2026-11-30",
                 "text": "A header in the ninetieth minute gave the home side a 2-1 win in Sunday's derby, lifting "
                         "them to third in the league table."},
}


@pytest.fixture()
def service(index_copy):
    from search.service.app import create_app

    return create_app({"INDEX": str(index_copy), "API_KEY": KEY, "RELOAD_CHECK_S": 0, "TESTING": True}).test_client()


def _matches(client, alert_id: str, count: int, within_s: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + within_s
    while True:
        got = client.get(f"/alerts/{alert_id}/matches").get_json()["matches"]
        if len(got) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_every_article_written_is_matched_against_the_alerts_with_no_false_match(service):
    ids = {}
    for name, query in ALERTS.items():
        r = service.post("/alerts", json={"query": query, "k": 10}, headers=AUTH)
        assert r.status_code == 201, r.get_data(as_text=True)
        ids[name] = r.get_json()["id"]
    started = time.monotonic()
    for name, article in ARTICLES.items():
        assert service.put(f"/documents/{name}", json=article, headers=AUTH).status_code == 201
    expected = {"seals": ["seals"], "rates": ["rates"], "troops": ["troops"], "volcano": []}
    for name, alert_id in ids.items():
        got = _matches(service, alert_id, len(expected[name]))
        assert [m["doc_id"] for m in got] == expected[name], (name, got)
        for m in got:
            assert m["citations"][0]["doc_id"] == m["doc_id"] and m["text"] in ARTICLES[name]["text"]
            assert m["published"] == "2026-11-30"
    assert time.monotonic() - started < 30  # (each match was polled for at most 5 s after its writes)
    # the seed articles already in the index are not news: nothing matched them
    troops = _matches(service, ids["troops"], 1)
    assert {m["doc_id"] for m in troops} == {"troops"}
    later = service.get(f"/alerts/{ids['seals']}/matches", query_string={"since": "2100-01-01"}).get_json()
    assert later["matches"] == []


def test_a_webhook_gets_the_new_matches(service):
    received = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        alert = service.post("/alerts", json={"query": ALERTS["seals"], "webhook": url}, headers=AUTH).get_json()
        assert alert["webhook"] == url
        service.put("/documents/seals", json=ARTICLES["seals"], headers=AUTH)
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert received and received[0]["alert"] == alert["id"]
        assert [m["doc_id"] for m in received[0]["matches"]] == ["seals"]
    finally:
        server.shutdown()


def test_alerts_are_writes_and_bad_ones_are_refused(service, index_copy):
    error(service.post("/alerts", json={"query": "seals"}), 401, "missing_api_key")
    error(service.post("/alerts", json={"query": "seals", "k": 0}, headers=AUTH), 400, "invalid_k")
    error(service.post("/alerts", json={"query": "seals", "webhook": "ftp://x"}, headers=AUTH), 400, "invalid_webhook")
    error(service.post("/alerts", json={"query": "  "}, headers=AUTH), 400, "empty_query")
    error(service.post("/alerts", json={"query": "seals", "colour": "red"}, headers=AUTH), 400, "unknown_field")
    error(service.get("/alerts/0123456789abcdef"), 404, "alert_not_found")
    error(service.get("/alerts/nope"), 400, "invalid_alert_id")
    created = service.post("/alerts", json={"query": "seals", "source": "bbc.co.uk"}, headers=AUTH).get_json()
    assert created["filters"] == {"source": "bbc.co.uk"}
    error(service.get(f"/alerts/{created['id']}/matches", query_string={"since": "yesterday"}), 400, "invalid_since")
    assert AlertStore(index_copy).get(created["id"])["query"] == "seals"  # on disk, for every process
    error(service.delete(f"/alerts/{created['id']}"), 401, "missing_api_key")
    assert service.delete(f"/alerts/{created['id']}", headers=AUTH).status_code == 200
    error(service.get(f"/alerts/{created['id']}"), 404, "alert_not_found")


@pytest.mark.parametrize("url", ["https://\xad:0\xf4x/hook",  # http.client.InvalidURL, not a ValueError
                                 "http://a\x85b/", "http://[::1/", "http://127.0.0.1:1/hook"])
def test_a_webhook_urllib_cannot_use_is_a_logged_failure(url, caplog):
    from search.alerts import _notify

    with caplog.at_level(logging.WARNING, logger="search.alerts"):
        _notify(url, "0123456789abcdef", [{"doc_id": "seals"}])
    assert [r.getMessage() for r in caplog.records] and "webhook" in caplog.records[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)


def test_indexer_add_without_a_service_matches_the_alerts(index_copy, tmp_path, embedder, capsys):
    from indexer.__main__ import main

    store = AlertStore(index_copy)
    seals = store.create(ALERTS["seals"], 10, {}, None, embedder)
    rates = store.create(ALERTS["rates"], 10, {}, None, embedder)
    feed = tmp_path / "feed.jsonl"
    feed.write_text(json.dumps({"id": "seals", **ARTICLES["seals"]}) + "\n", encoding="utf-8")
    assert main(["add", str(feed), "--index", str(index_copy)]) == 0
    assert "matched 1 alert" in capsys.readouterr().err
    assert [m["doc_id"] for m in store.matches(seals["id"])] == ["seals"]
    assert store.matches(rates["id"]) == []


def test_indexer_add_says_when_its_alerts_could_not_be_matched(index_copy, tmp_path, capsys):
    from indexer.__main__ import main

    (index_copy / "alerts.sqlite").write_bytes(b"not a database, at all" * 100)
    feed = tmp_path / "feed.jsonl"
    feed.write_text(json.dumps({"id": "seals", **ARTICLES["seals"]}) + "\n", encoding="utf-8")
    assert main(["add", str(feed), "--index", str(index_copy)]) == 0  # the update itself stands
    assert "matching it against the alerts failed" in capsys.readouterr().err
