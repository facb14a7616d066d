"""Running the service: document writes behind the API key, hot reload of new generations
under concurrent searches, request ids, metrics, CORS and path handling."""

import json
import threading

import pytest

from indexer.update import update
from search.index.generations import current
from search.service.app import create_app

from helpers import error

KEY = "s3cret-key"
VOLCANO = {"title": "Volcano erupts on the Reykjanes peninsula",
           "text": "A volcano erupted on the Reykjanes peninsula on Monday night, sending lava fountains "
                   "100 metres into the air.\n\nThe nearby town of Grindavik had been evacuated days earlier "
                   "as a precaution, officials said, and no one was hurt.\n"}
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture()
def writable(index_copy):
    return create_app({"INDEX": str(index_copy), "API_KEY": KEY, "RELOAD_CHECK_S": 0, "TESTING": True}).test_client()


def test_writes_are_disabled_without_an_api_key(client):
    error(client.put("/documents/volcano", json=VOLCANO), 403, "writes_disabled")
    error(client.delete("/documents/000_c7708b97d51473e9"), 403, "writes_disabled")
    assert client.get("/documents/000_c7708b97d51473e9").status_code == 200


def test_writes_need_the_right_key(writable):
    assert error(writable.put("/documents/volcano", json=VOLCANO), 401, "missing_api_key")  # with a message
    assert writable.put("/documents/volcano", json=VOLCANO).headers["WWW-Authenticate"].startswith("Bearer")
    error(writable.put("/documents/volcano", json=VOLCANO, headers={"Authorization": "Bearer wrong"}),
          403, "wrong_api_key")
    error(writable.delete("/documents/000_c7708b97d51473e9", headers={"X-API-Key": KEY + "x"}), 403,
          "wrong_api_key")
    assert writable.get("/documents/volcano").status_code == 404


def test_put_search_replace_delete(writable):
    r = writable.put("/documents/volcano", json=VOLCANO, headers=AUTH)
    assert r.status_code == 201, r.get_data(as_text=True)
    assert r.get_json() == {"doc_id": "volcano", "status": "added", "generation": "g000002", "passages": 2}
    top = writable.get("/search", query_string={"q": "Who was evacuated near the volcano?"}).get_json()["results"][0]
    assert "Grindavik" in top["text"] and top["citations"][0]["title"] == VOLCANO["title"]
    assert writable.get("/health").get_json()["generation"] == "g000002"

    again = writable.put("/documents/volcano", json=VOLCANO, headers={"X-API-Key": KEY})
    assert (again.status_code, again.get_json()["status"], again.get_json()["generation"]) == (200, "unchanged",
                                                                                               "g000002")
    changed = dict(VOLCANO, text=VOLCANO["text"].replace("Monday", "Tuesday"))
    replaced = writable.put("/documents/volcano", json=changed, headers=AUTH)
    assert (replaced.status_code, replaced.get_json()["status"]) == (200, "replaced")
    assert "Tuesday" in writable.get("/documents/volcano").get_json()["text"]

    gone = writable.delete("/documents/volcano", headers=AUTH)
    assert gone.get_json() == {"doc_id": "volcano", "status": "removed", "generation": "g000004"}
    error(writable.get("/documents/volcano"), 404, "document_not_found")
    for mode in ("hybrid", "dense", "lexical"):
        hits = writable.get("/search", query_string={"q": "volcano lava Grindavik", "k": 20, "mode": mode,
                                                     "collapse": "false"}).get_json()["results"]
        assert all(c["doc_id"] != "volcano" for h in hits for c in h["citations"])
    error(writable.delete("/documents/volcano", headers=AUTH), 404, "document_not_found")


@pytest.mark.parametrize("body, code", [
    ({"text": ""}, "empty_document"),
    ({"text": "   \n  "}, "empty_document"),
    ({"title": "no text"}, "empty_document"),
    ({"text": "close\nComments\n"}, "empty_document"),  # nothing left once page cruft is dropped
    ({"text": "ab\x00\x01\x02" * 100}, "binary_document"),
    ({"text": "x" * 1_000_001}, "document_too_long"),
    ({"text": "fine", "byline": "someone"}, "unknown_field"),
    ({"text": "fine", "title": 7}, "invalid_title"),
    ({"text": "lone \ud800 surrogate"}, "invalid_document"),
])
def test_bad_documents_are_refused_and_change_nothing(writable, index_copy, body, code):
    data = json.dumps(body)
    error(writable.put("/documents/bad", data=data, content_type="application/json", headers=AUTH), 400, code)
    assert current(index_copy).name == "g000001"


