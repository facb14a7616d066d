"""The BM25 index: bm25s's scores and files, built and read without bm25s, and extended by updates."""

import json
import shutil

import numpy as np
import pytest

from search import IndexCorrupt
from search.index import store
from search.index.generations import current
from search.index.lexical import LexicalIndex, Postings, terms


def _seed_texts(seed_index) -> list[str]:
    with store.connect(current(seed_index) / store.STORE) as conn:
        return [text for (text,) in conn.execute("SELECT text FROM passages ORDER BY id")]


def test_scores_are_bm25s_own(seed_index, tmp_path):
    import bm25s

    texts = _seed_texts(seed_index)
    ours = LexicalIndex.build(texts)
    ours.save(tmp_path)
    theirs = bm25s.BM25(k1=1.2, b=0.75, method="robertson")
    theirs.index([terms(t) for t in texts], show_progress=False)
    from_file = bm25s.BM25.load(str(tmp_path), allow_pickle=False)  # bm25s reads what is saved
    for question in ("How many North Korean soldiers were sent?", "Lukashenko foreign troops", "Kursk incursion"):
        words = [t for t in terms(question) if t in theirs.vocab_dict]
        assert words
        rows, matched = ours.best_of(tuple(words), len(texts))  # every row that matches
        scores = np.zeros(len(texts))
        scores[rows] = matched
        assert scores.max() > 0
        np.testing.assert_allclose(scores, theirs.get_scores(words), rtol=1e-5)
        np.testing.assert_allclose(scores, from_file.get_scores(words), rtol=1e-5)


def test_the_scores_of_given_rows_are_what_the_full_ranking_gives_them(seed_index, tmp_path):
    """Fusion asks the articles' index for the candidates' articles only (`scores_of`):
    each row's score as the full ranking gives it, bit for bit, however far down it comes,
    and 0 for a row that holds none of the terms; from memory and from the saved files."""
    from search.index.lexical import search_terms

    texts = _seed_texts(seed_index)
    built = LexicalIndex.build(texts)
    built.save(tmp_path)
    for index in (built, LexicalIndex.load(tmp_path)):
        for question in ("Does Lukashenko support sending foreign troops?", "710,000 casualties", "Kursk"):
            words = search_terms(question)
            rows, scores = index.best_of(words, len(texts))  # every row that matches
            expected = np.zeros(len(texts))
            expected[rows] = scores
            every = index.scores_of(words, np.arange(len(texts)))
            np.testing.assert_array_equal(every, expected)
            assert 3 < (every > 0).sum() < len(texts)
            beyond = np.setdiff1d(rows, index.best_of(words, 3)[0])[:5]  # below a depth-3 ranking
            np.testing.assert_array_equal(index.scores_of(words, beyond), expected[beyond])
    assert not built.scores_of(search_terms("zzyzx"), np.arange(5)).any()


def test_an_extended_index_scores_as_a_fresh_build(seed_index, tmp_path):
    texts = _seed_texts(seed_index)
    LexicalIndex.build(texts[:40]).save(tmp_path / "old")
    kept = np.array([i for i in range(40) if i not in (3, 17)])  # two rows deleted
    extended = LexicalIndex.extended(Postings.read(tmp_path / "old"), kept, texts[40:])
    fresh = LexicalIndex.build([texts[i] for i in kept] + texts[40:])
    assert extended._matrix["num_docs"] == fresh._matrix["num_docs"] == len(texts) - 2
    for question in ("North Korean soldiers in Kursk", "Lukashenko foreign troops", "artillery shells"):
        ranked, fresh_ranked = extended.search(question, 20), fresh.search(question, 20)
        assert len(ranked[0]) > 3
        np.testing.assert_array_equal(ranked[0], fresh_ranked[0])
        np.testing.assert_array_equal(ranked[1], fresh_ranked[1])  # bit for bit: the same statistics
    # saved and extended again, rows reordered, nothing new
    extended.save(tmp_path / "again")
    rows = [texts[i] for i in kept] + texts[40:]
    again = LexicalIndex.extended(Postings.read(tmp_path / "again"), np.arange(len(rows))[::-1].copy(), [])
    reordered = LexicalIndex.build(rows[::-1])
    np.testing.assert_array_equal(again.search("Kursk", 30)[1], reordered.search("Kursk", 30)[1])


