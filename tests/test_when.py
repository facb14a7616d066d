"""Time expressions in questions, as publication ranges relative to as_of (a table)."""

import pytest

from search.retrieval.when import interpret
from search.service.app import create_app

from helpers import error

AS_OF = "2024-11-20"  # a Wednesday
TABLE = [  # (question, the phrase found, published_from, published_to)
    ("What happened last week in Kursk?", "last week", "2024-11-11", "2024-11-20"),
    ("How many troops arrived since October?", "since October", "2024-10-01", "2024-11-20"),
    ("What did Putin say in 2022?", "in 2022", "2022-01-01", "2024-11-20"),
    ("What happened yesterday in Kyiv?", "yesterday", "2024-11-19", "2024-11-20"),
    ("Which NFL star announced his retirement on Tuesday?", "on Tuesday", "2024-11-19", "2024-11-20"),
    ("Which deals were signed in the past three months?", "in the past three months", "2024-08-20", "2024-11-20"),
    ("Which deals were signed over the last 10 days?", "over the last 10 days", "2024-11-10", "2024-11-20"),
    ("What was decided during the last two weeks?", "during the last two weeks", "2024-11-06", "2024-11-20"),
    ("What was agreed before 2020?", "before 2020", None, "2019-12-31"),
    ("What was agreed prior to 2015?", "prior to 2015", None, "2014-12-31"),
    ("What was built until June?", "until June", None, "2024-05-31"),
    ("What changed after March 2023?", "after March 2023", "2023-04-01", "2024-11-20"),
    ("Strikes between June 2024 and August 2024", "between June 2024 and August 2024", "2024-06-01", "2024-09-02"),
    ("What did he say two weeks ago?", "two weeks ago", "2024-11-04", "2024-11-20"),
    ("What did she say three days ago?", "three days ago", "2024-11-17", "2024-11-20"),
    ("What happened 5 days ago?", "5 days ago", "2024-11-15", "2024-11-20"),
    ("What was announced in December?", "in December", "2023-12-01", "2024-11-20"),  # last December
    ("What was announced in May?", "in May", "2024-05-01", "2024-11-20"),
    ("What happened in early October?", "in early October", "2024-10-01", "2024-11-20"),
    ("What happened in October 2023?", "in October 2023", "2023-10-01", "2024-11-20"),
    ("Who spoke on March 3?", "on March 3", "2024-03-03", "2024-11-20"),
    ("Who spoke on March 3rd, 2024?", "on March 3rd, 2024", "2024-03-03", "2024-11-20"),
    ("Who resigned on Monday?", "on Monday", "2024-11-18", "2024-11-20"),
    ("What happened last month?", "last month", "2024-10-01", "2024-11-20"),
    ("What happened last year?", "last year", "2023-01-01", "2024-11-20"),
    ("How much did prices rise since Monday?", "since Monday", "2024-11-18", "2024-11-20"),
    ("How much aid since 2022?", "since 2022", "2022-01-01", "2024-11-20"),
    ("What was said during 2021?", "during 2021", "2021-01-01", "2024-11-20"),
    ("What happened on January 6, 2021?", "on January 6, 2021", "2021-01-06", "2024-11-20"),
    ("What did the court rule after June 5?", "after June 5", "2024-06-06", "2024-11-20"),
    ("Who spoke between June 3 and June 5?", "between June 3 and June 5", "2024-06-03", "2024-06-07"),
]
NOT_TIME = [
    "Which tourist attraction will resume tours after being suspended for years?",
    "How much aid has been approved since the beginning of the invasion?",
    "Are rents higher than a year ago?",
    "How do prices compare to a year ago?",
    "What may happen to the treaty?",
    "Who will march on the capital?",
    "How many harbour seals live in the Thames?",
]


@pytest.mark.parametrize("question, phrase, start, end", TABLE)
def test_a_time_expression_is_a_publication_range(question, phrase, start, end):
    found = interpret(question, AS_OF)
    assert found is not None and (found.phrase, found.published_from, found.published_to) == (phrase, start, end)


@pytest.mark.parametrize("question", NOT_TIME)
def test_words_that_hold_no_date_are_not_a_time_expression(question):
    assert interpret(question, AS_OF) is None


def test_the_answer_says_what_it_understood_and_literal_undoes_it(seed_index):
    client = create_app({"INDEX": str(seed_index), "TESTING": True}).test_client()
    asked = {"q": "What did Russia lose last year?", "as_of": "2025-03-01", "k": 5}
    body = client.get("/search", query_string=asked).get_json()
    assert body["as_of"] == "2025-03-01"
    assert body["interpreted"] == {"phrase": "last year", "published_from": "2024-01-01",
                                   "published_to": "2025-03-01"}
    literal = client.get("/search", query_string={**asked, "dates": "literal"}).get_json()
    assert literal["interpreted"] is None and literal["results"]
    # a caller's own dates win over the question's words
    own = client.post("/search", json={"query": asked["q"], "as_of": "2025-03-01",
                                       "published_from": "2024-11-01"}).get_json()
    assert own["interpreted"] is None
    error(client.get("/search", query_string={**asked, "dates": "sometimes"}), 400, "invalid_dates")


def test_dates_outside_the_calendar_are_refused_or_read_as_words(seed_index):
    # found by the fuzzer: year 0 was a 500
    client = create_app({"INDEX": str(seed_index), "TESTING": True}).test_client()
    error(client.get("/context", query_string={"q": "troops", "as_of": "0000-01-01"}), 400, "invalid_as_of")
    body = client.get("/search", query_string={"q": "troops after December 9999", "as_of": "9999-12-31"}).get_json()
    assert body["interpreted"] is None and body["results"]
