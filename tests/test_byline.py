"""A question that asks who wrote an article is answered by the article's by-line."""

import numpy as np
import pytest

from search.ranked import ranking
from search.retrieval.byline import asks_for_author, author_of, bylines_first, is_byline, leading_articles

OP_ED = {"000_c7708b97d51473e9", "001_69714012eee412eb"}


@pytest.mark.parametrize("question", [
    "Who wrote the opinion piece about the nightmare scenario?",
    "who wrote about the Kursk incursion",
    "Who is the author of the article on North Korean troops?",
    "Whose op-ed warns that Putin could become hostage to Pyongyang?",
    "Which correspondent wrote the Newsweek story?",
    "Name the author of the Standard piece on Russia's losses",
    "The piece about Kim's technology was written by whom?",
])
def test_a_question_about_an_articles_author_is_told(question):
    assert asks_for_author(question)


@pytest.mark.parametrize("question", [
    "Who wrote the treaty between Moscow and Pyongyang?",  # a document in the news, not the article
    "What did Kim write to Putin?",
    "Who was the Russian president who wrote to Kim?",
    "Who is the head of Ukrainian intelligence?",
    "What does the editorial board of the Standard think?",
])
def test_other_questions_are_not_taken_for_author_questions(question):
    assert not asks_for_author(question)


@pytest.mark.parametrize("text", [
    "This means problems at all levels.\n\nRobert Fox is the Standard’s defense editor",
    "By Sigrun Jonsdottir\n\nLava broke through the defences overnight.",
    "Reporting by Guy Faulconbridge; Editing by Mark Trevelyan",
    "Anna Petrova writes for the Kyiv Independent.",
])
def test_by_lines_in_their_usual_forms_are_found(text):
    assert is_byline(text)


@pytest.mark.parametrize("text", [
    "Kyrylo Budanov, the head of Ukrainian intelligence, has said that more troops will come.",
    "John Kirby told reporters on Wednesday that the troops would be fair game.",
    "Vladimir Putin is the Russian president who met Kim in June.",
    "by the way, Moscow has not answered.",
])
def test_ordinary_paragraphs_are_not_by_lines(text):
    assert not is_byline(text)


def test_the_author_the_metadata_names_marks_the_passage_that_starts_with_them():
    assert is_byline("Jane Q. Roe\nPolitics desk", author="Jane Q. Roe")
    assert not is_byline("The minister met Jane Q. Roe on Monday.", author="Jane Q. Roe")
    assert not is_byline("Jane Q. Roesler said no.", author="Jane Q. Roe")


def test_each_leading_articles_by_line_goes_just_above_its_best_passage():
    document_row = np.array([0, 0, 0, 1, 1, 2, 2])
    ranked = ranking([3, 1, 5, 4, 0], [1.0, 0.9, 0.7, 0.5, 0.2])  # articles 1, 0, 2 in that order
    assert leading_articles(ranked, document_row, 2) == [(1, 0), (0, 1)]
    ids, scores = bylines_first(ranked, {0: 2, 1: 4}, document_row)
    # article 1's by-line (4) was ranked; article 0's (2) was not a candidate at all
    assert ids.tolist() == [4, 3, 2, 1, 5, 0]
    assert scores.tolist() == [1.0, 1.0, 0.9, 0.9, 0.7, 0.2]


def test_a_by_line_already_leading_its_article_stays_where_it_is():
    ids, _ = bylines_first(ranking([2, 0], [1.0, 0.5]), {0: 2}, np.array([0, 0, 0]))
    assert ids.tolist() == [2, 0]


def test_asked_who_wrote_the_op_ed_the_answer_is_its_by_line_citing_both_translations(searcher):
    hits = searcher.search("Who wrote the opinion piece about the nightmare scenario?", k=3)
    assert "Robert Fox is the Standard" in hits[0].text
    assert {c.doc_id for c in hits[0].citations} == OP_ED
    # the passage that names the nightmare scenario follows: the article is still the right one
    assert "nightmare scenario" in hits[1].text


def test_the_same_subject_asked_about_is_answered_from_the_text(searcher):
    hits = searcher.search("What is the nightmare scenario for Putin and China?", k=3)
    assert not any("Robert Fox" in hit.text for hit in hits)
    assert "nightmare scenario" in hits[0].text


@pytest.mark.parametrize("lines, author", [
    (["Lava broke through overnight.", "Robert Fox is the Standard’s Defence Editor"], "Robert Fox"),
    (["By Sigrun Jonsdottir", "Lava broke through overnight."], "Sigrun Jonsdottir"),
    (["Reporting by Guy Faulconbridge; Editing by Mark Trevelyan"], "Guy Faulconbridge"),
    (["John Kirby told reporters the troops would be fair game."], None),
    (["Putin is the man who decides."], None),
])
def test_the_author_is_read_from_a_by_line(lines, author):
    assert author_of(lines) == author


def test_a_plain_text_article_takes_its_author_from_its_closing_by_line(searcher):
    # seeds/ are .txt files: no metadata but the by-line the op-ed closes with
    assert searcher.document("000_c7708b97d51473e9")["author"] == "Robert Fox"
    assert searcher.document("001_69714012eee412eb")["author"] == "Robert Fox"
    assert searcher.document("004_8ec5d6834c1552e8")["author"] is None
    hits = searcher.search("Who wrote the opinion piece about the nightmare scenario?", k=1)
    assert {c.author for c in hits[0].citations} == {"Robert Fox"}


def test_a_long_line_that_starts_like_a_by_line_is_the_storys_own():
    line = "By Monday Kyiv had pulled its troops back from the outskirts of the town, officials said."
    assert author_of([line]) is None
    assert not is_byline(line)