def test_bad_document_bodies(writable, index_copy):
    error(writable.put("/documents/bad", data=b"\xff\xfe{", content_type="application/json", headers=AUTH),
          400, "invalid_json")
    error(writable.put("/documents/bad", data="text", content_type="text/plain", headers=AUTH),
          400, "unsupported_media_type")
    error(writable.put("/documents/bad", data="[1]", content_type="application/json", headers=AUTH),
          400, "invalid_json")
    huge = json.dumps({"text": "word " * 1_000_000})  # 5 MB: refused by size before it is read
    error(writable.put("/documents/bad", data=huge, content_type="application/json", headers=AUTH),
          413, "request_entity_too_large")
    error(writable.put("/documents/" + "x" * 201, json=VOLCANO, headers=AUTH), 400, "invalid_doc_id")
    assert current(index_copy).name == "g000001"


def test_hot_reload_under_concurrent_searches(index_copy, tmp_path):
    """Another process's update is served without a restart; no search fails meanwhile."""
    app = create_app({"INDEX": str(index_copy), "RELOAD_CHECK_S": 0, "TESTING": True})
    failures, answered, stop = [], [0], threading.Event()

    def search():
        client = app.test_client()
        while not stop.is_set():
            r = client.get("/search", query_string={"q": "How many Russian casualties since 2022", "k": 3})
            if r.status_code != 200 or "710,000" not in r.get_json()["results"][0]["text"]:
                failures.append(r.get_data(as_text=True))
            answered[0] += 1

    threads = [threading.Thread(target=search) for _ in range(4)]
    for t in threads:
        t.start()
    feed = tmp_path / "feed.jsonl"
    feed.write_text(json.dumps({"id": "volcano", **VOLCANO}) + "\n", encoding="utf-8")
    try:
        update(index_copy, [feed])
        client = app.test_client()
        for _ in range(200):  # the reload happens in the background within a few requests
            health = client.get("/health").get_json()
            if health["generation"] == "g000002":
                break
            threading.Event().wait(0.05)
        assert (health["generation"], health["documents"], health["reloads"]) == ("g000002", 6, 1)
        top = client.get("/search", query_string={"q": "Who was evacuated near the volcano?"}).get_json()
        assert top["results"][0]["citations"][0]["doc_id"] == "volcano"
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == [] and answered[0] > 0


def test_request_ids_and_access_log(client, caplog):
    given = client.get("/health", headers={"X-Request-Id": "abc-123"})
    assert given.headers["X-Request-Id"] == "abc-123"
    made = client.get("/search?q=KN-23").headers["X-Request-Id"]
    assert len(made) == 32 and int(made, 16) >= 0
    hostile = client.get("/health", headers={"X-Request-Id": "<script> a=b" + "y" * 100})
    assert len(hostile.headers["X-Request-Id"]) == 32
    error_id = client.get("/search").headers["X-Request-Id"]  # errors carry one too
    assert len(error_id) == 32


def test_access_log_names_the_request_and_never_the_key(index_copy, caplog):
    app = create_app({"INDEX": str(index_copy), "API_KEY": KEY, "ACCESS_LOG": True})
    client = app.test_client()
    with caplog.at_level("INFO", logger="search.access"):
        rid = client.get("/search?q=KN-23", headers={"X-Request-Id": "req-42"}).headers["X-Request-Id"]
        client.delete("/documents/nope", headers=AUTH)
    err = caplog.text
    line = next(line for line in err.splitlines() if "req-42" in line)
    assert "GET /search?q=KN-23 200" in line and rid == "req-42"
    assert "DELETE /documents/nope 404" in err and KEY not in err


