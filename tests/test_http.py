"""The real Flask app over the real seed index: answers, documents, health, every error."""

import json
import threading
import time

import pytest

from search.errors import BadRequest, IndexNotFound
from search.service.app import create_app

from helpers import error

QUESTION = "How many Russian casualties since 2022"


def test_get_search_answers_with_cited_passages(client):
    r = client.get("/search", query_string={"q": QUESTION, "k": 3})
    assert r.status_code == 200 and r.mimetype == "application/json"
    body = r.get_json()
    assert set(body) == {"query", "k", "offset", "mode", "collapse", "sort", "group", "diversity", "mmr", "as_of",
                         "interpreted", "took_ms",
                         "results"}
    assert (body["query"], body["k"], len(body["results"])) == (QUESTION, 3, 3)
    # "since 2022" is a time expression: kept from 2022 on, and said so
    assert body["interpreted"] == {"phrase": "since 2022", "published_from": "2022-01-01",
                                   "published_to": body["as_of"]}
    assert (body["mode"], body["collapse"]) == ("hybrid", True)
    top = body["results"][0]
    assert set(top) == {"rank", "score", "text", "citations", "highlight", "story"}
    assert "710,000" in top["text"] and top["rank"] == 1
    citation = top["citations"][0]
    assert set(citation) == {"doc_id", "title", "source", "paragraph", "start", "end", "published", "author"}
    assert citation["doc_id"] in {"000_c7708b97d51473e9", "001_69714012eee412eb"}
    # the op-ed exists in two translations: one result citing both
    assert {c["doc_id"] for c in top["citations"]} == {"000_c7708b97d51473e9", "001_69714012eee412eb"}
    h = top["highlight"]
    assert top["text"][h["start"]:h["end"]] == h["text"] and "710,000" in h["text"]


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_mode_and_collapse_parameters(client, mode):
    got = client.get("/search", query_string={"q": QUESTION, "k": 3, "mode": mode, "collapse": "false"}).get_json()
    assert (got["mode"], got["collapse"]) == (mode, False)
    assert all(len(r["citations"]) == 1 for r in got["results"])
    assert {r["citations"][0]["doc_id"][:3] for r in got["results"][:2]} == {"000", "001"}
    posted = client.post("/search", json={"query": QUESTION, "k": 3, "mode": mode, "collapse": False}).get_json()
    assert posted["results"] == got["results"]


def test_post_search_equals_get(client):
    got = client.get("/search", query_string={"q": QUESTION, "k": 4}).get_json()
    posted = client.post("/search", json={"query": QUESTION, "k": 4}).get_json()
    assert posted["results"] == got["results"]


def test_default_k_is_5(client):
    assert len(client.get("/search?q=troops").get_json()["results"]) == 5
    assert client.post("/search", json={"query": "troops"}).get_json()["k"] == 5


def test_document_has_metadata_and_full_text(client):
    from helpers import SEEDS

    r = client.get("/documents/002_2d4b3a8059ce6963")
    assert r.status_code == 200
    doc = r.get_json()
    assert doc["title"] == "Putin, Kim Jong-un and North Korea’s Ukraine War Involvement"
    assert doc["source"] == "002_2d4b3a8059ce6963.txt"
    assert doc["text"] == (SEEDS / "002_2d4b3a8059ce6963.txt").read_text(encoding="utf-8")
    assert doc["passages"] == 6


def test_citation_offsets_slice_the_served_document(client):
    for hit in client.get("/search", query_string={"q": "North Korean troops", "k": 20}).get_json()["results"]:
        c = hit["citations"][0]
        doc = client.get(f"/documents/{c['doc_id']}").get_json()
        assert doc["text"][c["start"]:c["end"]] == hit["text"]


def test_health_reports_the_manifest(client, searcher):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == "ok"
    assert body["model"] == "sentence-transformers/all-MiniLM-L6-v2" and body["dimension"] == 384
    assert (body["documents"], body["passages"]) == (5, searcher.describe()["passages"])


