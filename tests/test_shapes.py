"""Shapes of a result list: one hit per article (group=article), and facets."""

import json
from pathlib import Path

import pytest

from search.retrieval.collapse import count_facets

from helpers import error

QUESTIONS = [item["question"] for item in json.loads(
    (Path(__file__).parent / "data" / "seed_questions.json").read_text(encoding="utf-8"))]


def test_group_by_article_gives_one_hit_per_article_on_every_seed_question(searcher):
    for question in QUESTIONS:
        hits = searcher.search(question, k=10, group="article")
        articles = [{c.doc_id for c in h.citations} for h in hits]
        assert 1 <= len(hits) <= 5, question
        assert all(not (a & b) for i, a in enumerate(articles) for b in articles[i + 1:]), question
        for hit in hits:  # the other passages are the article's own, each once, none the hit's
            paragraphs = [m["paragraph"] for m in hit.more]
            assert len(paragraphs) == len(set(paragraphs)) <= searcher.MORE_PER_ARTICLE
            assert hit.citations[0].paragraph not in paragraphs


def test_group_by_article_keeps_the_best_passage_of_each_article_in_order(searcher):
    question = "What does Ukraine's spy chief say about the North Korean troops?"
    plain = searcher.search(question, k=20)
    grouped = searcher.search(question, k=5, group="article")
    firsts, seen = [], set()
    for hit in plain:
        articles = {c.doc_id for c in hit.citations}
        if not articles & seen:
            firsts.append(hit.text)
        seen |= articles
    assert [h.text for h in grouped] == firsts[:len(grouped)]


@pytest.mark.parametrize("question", QUESTIONS[:6])
def test_facets_count_the_articles_of_the_results_at_their_depth(searcher, question):
    counted = searcher.facets(question, ["source", "author", "published_month"])
    hits = searcher.search(question, k=searcher.FACET_DEPTH, collapse=False)
    articles = {h.citations[0].doc_id: h.citations[0] for h in hits}
    for field in ("source", "author"):
        expected = {}
        for c in articles.values():
            expected[getattr(c, field)] = expected.get(getattr(c, field), 0) + 1
        assert {f["value"]: f["count"] for f in counted[field]} == expected
    assert sum(f["count"] for f in counted["published_month"]) == len(articles)


def test_facets_order_most_first_and_months():
    class C:
        def __init__(self, doc_id, source, published):
            self.doc_id, self.source, self.author, self.published = doc_id, source, None, published

    got = count_facets([C("a", "x", "2024-10-02"), C("b", "y", "2024-11-05"), C("c", "y", None),
                        C("a", "x", "2024-10-02")], ["source", "published_month"])
    assert got["source"] == [{"value": "y", "count": 2}, {"value": "x", "count": 1}]
    assert got["published_month"] == [{"value": "2024-10", "count": 1}, {"value": "2024-11", "count": 1},
                                      {"value": None, "count": 1}]


def test_the_shapes_over_http(client):
    body = client.get("/search", query_string={"q": "North Korean troops", "k": 10, "group": "article",
                                               "facets": "source,published_month"}).get_json()
    assert body["group"] == "article" and body["facet_depth"] == 100
    assert set(body["facets"]) == {"source", "published_month"} and all("more" in r for r in body["results"])
    posted = client.post("/search", json={"query": "North Korean troops", "k": 10, "group": "article",
                                          "facets": ["source", "published_month"]}).get_json()
    assert posted["facets"] == body["facets"] and posted["results"] == body["results"]
    plain = client.get("/search", query_string={"q": "North Korean troops"}).get_json()
    assert "facets" not in plain and not any("more" in r for r in plain["results"])
    error(client.get("/search", query_string={"q": "troops", "group": "event"}), 400, "invalid_group")
    error(client.get("/search", query_string={"q": "troops", "facets": "colour"}), 400, "invalid_facets")


def test_group_by_article_with_nothing_to_group_is_empty(searcher):
    # found by the fuzzer: a filter that leaves nothing was a 500
    from search import Filters

    assert searcher.search("troops", group="article", filters=Filters.of(doc_id="no-such-document")) == []


def test_diversity_caps_the_results_of_one_source(searcher):
    question = "North Korean troops in Russia"
    plain = searcher.search(question, k=10)
    capped = searcher.search(question, k=10, diversity=1)
    sources = [h.citations[0].source for h in capped]
    assert len(sources) == len(set(sources)) and len(capped) <= 5  # five seed articles, five sources
    assert len({h.citations[0].source for h in plain}) < len(plain)  # without the cap a source repeats
    kept_order = [h.text for h in plain if h.text in {c.text for c in capped}]
    assert [h.text for h in capped][:len(kept_order)] == kept_order[:len(capped)]  # the ranking's order
    two = searcher.search(question, k=10, diversity=2)
    assert all([h.citations[0].source for h in two].count(s) <= 2 for s in sources)


def test_diversity_is_off_by_default_and_checked(client):
    assert client.get("/search", query_string={"q": "troops"}).get_json()["diversity"] is None
    body = client.get("/search", query_string={"q": "troops", "k": 10, "diversity": 1}).get_json()
    sources = [r["citations"][0]["source"] for r in body["results"]]
    assert body["diversity"] == 1 and len(sources) == len(set(sources))
    error(client.get("/search", query_string={"q": "troops", "diversity": 0}), 400, "invalid_diversity")
    error(client.post("/search", json={"query": "troops", "diversity": None}), 400, "invalid_diversity")