def test_metrics(client):
    client.get("/search?q=KN-23")
    client.get("/search")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'search_requests_total{method="GET",route="/search",status="200"}' in text
    assert 'search_requests_total{method="GET",route="/search",status="400"}' in text
    assert 'search_request_seconds_bucket{le="0.5",method="GET",route="/search"}' in text
    assert "search_index_generation 1.0" in text and "search_index_documents 5.0" in text


def test_the_service_removes_the_metrics_directory_it_made_when_it_stops(seed_index, tmp_path):
    # gunicorn's workers keep their counts in files under a directory made at start; one
    # left behind by every start piled up in /tmp
    from tools.served import get, gunicorn

    env = {"SEARCH_WORKERS": "1", "TMPDIR": str(tmp_path), "PROMETHEUS_MULTIPROC_DIR": ""}
    with gunicorn(seed_index, env=env) as (port, _):
        assert get(port, "/search?q=KN-23")[0] == 200
        status, body = get(port, "/metrics")
        assert status == 200 and b"search_requests_total" in body
        made = list(tmp_path.glob("search-metrics-*"))
        assert len(made) == 1 and list(made[0].glob("*.db"))
    assert not list(tmp_path.glob("search-metrics-*"))


@pytest.mark.parametrize("path", ["/documents/../store.sqlite", "/documents/..%2f..%2fetc%2fpasswd",
                                  "/documents/%2Fetc%2Fpasswd", "/documents//etc/passwd",
                                  "/documents/%2e%2e/manifest.json", "/documents/manifest.json"])
def test_documents_serves_only_indexed_documents(client, path):
    r = client.get(path)
    assert r.status_code == 404 and r.is_json


