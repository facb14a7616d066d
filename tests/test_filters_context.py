"""Filters, paging and prompt-ready context, through Python and HTTP."""

import json

import pytest

from indexer import build
from search import Filters, Searcher

QUESTION = "How many Russian casualties since 2022"
OP_ED, TRANSLATION, OTHER = "000_c7708b97d51473e9", "001_69714012eee412eb", "002_2d4b3a8059ce6963"


def ids(hits):
    return [(h.citations[0].doc_id, h.citations[0].start) for h in hits]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
@pytest.mark.parametrize("question", [QUESTION, "North Korean troops in Kursk", "KN-23 missiles", "Lukashenko"])
def test_a_filter_never_drops_what_the_unfiltered_search_ranked(searcher, mode, question):
    for k in (3, 10):
        unfiltered = searcher.search(question, k=k, mode=mode, collapse=False)
        for doc_id in {h.citations[0].doc_id for h in unfiltered}:
            filtered = searcher.search(question, k=k, mode=mode, collapse=False, filters=Filters.of(doc_id=doc_id))
            expected = [x for x in ids(unfiltered) if x[0] == doc_id]
            assert ids(filtered)[:len(expected)] == expected  # same passages, same order, first
            assert all(h.citations[0].doc_id == doc_id for h in filtered)


def test_a_narrow_filter_still_finds_its_documents_passages(searcher):
    # the document's passages rank low for this question, but the filter asks for them
    hits = searcher.search("missiles", k=5, filters=Filters.of(doc_id=OTHER))
    assert len(hits) == 5 and {h.citations[0].doc_id for h in hits} == {OTHER}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_collapsed_results_cite_only_allowed_documents(searcher):
    top = searcher.search(QUESTION, k=1)[0]
    assert {c.doc_id for c in top.citations} == {OP_ED, TRANSLATION}
    only = searcher.search(QUESTION, k=1, filters=Filters.of(doc_id=TRANSLATION))[0]
    assert [c.doc_id for c in only.citations] == [TRANSLATION]
    by_source = searcher.search(QUESTION, k=3, filters=Filters.of(source=[f"{OP_ED}.txt", f"{OTHER}.txt"]))
    assert {c.doc_id for h in by_source for c in h.citations} <= {OP_ED, OTHER}


@pytest.mark.parametrize("collapse", [True, False])
def test_pages_are_stable_and_never_overlap(searcher, collapse):
    whole = ids(searcher.search(QUESTION, k=12, collapse=collapse))
    pages = [searcher.search(QUESTION, k=4, offset=o, collapse=collapse) for o in (0, 4, 8)]
    assert [h.rank for page in pages for h in page] == list(range(1, 13))
    assert [x for page in pages for x in ids(page)] == whole
    assert ids(searcher.search(QUESTION, k=4, offset=4, collapse=collapse)) == ids(pages[1])  # stable
    assert searcher.search(QUESTION, k=5, offset=900, filters=Filters.of(doc_id=OTHER)) == []


def test_published_date_range(tmp_path):
    feed = tmp_path / "dated.jsonl"
    feed.write_text("".join(json.dumps(d) + "\n" for d in [
        {"id": "jan", "published": "2024-01-15", "text": "The harbour froze in January and ferries stopped."},
        {"id": "jun", "published": "2024-06-02T08:00:00Z", "text": "The harbour reopened in June for ferries."},
        {"id": "undated", "text": "The harbour hosts ferries all year round."}]), encoding="utf-8")
    build([feed], tmp_path / "index")
    searcher = Searcher.open(tmp_path / "index")
    found = lambda **f: {h.citations[0].doc_id for h in searcher.search("harbour ferries", k=5,  # noqa: E731
                                                                        filters=Filters.of(**f))}
    assert found() == {"jan", "jun", "undated"}
    assert found(published_from="2024-02-01") == {"jun"}
    assert found(published_to="2024-06-02") == {"jan", "jun"}
    assert found(published_from="2024-01-16", published_to="2024-06-01") == set()


