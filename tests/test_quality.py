"""Retrieval quality on the seeds: hybrid ranking, exact figures and names, near-duplicate
collapse and highlighting, with the real model and index."""

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from search.index.generations import current
from search.index.lexical import terms
from search.ranked import ranking
from search.retrieval.fusion import Weights, fuse, normalise, standardise
from search.retrieval.fusion import blended as blended_scores
from tools.evaluation import answer_rank

OP_ED = {"000_c7708b97d51473e9", "001_69714012eee412eb"}


@pytest.mark.parametrize("query,holds", [
    ("710,000", "710,000"), ("KN-23", "KN-23"), ("Auxus", "Auxus"), ("Tumen River", "Tumen River"),
    ("John Kirby", "John Kirby"), ("13,000 soldiers", "13,000"), ("August 6", "August 6"),
])
def test_exact_figures_and_names_find_their_passage(searcher, query, holds):
    top = searcher.search(query, k=1)[0]
    assert holds in top.text
    assert holds in top.highlight.text


def test_every_counterpart_of_the_op_ed_is_grouped_and_nothing_else(seed_index):
    with sqlite3.connect(current(seed_index) / "store.sqlite") as db:
        groups = db.execute("SELECT group_concat(p.doc_id || ':' || p.paragraph) FROM duplicates d "
                            "JOIN passages p ON p.id = d.passage_id GROUP BY group_id").fetchall()
        op_ed = db.execute("SELECT doc_id, paragraph FROM passages WHERE doc_id IN (?, ?)", sorted(OP_ED)).fetchall()
    members = [sorted(g[0].split(",")) for g in groups]
    # 000 and 001 are chunked alike, so counterparts share their paragraph ordinal
    assert len(members) == len(op_ed) // 2 == 14
    for pair in members:
        (a_doc, a_par), (b_doc, b_par) = (m.rsplit(":", 1) for m in pair)
        assert {a_doc, b_doc} == OP_ED and a_par == b_par


def test_collapsed_result_cites_every_source_best_first(searcher):
    hits = searcher.search("What does Article 4 of the partnership treaty say?", k=5)
    top = hits[0]
    assert {c.doc_id for c in top.citations} == OP_ED
    assert top.citations[0].doc_id == searcher.search("What does Article 4 of the partnership treaty say?",
                                                      k=1, collapse=False)[0].citations[0].doc_id
    texts = [h.text for h in hits]
    assert len(set(texts)) == len(texts)
    assert sum("Article 4" in t for t in texts) == 2  # 000/001 once (collapsed), 003 once


def test_no_collapse_returns_copies_separately(searcher):
    hits = searcher.search("What does Article 4 of the partnership treaty say?", k=5, collapse=False)
    assert all(len(h.citations) == 1 for h in hits)
    assert {h.citations[0].doc_id for h in hits[:2]} == OP_ED


def test_collapse_still_returns_k_results(searcher):
    assert len(searcher.search("Putin North Korea", k=20)) == 20


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_highlight_offsets(searcher, mode):
    from helpers import SEEDS

    for hit in searcher.search("What did Belarus's leader think of sending foreign troops?", k=5, mode=mode):
        h, c = hit.highlight, hit.citations[0]
        assert hit.text[h.start:h.end] == h.text
        assert (SEEDS / c.source).read_text(encoding="utf-8")[h.doc_start:h.doc_end] == h.text
        assert h.doc_start == c.start + h.start


def test_highlight_is_the_answering_sentence(searcher):
    hit = searcher.search("What gift did Putin give Kim Jong-un?", k=1)[0]
    assert "a gift from Putin to Kim Jong-un" in hit.highlight.text
    assert hit.highlight.text != hit.text


def test_modes_rank_differently_where_dense_alone_fails(searcher):
    question = "What did John Kirby say about North Korean troops?"
    assert "Kirby" not in searcher.search(question, k=1, mode="dense")[0].text
    assert "Kirby" in searcher.search(question, k=1, mode="hybrid")[0].text


def test_bm25_terms_are_stems_plus_units_as_written():
    assert terms("How many casualties since 710,000?") == ["how", "mani", "casualti", "sinc", "710000", "710", "000"]
    assert terms('KN-23 "x" OR (NEAR') == ["kn23", "kn", "23", "x", "near"]
    assert terms("Zelenskyy’s CAFÉ") == ["zelenskyys", "zelenskyi", "cafe"]
    assert terms("the of and ?!") == []


def as_dict(ranked) -> dict[int, float]:
    ids, scores = ranked
    assert list(scores) == sorted(scores, reverse=True), "a ranking is best first"
    return dict(zip(ids.tolist(), scores.tolist()))