def test_cors_is_off_unless_configured(client, index_copy):
    assert "Access-Control-Allow-Origin" not in client.get("/health", headers={"Origin": "https://x.example"}).headers
    app = create_app({"INDEX": str(index_copy), "CORS_ORIGINS": "https://chat.example"})
    allowed = app.test_client().get("/health", headers={"Origin": "https://chat.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://chat.example"
    other = app.test_client().get("/health", headers={"Origin": "https://x.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


@pytest.mark.parametrize("key", ["1e3", "null", "2024", "true"])
def test_an_api_key_from_the_environment_is_the_string_written(monkeypatch, index_copy, key):
    # Flask's from_prefixed_env JSON-decodes by default: "1e3" became 1000.0, "null" no key
    monkeypatch.setenv("SEARCH_API_KEY", key)
    monkeypatch.setenv("SEARCH_DEFAULT_K", "3")
    app = create_app({"INDEX": str(index_copy), "TESTING": True})
    assert app.config["API_KEY"] == key and app.config["DEFAULT_K"] == 3
    client = app.test_client()
    assert client.delete("/documents/none", headers={"Authorization": f"Bearer {key}"}).status_code == 404
    assert client.delete("/documents/none", headers={"Authorization": "Bearer 1000.0"}).status_code == 403
    monkeypatch.setenv("SEARCH_DEFAULT_K", "three")
    with pytest.raises(ValueError, match="SEARCH_DEFAULT_K must be an integer, got 'three'"):
        create_app({"INDEX": str(index_copy)})


@pytest.mark.parametrize("configured", ["https://chat.example", "*"])
def test_a_cors_preflight_is_answered_in_full(index_copy, configured):
    app = create_app({"INDEX": str(index_copy), "CORS_ORIGINS": configured, "TESTING": True})
    preflight = app.test_client().options("/search", headers={
        "Origin": "https://chat.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] in ("https://chat.example", "*")
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "content-type" in preflight.headers["Access-Control-Allow-Headers"].lower()
    answer = app.test_client().post("/search", json={"query": "KN-23", "k": 1}, headers={"Origin": "https://chat.example"})
    assert answer.status_code == 200 and answer.headers["Access-Control-Allow-Origin"] in ("https://chat.example", "*")
    assert "X-Request-Id" in answer.headers["Access-Control-Expose-Headers"]


def _feed(*docs) -> str:
    return "".join(json.dumps(d) + "\n" for d in docs)


def test_a_feed_adds_many_documents_in_one_write(writable):
    feed = _feed({"id": "volcano", **VOLCANO},
                 {"id": "seals", "title": "Harbour seals return to the Thames",
                  "text": "A survey counted 1,234 harbour seals along the Thames estuary this summer.\n"})
    r = writable.post("/documents", data=feed, content_type="application/x-ndjson", headers=AUTH)
    assert r.status_code == 201, r.get_data(as_text=True)
    assert r.get_json() == {"generation": "g000002", "added": ["volcano", "seals"], "replaced": [], "unchanged": []}
    top = writable.get("/search", query_string={"q": "How many seals in the Thames?", "k": 1}).get_json()["results"][0]
    assert top["citations"][0]["doc_id"] == "seals"
    again = writable.post("/documents", data=feed, content_type="application/x-ndjson", headers=AUTH)
    assert (again.status_code, again.get_json()["unchanged"], again.get_json()["generation"]) == \
        (200, ["volcano", "seals"], "g000002")  # nothing changed: no new generation


@pytest.mark.parametrize("feed, code, line", [
    (_feed({"id": "a", "text": "Fine text here."}, {"text": "no id"}), "invalid_doc_id", 2),
    (_feed({"id": "a", "text": "Fine text here."}) + "{not json\n", "invalid_json", 2),
    (_feed({"id": "a", "text": ""}), "empty_document", 1),
    (_feed({"id": "a", "text": "Fine.", "byline": "x"}), "unknown_field", 1),
    (_feed({"id": "a", "text": "Fine.", "title": 7}), "invalid_title", 1),
    ("[1, 2]\n", "invalid_json", 1),
])
def test_a_bad_feed_line_refuses_the_whole_feed_and_names_the_line(writable, feed, code, line):
    message = error(writable.post("/documents", data=feed, content_type="application/x-ndjson", headers=AUTH),
                    400, code)
    assert message.startswith(f"line {line}: ")
    assert writable.get("/health").get_json()["generation"] == "g000001"  # nothing was written


def test_a_feed_needs_the_key_and_its_content_type(writable, client):
    feed = _feed({"id": "a", "text": "Fine text here."})
    error(client.post("/documents", data=feed, content_type="application/x-ndjson"), 403, "writes_disabled")
    error(writable.post("/documents", data=feed, content_type="application/x-ndjson"), 401, "missing_api_key")
    error(writable.post("/documents", data=feed, content_type="application/json", headers=AUTH), 400,
          "unsupported_media_type")
    error(writable.post("/documents", data="\n\n", content_type="application/x-ndjson", headers=AUTH), 400,
          "empty_feed")


def test_writes_that_arrive_together_are_applied_together(writable, index_copy):
    """Eight PUTs at once: the writer thread applies those queued behind the first as one
    update (one generation, one segment), and every request gets its own answer; a bad
    one among them fails alone."""
    articles = {f"quake-{i}": {"title": f"Earthquake report {i}",
                               "text": f"An earthquake of magnitude {4 + i / 10:.1f} shook region number {i} "
                                       f"on Friday.\n\nNo damage was reported in district {i}.\n"}
                for i in range(8)}
    start, answers = threading.Barrier(len(articles) + 1), {}

    def put(doc_id):
        start.wait()
        answers[doc_id] = writable.put(f"/documents/{doc_id}", json=articles[doc_id], headers=AUTH)

    threads = [threading.Thread(target=put, args=(doc_id,)) for doc_id in articles]
    for thread in threads:
        thread.start()
    start.wait()
    missing = writable.delete("/documents/no-such-document", headers=AUTH)  # a write that fails, meanwhile
    for thread in threads:
        thread.join()
    error(missing, 404, "document_not_found")
    assert {d: (r.status_code, r.get_json()["status"]) for d, r in answers.items()} == \
        {d: (201, "added") for d in articles}
    generations = {r.get_json()["generation"] for r in answers.values()}
    assert len(generations) <= 3, generations  # 8 writes, at most 3 updates (usually 2)
    assert current(index_copy).name == max(generations)
    for doc_id in articles:
        assert writable.get(f"/documents/{doc_id}").status_code == 200
    top = writable.get("/search", query_string={"q": "Was damage reported in district 5?", "k": 1}).get_json()
    assert top["results"][0]["citations"][0]["doc_id"] == "quake-5"