def test_an_index_saved_without_counts_is_rebuilt_not_extended(seed_index, tmp_path):
    LexicalIndex.build(_seed_texts(seed_index)).save(tmp_path)
    (tmp_path / LexicalIndex.COUNTS).unlink()
    assert Postings.read(tmp_path) is None
    assert LexicalIndex.extended(None, np.arange(5), ["more text"]) is None


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


def test_an_update_ranks_as_a_fresh_build_of_the_same_documents(tmp_path, embedder):
    """BM25 after an add and a removal (extended from the counts, not rebuilt) gives the
    fresh build's scores: corpus statistics follow the documents, not the history."""
    from indexer import build
    from indexer.update import update
    from search import Searcher

    from helpers import SEEDS

    first, second, everything = (tmp_path / name for name in ("first", "second", "all"))
    for directory, names in ((first, ("000", "001", "002", "003")), (second, ("004",)),
                             (everything, ("000", "001", "003", "004"))):
        directory.mkdir()
        for path in SEEDS.glob("*.txt"):
            if path.name[:3] in names:
                shutil.copy(path, directory / path.name)
    build([first], tmp_path / "updated")
    update(tmp_path / "updated", [second], remove=[p.stem for p in first.glob("002_*")])
    assert (current(tmp_path / "updated") / store.PASSAGE_LEXICAL / LexicalIndex.COUNTS).exists()
    build([everything], tmp_path / "fresh")
    updated, fresh = Searcher.open(tmp_path / "updated"), Searcher.open(tmp_path / "fresh")
    for question in ("Lukashenko foreign troops", "North Korean soldiers in Kursk", "artillery shells"):
        ours, theirs = updated.search(question, 10, "lexical"), fresh.search(question, 10, "lexical")
        assert len(ours) >= 3
        assert [(h.citations[0].doc_id, h.text, round(h.score, 6)) for h in ours] == \
            [(h.citations[0].doc_id, h.text, round(h.score, 6)) for h in theirs]


def test_top_rows_are_a_full_sorts_with_ties_to_the_first_rows():
    """top_rows narrows a large score array by a cut estimated from a sample: what it keeps
    is exactly what sorting every row gives, ties at the cut to the lowest rows, with and
    without a mask, including when the estimate keeps too few."""
    from search.index.lexical import top_rows

    rng = np.random.default_rng(7)
    for trial in range(200):
        n = int(rng.integers(1, 200_000))
        scores = np.round(rng.exponential(1.0, n), int(rng.integers(1, 4)))  # rounded: many ties
        scores[rng.random(n) < rng.random()] = 0.0
        mask = rng.random(n) < 0.7 if trial % 3 == 0 else None
        depth = int(rng.choice([1, 10, 1000]))
        allowed = np.where(mask, scores, 0.0) if mask is not None else scores
        positive = np.flatnonzero(allowed > 0)
        expected = np.sort(positive[np.lexsort((positive, -allowed[positive]))][:depth])
        rows, got = top_rows(scores, depth, mask)
        assert rows.tolist() == expected.tolist() and got.tolist() == allowed[expected].tolist()
    # an archive of copies: every score held by hundreds of rows, the estimated cut on a tie
    for copies in (922, 999, 1000, 1001):
        scores = np.tile(rng.permutation(np.arange(1.0, 301.0)), copies)
        rows, got = top_rows(scores, 1000)
        expected = np.sort(np.lexsort((np.arange(len(scores)), -scores))[:1000])
        assert rows.tolist() == expected.tolist() and got.tolist() == scores[expected].tolist()
