"""MMR (search/retrieval/mmr.py): a result list that trades relevance for novelty, off by
default; its order, pages and errors, on the real model and index and over HTTP."""

import json
from pathlib import Path

import numpy as np
import pytest

from search.retrieval import mmr

from helpers import error

QUESTIONS = [item["question"] for item in json.loads(
    (Path(__file__).parent / "data" / "seed_questions.json").read_text(encoding="utf-8"))]


def results(n):
    return [(i, 1.0 - i / 100, [i]) for i in range(n)]


def test_a_near_copy_of_the_first_result_waits_and_weight_one_keeps_the_ranking():
    vectors = np.eye(4, 8, dtype=np.float32)
    vectors[1] = vectors[0] + 0.01  # the second is the first again
    scores = np.array([1.0, 0.99, 0.9, 0.8])
    assert [r[0] for r in mmr.reorder(results(4), scores, vectors, 0.5, 4)] == [0, 2, 3, 1]
    assert [r[0] for r in mmr.reorder(results(4), scores, vectors, 1.0, 4)] == [0, 1, 2, 3]
    assert [r[0] for r in mmr.reorder(results(4), scores, vectors, 0.99, 4)] == [0, 1, 2, 3]  # relevance first


def test_a_shorter_list_is_the_head_of_the_longer_one_and_past_the_pool_the_ranking_follows():
    rng = np.random.default_rng(7)
    n = mmr.POOL + 20
    vectors = rng.normal(size=(mmr.POOL, 16)).astype(np.float32)
    scores = np.sort(rng.random(mmr.POOL))[::-1]
    full = mmr.reorder(results(n), scores, vectors, 0.5, n)
    assert sorted(r[0] for r in full) == list(range(n))
    assert [r[0] for r in full[mmr.POOL:]] == list(range(mmr.POOL, n))
    for k in (1, 5, 37):
        assert mmr.reorder(results(n), scores, vectors, 0.5, k) == full[:k]


def _redundancy(embedder, hits) -> float:
    vectors = embedder.embed([h.text for h in hits])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    similar = vectors @ vectors.T
    return float(similar[~np.eye(len(hits), dtype=bool)].mean())


def test_mmr_makes_the_seed_answers_less_alike_and_keeps_the_best_first(searcher, embedder):
    plain, diverse = [], []
    for question in QUESTIONS:
        ranked = searcher.search(question, k=5, highlight=False)
        reordered = searcher.search(question, k=5, highlight=False, mmr=0.5)
        assert reordered[0].text == ranked[0].text, question
        plain.append(_redundancy(embedder, ranked))
        diverse.append(_redundancy(embedder, reordered))
    # measured: mean pairwise cosine of the five 0.55 in rank order, 0.29 with mmr=0.5
    assert np.mean(diverse) < np.mean(plain) - 0.15, (np.mean(plain), np.mean(diverse))


def test_mmr_pages_are_slices_of_one_order(searcher):
    question = "North Korean troops in Russia"
    whole = [h.text for h in searcher.search(question, k=9, mmr=0.5, highlight=False)]
    pages = [h.text for offset in (0, 3, 6)
             for h in searcher.search(question, k=3, offset=offset, mmr=0.5, highlight=False)]
    assert pages == whole and len(set(whole)) == 9
    assert whole != [h.text for h in searcher.search(question, k=9, highlight=False)]


@pytest.mark.parametrize("group", ["article", "story"])
def test_mmr_with_grouping_and_a_source_cap(searcher, group):
    hits = searcher.search("North Korean troops in Russia", k=5, group=group, diversity=1, mmr=0.5)
    firsts = [h.citations[0].doc_id for h in hits]
    assert hits and len(firsts) == len(set(firsts))
    assert len({h.citations[0].source for h in hits}) == len(hits)


def test_mmr_over_http_and_its_bad_values(client):
    assert client.get("/search", query_string={"q": "troops"}).get_json()["mmr"] is None
    body = client.get("/search", query_string={"q": "troops", "k": 6, "mmr": "0.5"}).get_json()
    assert body["mmr"] == 0.5 and len(body["results"]) == 6
    posted = client.post("/search", json={"query": "troops", "k": 6, "mmr": 0.5}).get_json()
    assert [r["text"] for r in posted["results"]] == [r["text"] for r in body["results"]]
    context = client.get("/context", query_string={"q": "troops", "k": 6, "mmr": 0.5}).get_json()
    cited = [(r["citations"][0]["doc_id"], r["citations"][0]["paragraph"]) for r in body["results"]]
    assert [(s["doc_id"], s["paragraph"]) for s in context["sources"]] == cited
    for bad in ("1.5", "-0.1", "half", "nan"):
        error(client.get("/search", query_string={"q": "troops", "mmr": bad}), 400, "invalid_mmr")
    error(client.post("/search", json={"query": "troops", "mmr": True}), 400, "invalid_mmr")
    error(client.post("/search", json={"query": "troops", "mmr": "0.5"}), 400, "invalid_mmr")
    error(client.get("/context", query_string={"q": "troops", "mmr": "2"}), 400, "invalid_mmr")


def test_ask_mmr_and_per_source_are_the_http_body(capsys, client, seed_index):
    from search.faces.cli import main

    assert main(["North Korean troops in Russia", "--json", "--k", "4", "--mmr", "5e-1", "--per-source", "2",
                 "--index", str(seed_index)]) == 0
    body = json.loads(capsys.readouterr().out)
    http = client.get("/search", query_string={"q": "North Korean troops in Russia", "k": 4, "mmr": "5e-1",
                                                "diversity": 2}).get_json()
    assert body["mmr"] == http["mmr"] == 0.5 and body["diversity"] == 2
    assert [r["text"] for r in body["results"]] == [r["text"] for r in http["results"]]
    assert main(["troops", "--mmr", "1.5", "--index", str(seed_index)]) != 0
    assert "mmr must be a number from 0 to 1" in capsys.readouterr().err


def test_mmr_on_a_date_sorted_list_keeps_newest_first_but_for_repeats(searcher):
    question = "North Korean troops in Russia"
    dated = searcher.search(question, k=10, sort="date", highlight=False)
    same = searcher.search(question, k=10, sort="date", mmr=1.0, highlight=False)
    assert [h.text for h in same] == [h.text for h in dated]
    spaced = searcher.search(question, k=10, sort="date", mmr=0.5, highlight=False)
    assert spaced[0].text == dated[0].text and [h.text for h in spaced] != [h.text for h in dated]