@pytest.mark.parametrize("query_string,code", [
    ("", "missing_query"),
    ("q=", "empty_query"),
    ("q=%20%20%09", "empty_query"),
    ("q=" + "a" * 1001, "query_too_long"),
    ("q=war&k=0", "invalid_k"),
    ("q=war&k=101", "invalid_k"),
    ("q=war&k=-1", "invalid_k"),
    ("q=war&k=2.5", "invalid_k"),
    ("q=war&k=five", "invalid_k"),
    ("q=war&k=", "invalid_k"),
    ("q=war&k=99999999999999999999", "invalid_k"),
    ("q=war&q=peace", "repeated_parameter"),
    ("query=war", "unknown_parameter"),
    ("q=war&mode=semantic", "invalid_mode"),
    ("q=war&collapse=maybe", "invalid_collapse"),
])
def test_bad_get_requests(client, query_string, code):
    error(client.get(f"/search?{query_string}"), 400, code)


@pytest.mark.parametrize("body,code", [
    ({}, "missing_query"),
    ({"query": ""}, "empty_query"),
    ({"query": " \n "}, "empty_query"),
    ({"query": "x" * 1001}, "query_too_long"),
    ({"query": 42}, "invalid_query"),
    ({"query": None}, "invalid_query"),
    ({"query": "war", "k": 0}, "invalid_k"),
    ({"query": "war", "k": 101}, "invalid_k"),
    ({"query": "war", "k": "5"}, "invalid_k"),
    ({"query": "war", "k": 5.5}, "invalid_k"),
    ({"query": "war", "k": True}, "invalid_k"),
    ({"query": "war", "k": None}, "invalid_k"),
    ({"query": "war", "top_k": 3}, "unknown_field"),
    ({"query": "war", "mode": "fuzzy"}, "invalid_mode"),
    ({"query": "war", "collapse": "no"}, "invalid_collapse"),
])
def test_bad_post_bodies(client, body, code):
    error(client.post("/search", json=body), 400, code)


def test_integral_float_k_is_an_integer(client):
    # JSON has one number type, and JSON Schema (our /openapi.json) calls 3.0 an integer
    assert client.post("/search", json={"query": "war", "k": 3.0}).get_json()["k"] == 3


@pytest.mark.parametrize("data,code", [
    ("{not json", "invalid_json"),
    ("", "invalid_json"),
    ("[1, 2]", "invalid_json"),
    ('"a string"', "invalid_json"),
    ('{"query": "\\ud800"}', "invalid_query"),
])
def test_malformed_json(client, data, code):
    error(client.post("/search", data=data, content_type="application/json"), 400, code)


def test_non_utf8_body(client):
    error(client.post("/search", data=b'{"query": "\xff"}', content_type="application/json"), 400, "invalid_json")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type(client, content_type):
    r = client.post("/search", data=json.dumps({"query": "war"}), content_type=content_type)
    assert "application/json" in error(r, 400, "unsupported_media_type")


def test_oversized_body_is_refused(client):
    r = client.post("/search", data=b"x" * (65 * 1024), content_type="application/json")
    error(r, 413, "request_entity_too_large")


def test_unknown_document_is_404(client):
    assert "no document with id 'nope'" in error(client.get("/documents/nope"), 404, "document_not_found")
    error(client.get("/documents/..%2F..%2Fetc%2Fpasswd"), 404, "document_not_found")


def test_unknown_route_and_method(client):
    error(client.get("/nowhere"), 404, "not_found")
    r = client.delete("/search")
    error(r, 405, "method_not_allowed")
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    error(client.put("/health"), 405, "method_not_allowed")


def test_model_and_index_load_once_per_process(app, seed_index):
    from search.embedding.embedder import get_embedder

    embedder = get_embedder()
    other = create_app({"INDEX": str(seed_index)})
    assert other.extensions["searcher"].get().embedder is embedder
    assert app.extensions["searcher"].get().embedder is embedder