def test_context_is_numbered_cited_and_within_budget(searcher):
    body = searcher.context(QUESTION, k=5, max_chars=4000)
    text, sources = body["context"], body["sources"]
    assert text.startswith("[1] ") and body["chars"] == len(text) <= 4000
    assert [s["n"] for s in sources] == list(range(1, len(sources) + 1))
    for s in sources:
        entry = text.split(f"[{s['n']}] ", 1)[1]
        doc = searcher.document(s["doc_id"])["text"]
        assert entry.startswith(doc[s["start"]:s["end"]])  # [n] maps to that exact span
        source_line = entry.split("\n[", 1)[0].rstrip("\n").rsplit("\n", 1)[1]
        assert source_line.startswith("Source: ") and f"{s['source']} · paragraph {s['paragraph']}" in source_line
    assert "710,000" in text.split("[2] ")[0]


@pytest.mark.parametrize("budget", [150, 300, 700, 1200])
def test_a_tight_budget_keeps_whole_sentences(searcher, budget):
    body = searcher.context(QUESTION, k=5, max_chars=budget)
    assert body["chars"] <= budget
    for s in body["sources"]:
        if not s["complete"]:  # cut short: at the end of a sentence of the passage
            doc = searcher.document(s["doc_id"])["text"]
            assert doc[s["end"] - 1] in ".!?”\"'" and doc[s["start"]:s["end"]].strip()


def test_context_over_http(client):
    r = client.get("/context", query_string={"q": QUESTION, "k": 3, "max_chars": 1500})
    assert r.status_code == 200
    body = r.get_json()
    assert set(body) == {"query", "context", "chars", "max_chars", "sources"} and body["chars"] <= 1500
    for bad, code in (({"max_chars": "0"}, "invalid_max_chars"), ({"max_chars": "lots"}, "invalid_max_chars"),
                      ({"published_from": "May 2024"}, "invalid_published_from"), ({"offset": "1"}, "unknown_parameter")):
        r = client.get("/context", query_string={"q": QUESTION, **bad})
        assert (r.status_code, r.get_json()["error"]["code"]) == (400, code)


def test_neighbours_bring_the_paragraphs_around_each_passage_as_one_span(searcher, client):
    plain = searcher.context(QUESTION, 3, 20000)
    wide = searcher.context(QUESTION, 3, 20000, neighbours=1)
    for narrow, widened in zip(plain["sources"], wide["sources"]):
        if narrow["doc_id"] != widened["doc_id"]:
            break  # an earlier span took this one's passage: the lists part here
        text = searcher.document(widened["doc_id"])["text"]
        assert widened["start"] <= narrow["start"] and narrow["end"] <= widened["end"]
        assert (widened["start"], widened["end"]) != (narrow["start"], narrow["end"])  # paragraphs were added
        assert text[widened["start"]:widened["end"]] in wide["context"]  # the exact span of the article
    spans = [(s["doc_id"], s["start"], s["end"]) for s in wide["sources"]]
    for i, (doc, a, b) in enumerate(spans):  # no paragraph twice
        assert not any(doc == d and a < y and x < b for d, x, y in spans[:i])
    r = client.get("/context", query_string={"q": QUESTION, "neighbours": "6"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, "invalid_neighbours")
    assert client.get("/context", query_string={"q": QUESTION, "neighbours": "2"}).status_code == 200


def test_filters_and_offset_over_http(client):
    got = client.get(f"/search?q={QUESTION}&k=3&doc_id={OTHER}&doc_id={TRANSLATION}").get_json()["results"]
    assert {c["doc_id"] for h in got for c in h["citations"]} <= {OTHER, TRANSLATION}
    posted = client.post("/search", json={"query": QUESTION, "k": 3, "doc_id": [OTHER, TRANSLATION]}).get_json()
    assert posted["results"] == got
    second = client.get("/search", query_string={"q": QUESTION, "k": 2, "offset": 2}).get_json()
    assert second["offset"] == 2 and [h["rank"] for h in second["results"]] == [3, 4]
    for query, code in (("offset=-1", "invalid_offset"), ("offset=901", "invalid_offset"),
                        ("published_to=2024-1-1", "invalid_published_to"), ("offset=1&offset=2", "repeated_parameter")):
        r = client.get(f"/search?q=war&{query}")
        assert (r.status_code, r.get_json()["error"]["code"]) == (400, code)
    r = client.post("/search", json={"query": "war", "doc_id": [7]})
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, "invalid_doc_id")
