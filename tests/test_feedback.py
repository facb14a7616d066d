"""The ranking past the first answers: the fused list merged with a feedback search
(search/retrieval/feedback.py)."""

import numpy as np

from search.retrieval import feedback
from search.retrieval.fusion import Weights


def _ranking(ids, scores=None):
    ids = np.asarray(ids, dtype=np.int64)
    return ids, np.asarray(scores if scores is not None else np.linspace(1, 0.1, len(ids)), dtype=np.float64)


def test_the_question_moves_toward_the_mean_of_its_best_passages_and_stays_a_unit_vector():
    question = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    passages = np.array([[0.0, 1.0, 0.0], [0.0, 0.6, 0.8]], dtype=np.float32)
    out = feedback.moved(question, passages, 1.0)
    expected = np.array([1.0, 0.8, 0.4]) / np.linalg.norm([1.0, 0.8, 0.4])
    assert np.allclose(out, expected, atol=1e-6)
    assert out.dtype == np.float32
    assert np.array_equal(feedback.moved(question, np.zeros((0, 3), dtype=np.float32), 1.0), question)


def test_the_head_runs_to_the_nth_article_and_the_nth_result():
    row = np.array([0, 0, 1, 2, 1, 3])  # passage id -> article row
    ids = np.array([0, 1, 2, 4, 3, 5])  # articles 0 0 1 1 2 3
    assert feedback.head_length(ids, row, None, 2) == 3
    assert feedback.head_length(ids, row, None, 3) == 5
    assert feedback.head_length(ids, row, None, 10) == 6  # fewer articles than that: all of it
    # passages 2 and 3 are copies (group 0): one result, two articles
    groups = np.array([-1, -1, 0, 0, -1, -1])
    ids = np.array([2, 3, 0, 5])  # articles 1 2 0 3; results {2, 3} 0 5
    assert feedback.head_length(ids, row, None, 2) == 2
    assert feedback.head_length(ids, row, groups, 2) == 3


def test_the_head_keeps_its_order_and_the_tail_goes_by_both_lists_reciprocal_ranks():
    # passage p belongs to article p; the fused list's first ten articles are 0..9
    row = np.arange(40)
    fused = _ranking(list(range(13)))
    found = _ranking([3, 35, 12, 36])  # 35 and 36: only the feedback search has them
    ids, scores = feedback.with_tail(fused, found, row)
    assert ids[:10].tolist() == list(range(10))
    assert np.array_equal(scores[:10], fused[1][:10])
    # 12: 2/(10+13) + 1/(10+3); 10: 2/21; 11: 2/22; 35: 1/12; 36: 1/14
    assert ids[10:].tolist() == [12, 10, 11, 35, 36]
    assert (np.diff(scores) <= 0).all() and scores[10] < scores[9]


def test_an_articles_passages_in_the_tail_follow_one_another_by_their_own_ranks():
    # articles 0..9 hold one passage each, article 10 passages 10-12, 11 and 12 one each (13, 14)
    row = np.array(list(range(10)) + [10, 10, 10, 11, 12])
    fused = _ranking([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 12, 14, 10, 11])
    found = _ranking([11, 14])
    ids, scores = feedback.with_tail(fused, found, row)
    # articles: 10 (2nd of the tail's in fused, 1st in found), 12 (3rd, 2nd), 11 (1st, absent);
    # within 10: passage 11 (15th in fused, 1st in found), 12 (12th), 10 (14th)
    assert ids[10:].tolist() == [11, 12, 10, 14, 13]
    assert scores[10] == scores[11] == scores[12] > scores[13] > scores[14]


def test_a_ranking_of_fewer_answers_than_the_head_is_left_as_it_is():
    # (a request for a page of it is answered without the feedback search: the same pages)
    row = np.arange(5)
    fused = _ranking([3, 1, 4])
    ids, scores = feedback.with_tail(fused, _ranking([0, 2, 3]), row)
    assert ids.tolist() == [3, 1, 4] and np.array_equal(scores, fused[1])


def test_a_searcher_keeps_its_first_answers_and_only_reorders_below_them(searcher, monkeypatch):
    # the seeds are five articles, all of them inside a head of ten: a head of two leaves a tail
    monkeypatch.setattr(feedback, "HEAD", 2)
    question = "What did Zelensky say about North Korean troops?"
    plain = searcher.search(question, k=60, collapse=False, highlight=False)
    monkeypatch.setattr(searcher, "weights", Weights(feedback=0.0))
    without = searcher.search(question, k=60, collapse=False, highlight=False)
    articles = list(dict.fromkeys(hit.citations[0].doc_id for hit in without))
    head = next(i for i, hit in enumerate(without) if hit.citations[0].doc_id == articles[1]) + 1
    assert [h.text for h in plain[:head]] == [h.text for h in without[:head]]
    assert [h.text for h in plain] != [h.text for h in without]  # the tail is the feedback's
    assert sorted(h.text for h in plain) == sorted(h.text for h in without)
    assert [h.score for h in plain] == sorted((h.score for h in plain), reverse=True)


def test_the_first_results_are_the_same_whether_a_request_reads_past_them_or_not(searcher, monkeypatch):
    monkeypatch.setattr(feedback, "HEAD", 2)
    question = "Who wrote the opinion piece about the nightmare scenario?"  # the op-ed: two copies

    def shown(hits):
        return [(h.text, [(c.doc_id, c.paragraph) for c in h.citations]) for h in hits]

    calls = []
    with_feedback = searcher._with_feedback
    monkeypatch.setattr(searcher, "_with_feedback", lambda *a, **kw: calls.append(1) or with_feedback(*a, **kw))
    first = searcher.search(question, k=2)
    assert not calls  # two results: no feedback search
    deep = searcher.search(question, k=20)
    assert calls
    assert shown(first) == shown(deep[:2])
    assert any(len(h.citations) == 2 for h in first)  # the translations, cited together
    assert shown(searcher.search(question, k=2, offset=2)) == shown(deep[2:4])