def test_searches_take_turns_on_the_process_search_thread(monkeypatch, seed_index):
    """WORKER_SEARCHES (gunicorn sets it to cores per worker): every search runs on the
    process's search thread, one at a time, in its request's context, answering and failing
    as on the request's own thread."""
    plain = create_app({"INDEX": str(seed_index)}).test_client()
    app = create_app({"INDEX": str(seed_index), "WORKER_SEARCHES": 1})
    searcher = app.extensions["searcher"].get()
    running, most, threads, lock = [0], [0], set(), threading.Lock()

    def search(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            threads.add(threading.current_thread().name)
        time.sleep(0.05)  # four requests at once overlap here unless they take turns
        try:
            return original(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    original = searcher.search
    monkeypatch.setattr(searcher, "search", search)
    answers = [None] * 4

    def ask(n):
        answers[n] = app.test_client().get("/search", query_string={"q": QUESTION, "k": 3},
                                           headers={"X-Request-Id": f"turn-{n}"})

    askers = [threading.Thread(target=ask, args=(n,)) for n in range(4)]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join()
    expected = plain.get("/search", query_string={"q": QUESTION, "k": 3}).get_json()["results"]
    assert [a.get_json()["results"] for a in answers] == [expected] * 4
    assert [a.headers["X-Request-Id"] for a in answers] == [f"turn-{n}" for n in range(4)]
    assert most[0] == 1 and len(threads) == 1 and threads.pop().startswith("search")
    error(app.test_client().get("/search", query_string={"q": QUESTION, "k": 0}), 400, "invalid_k")
    assert app.test_client().get("/context", query_string={"q": QUESTION}).status_code == 200
    with pytest.raises(ValueError, match="SEARCH_WORKER_SEARCHES must be more than 0"):
        create_app({"INDEX": str(seed_index), "WORKER_SEARCHES": 0})


def test_configuration_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SEARCH_INDEX", str(tmp_path / "absent"))
    with pytest.raises(IndexNotFound, match=str(tmp_path / "absent")):
        create_app()


def test_default_mode_from_the_environment(monkeypatch, seed_index):
    monkeypatch.setenv("SEARCH_MODE", "dense")
    body = create_app({"INDEX": str(seed_index)}).test_client().get("/search?q=KN-23").get_json()
    assert body["mode"] == "dense"
    monkeypatch.setenv("SEARCH_MODE", "semantic")
    with pytest.raises(BadRequest, match="mode must be one of dense, lexical, hybrid"):
        create_app({"INDEX": str(seed_index)})


@pytest.mark.parametrize("query", ["zzzzqqq xyzzy", "the of", "???"])
def test_lexical_query_without_matches_is_an_empty_answer(client, query):
    r = client.get("/search", query_string={"q": query, "mode": "lexical"})
    assert r.status_code == 200 and r.get_json()["results"] == []


@pytest.mark.parametrize("query", ["war\x00casualties", "\x01\x02 Russian casualties \x7f", "Kim\u200bJong-un",
                                   "Путин и Ким: 710,000 casualties? 金正恩 ميزان", "\u202eRTL override casualties",
                                   "😀 missiles 🚀", "a" * 1000])
def test_odd_but_valid_queries_are_answered(client, query):
    for r in (client.get("/search", query_string={"q": query}), client.post("/search", json={"query": query})):
        assert r.status_code == 200, r.get_data(as_text=True)
        assert r.get_json()["query"] == query


@pytest.mark.parametrize("query", ["\x1c\x1d\x1e\x1f", "\u3000\u2003", "\x85\xa0\t"])
def test_blank_in_any_script_is_an_empty_query(client, query):
    error(client.get("/search", query_string={"q": query}), 400, "empty_query")


def test_a_megabyte_body_is_refused_by_its_size(client):
    body = json.dumps({"query": "war " * 262_144})  # ~1 MB of otherwise valid JSON
    error(client.post("/search", data=body, content_type="application/json"), 413, "request_entity_too_large")


@pytest.mark.parametrize("k", ["1e3", "0x10", "+5", " 5", "5 ", "٥", "NaN", "-0", "1" * 400])
def test_k_in_any_other_spelling_is_refused(client, k):
    error(client.get("/search", query_string={"q": "war", "k": k}), 400, "invalid_k")