def z(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return (values - values.mean()) / values.std()


def test_fusion_combines_standardised_passage_evidence_and_gives_article_evidence_to_its_lead():
    assert normalise(np.array([3.0, 1.0, 2.0])).tolist() == [1.0, 0.0, 0.5]
    assert standardise(np.array([1.0, 3.0])).tolist() == [-1.0, 1.0]
    assert standardise(np.array([2.0, 2.0])).tolist() == [0.0, 0.0]
    # passages 1 and 2 belong to article row 0, passage 3 to row 1
    dense = ranking([1, 2, 3], [0.9, 0.5, 0.7])
    passages = ranking([2, 3], [4.0, 2.0])  # passage 1 shares no term: BM25 0
    documents = ranking([0, 1], [1.0, 3.0])
    row = np.array([-1, 0, 0, 1])
    w = Weights(dense=0.6, document=0.5, document_dense=0.25, lead_margin=0.0)
    own = 0.6 * z([0.9, 0.5, 0.7]) + 0.4 * z([0.0, 4.0, 2.0])
    evidence = 0.25 * z([0.9, 0.7]) + 0.75 * z([1.0, 3.0])
    lead = own[0] >= own[1]  # which of article 0's passages leads it on its own evidence
    raw = 0.5 * own + 0.5 * (evidence - evidence.min())[[0, 0, 1]] * np.array([lead, not lead, True])
    fused = as_dict(fuse(dense, passages, documents, row, w))
    assert fused == pytest.approx(dict(zip([1, 2, 3], normalise(raw))))
    assert max(fused.values()) == 1.0 and min(fused.values()) == 0.0


def test_article_evidence_lifts_an_articles_lead_not_all_its_paragraphs():
    # article 0 matches the question as a whole (strong BM25); its second paragraph is weak
    # on its own, and must not pass article 1's paragraph that answers
    dense = ranking([1, 2, 3], [0.80, 0.40, 0.70])
    passages = ranking([1, 2, 3], [3.0, 1.0, 2.5])
    documents = ranking([0, 1], [9.0, 2.0])
    row = np.array([-1, 0, 0, 1])
    ids = fuse(dense, passages, documents, row, Weights(document=0.7))[0].tolist()
    assert ids == [1, 3, 2]
    flat = fuse(dense, passages, documents, row, Weights(document=0.0))[0].tolist()
    assert flat == [1, 3, 2]  # the same order as the passages' own evidence


def test_article_evidence_reaches_a_near_tie_of_the_lead_and_fades_behind_it():
    # article 0's passages 1 and 2 are almost tied on their own evidence, passage 3 trails
    # far behind; article 1 (passage 4) has weaker article evidence
    dense = ranking([1, 2, 3, 4], [0.70, 0.69, 0.20, 0.72])
    passages = ranking([1, 2, 3, 4], [2.0, 2.0, 0.5, 2.0])
    documents = ranking([0, 1], [9.0, 1.0])
    row = np.array([-1, 0, 0, 0, 1])
    lead_only = fuse(dense, passages, documents, row, Weights(lead_margin=0.0))[0].tolist()
    shared = as_dict(fuse(dense, passages, documents, row, Weights(lead_margin=0.25)))
    assert lead_only == [1, 4, 2, 3]  # the near-tie falls below the other article's passage
    assert list(shared) == [1, 2, 4, 3]  # it shares its article's evidence; the far one does not gain a place
    assert shared[3] < shared[4]
    # an article's best passage is its leader at any margin, so articles rank the same
    for margin in (0.0, 0.1, 0.25, 1.0):
        best = {}
        for pid in fuse(dense, passages, documents, row, Weights(lead_margin=margin))[0].tolist():
            best.setdefault(row[pid], pid)
        assert best == {0: 1, 1: 4}


def test_a_passage_only_one_side_found_counts_as_below_that_sides_list():
    # passage 3 is not in the dense list: it ranked below 0.2 there, not at cosine 0
    dense, passages = ranking([1, 2], [0.6, 0.2]), ranking([3], [5.0])
    documents, row = ranking([0], [1.0]), np.array([-1, 0, 1, 2])
    w = Weights(dense=0.5, document=0.0)
    fused = as_dict(fuse(dense, passages, documents, row, w))
    own = 0.5 * z([0.6, 0.2, 0.2]) + 0.5 * z([0.0, 0.0, 5.0])
    assert fused == pytest.approx(dict(zip([1, 2, 3], normalise(own))))


def test_equal_scores_rank_by_passage_id():
    ids, _ = ranking([7, 3, 5], [0.5, 0.5, 0.9])
    assert ids.tolist() == [5, 3, 7]


def test_sentence_blend_keeps_the_passage_score_without_sentences():
    ranked = ranking([1, 2], [0.8, 0.6])
    blended = ranking(ranked[0], blended_scores(ranked, np.array([0.2, np.nan]), weight=0.5))
    assert as_dict(blended) == pytest.approx({1: 0.5, 2: 0.6})
    assert blended[0].tolist() == [2, 1]


def seed_questions() -> list[dict]:
    """Reader questions about the seeds, each with the passage(s) that answer it: a passage
    of one of `docs` holding the words `passage`. Written before measuring."""
    path = Path(__file__).parent / "data" / "seed_questions.json"
    return json.loads(path.read_text(encoding="utf-8"))


def test_question_set_ranks_the_answering_passage_near_the_top(searcher):
    # Margins below what the default measures (scripts/evaluate tests/data/seed_questions.json:
    # 61 of 68 first, 68 in the top 3): the int8 model's vectors move a little with the
    # CPU and the batch, and one question's place must not decide the suite.
    questions = seed_questions()
    assert len(questions) >= 60
    ranks, op_ed_alone = {}, []
    for q in questions:
        hits = searcher.search(q["question"], k=5)
        ranks[q["question"]], hit = answer_rank(hits, q["answers"])
        cited = {c.doc_id for c in hit.citations} if hit is not None else set()
        if cited & OP_ED and not OP_ED <= cited:
            op_ed_alone.append(q["question"])
    missed = {q: r for q, r in ranks.items() if r is None or r > 3}
    assert len(missed) <= 2, missed
    assert sum(r == 1 for r in ranks.values()) >= 0.8 * len(ranks), {q: r for q, r in ranks.items() if r != 1}
    assert not op_ed_alone  # an answer from the op-ed cites both of its translations
