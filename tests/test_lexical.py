"""The BM25 index as the service reads it: bm25s's files, read without bm25s."""

import json
import shutil

import numpy as np
import pytest

from search import IndexCorrupt
from search.index import store
from search.index.generations import current
from search.index.lexical import LexicalIndex, terms


def test_scores_are_bm25s_own(seed_index):
    import bm25s

    directory = current(seed_index) / store.PASSAGE_LEXICAL
    ours = LexicalIndex.load(directory)
    theirs = bm25s.BM25.load(str(directory), allow_pickle=False)
    for question in ("How many North Korean soldiers were sent?", "Lukashenko foreign troops", "Kursk incursion"):
        words = [t for t in terms(question) if t in theirs.vocab_dict]
        assert words
        np.testing.assert_allclose(ours._scores([theirs.vocab_dict[t] for t in words]),
                                   theirs.get_scores(words), rtol=1e-5)


def test_an_index_of_another_bm25_variant_is_refused(seed_index, tmp_path):
    directory = tmp_path / "passages"
    shutil.copytree(current(seed_index) / store.PASSAGE_LEXICAL, directory)
    params = json.loads((directory / LexicalIndex.PARAMS).read_text())
    (directory / LexicalIndex.PARAMS).write_text(json.dumps(params | {"method": "bm25+"}))
    with pytest.raises(IndexCorrupt, match="'bm25\\+' BM25 index, not robertson"):
        LexicalIndex.load(directory)


def test_best_holds_the_rows_search_ranks_in_row_order(seed_index):
    index = LexicalIndex.load(current(seed_index) / store.PASSAGE_LEXICAL)
    for question, depth in (("North Korean soldiers in Kursk", 1000), ("Russia Ukraine war troops", 5)):
        ranked_ids, ranked_scores = index.search(question, depth)
        rows, scores = index.best(question, depth)
        assert len(rows) == len(ranked_ids) > 0
        assert (np.diff(rows) > 0).all()  # row order, each once
        by_row = dict(zip(ranked_ids.tolist(), ranked_scores.tolist()))
        assert dict(zip(rows.tolist(), scores.tolist())) == by_row


def test_question_words_are_not_searched_for():
    from search.index.lexical import search_terms, terms

    assert search_terms("What did Zelensky say, according to Kyiv?") == ("zelenski", "sai", "kyiv")
    assert search_terms("Who's in charge?") == ("charg",)
    assert search_terms("What did WHO declare?") == ("who", "declar")  # in capitals: a name
    assert terms("What did Zelensky say?")[:1] == ["what"]  # documents keep every word
