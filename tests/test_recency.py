"""Time in the ranking: as_of, and the recency preference of questions that ask for it."""

import numpy as np
import pytest

from indexer import build
from search import BadRequest, Searcher
from search.retrieval.recency import day, favour_recent, wants_recent
from search.service.app import create_app

from helpers import SEEDS, error, write_jsonl

SEALS = [
    {"id": "seals-january", "published": "2024-01-05", "title": "Seal count in the Thames estuary",
     "text": "The count of harbour seals in the Thames estuary fell to 900, volunteers on boats found in "
             "the winter survey on the sandbanks.\n"},
    {"id": "seals-june", "published": "2024-06-20", "title": "Seal count in the Thames estuary",
     "text": "Aerial photographs put the count of harbour seals in the Thames estuary at 1,234 this summer, "
             "the highest since monitoring began.\n"},
    {"id": "undated", "title": "Seal count in the Thames estuary",
     "text": "Harbour seals breed on the Thames estuary's mudflats, where conservationists have counted them "
             "every year for two decades.\n"},
]


@pytest.mark.parametrize("question, recent", [
    ("What is the latest seal count?", True), ("Which country elected a leftist leader this week?", True),
    ("What did the survey find recently?", True), ("How many seals are there now?", True),
    ("How many have died so far?", True), ("What happened yesterday in Kyiv?", True),
    ("What is the most recent figure?", True), ("Who currently leads the party?", True),
    ("How many harbour seals live in the Thames?", False), ("What did Kim get from Moscow?", False),
    ("Is the knowledge of the law new?", False), ("Nowhere to go", False),
])
def test_a_question_asks_for_what_is_recent_by_its_words(question, recent):
    assert wants_recent(question) is recent


def test_the_preference_adds_closeness_in_time_to_the_scores():
    ids, scores = np.array([0, 1, 2, 3, 4]), np.array([0.5, 0.5, 0.5, 0.5, 0.0])
    published = np.array([day("2024-06-20"), day("2024-06-06"), day("2020-01-01"), np.nan, day("2024-06-20")])
    ranked_ids, ranked = favour_recent((ids, scores), published, "2024-06-20", weight=0.5, half_life_days=14)
    got = dict(zip(ranked_ids.tolist(), ranked.tolist()))
    # scaled to 0..1 (1, 1, 1, 1, 0), then + 0.5 x freshness: 1.5 on the day, 1.25 a
    # half-life away, 1 long ago or undated, 0.5 for the least candidate of the day;
    # scaled to 0..1 again
    assert [got[i] for i in range(5)] == pytest.approx([1.0, 0.75, 0.5, 0.5, 0.0], abs=1e-6)
    assert ranked_ids.tolist() == [0, 1, 2, 3, 4]
    assert day("2025-02-30") == day("2025-02-28") and np.isnan(day("someday"))


@pytest.fixture(scope="module")
def seals(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("seals")
    index = root / "index"
    # among the seeds, so that the fused scores spread over many candidates as in a real archive
    build([SEEDS, write_jsonl(root / "seals.jsonl", *SEALS)], index, embedder=embedder)
    return Searcher.open(index)


def test_a_recent_question_favours_articles_near_its_date(seals):
    question = "What is the latest harbour seal count in the Thames?"
    def order(as_of):
        return [h.citations[0].doc_id for h in seals.search(question, k=3, as_of=as_of)]

    assert order("2024-06-21")[:2] == ["seals-june", "seals-january"]
    assert order("2024-01-06")[:2] == ["seals-january", "seals-june"]


def test_a_question_without_time_in_it_ranks_the_same_on_any_date(seals):
    question = "How many harbour seals were counted in the Thames estuary?"
    orders = {tuple((h.citations[0].doc_id, h.score) for h in seals.search(question, k=3, as_of=as_of))
              for as_of in ("2024-01-06", "2024-06-21", None)}
    assert len(orders) == 1


def test_as_of_is_a_date(seals, seed_index):
    with pytest.raises(BadRequest, match="as_of must be a date as YYYY-MM-DD, got '2024-13-01'"):
        seals.search("latest seals", as_of="2024-13-01")
    client = create_app({"INDEX": str(seed_index), "TESTING": True}).test_client()
    assert client.get("/search", query_string={"q": "latest troops", "as_of": "2024-11-01"}).status_code == 200
    assert client.post("/search", json={"query": "latest troops", "as_of": "2024-11-01"}).status_code == 200
    error(client.get("/search", query_string={"q": "latest troops", "as_of": "yesterday"}), 400, "invalid_as_of")
    error(client.post("/search", json={"query": "latest troops", "as_of": None}), 400, "invalid_as_of")


def test_sort_by_date_lists_what_answers_newest_first(seals, seed_index):
    question = "How many harbour seals were counted in the Thames estuary?"
    by_relevance = [h.citations[0].doc_id for h in seals.search(question, k=3)]
    by_date = [h.citations[0].doc_id for h in seals.search(question, k=3, sort="date")]
    assert by_relevance[0] == "seals-january"
    assert by_date == ["seals-june", "seals-january", "undated"]  # undated last, the most relevant of them first
    client = create_app({"INDEX": str(seed_index), "TESTING": True}).test_client()
    body = client.get("/search", query_string={"q": "troops", "sort": "date"}).get_json()
    assert body["sort"] == "date" and body["results"]
    error(client.get("/search", query_string={"q": "troops", "sort": "newest"}), 400, "invalid_sort")
    error(client.get("/context", query_string={"q": "troops", "sort": "date"}), 400, "unknown_parameter")
