"""int8 sentence vectors: how close they stay to the model's float32 vectors, and format-2
indexes (float32 rows, no scales) still searched and updated."""

import json

import numpy as np
import pytest

from search import Searcher
from search.index import sentence_vectors, store
from search.index.generations import current
from search.index.sentence_vectors import SentenceVectors


@pytest.fixture(scope="module")
def real_vectors(seed_index) -> np.ndarray:
    """The seeds' passage vectors as the model gave them (the seed index is flat float32)."""
    import faiss

    flat = faiss.read_index(str(current(seed_index) / store.VECTORS))
    return faiss.downcast_index(flat.index).reconstruct_n(0, flat.ntotal)


def test_quantised_rows_keep_their_direction_and_scores(real_vectors):
    codes, scales = sentence_vectors.quantize(real_vectors)
    assert codes.dtype == np.int8 and scales.dtype == np.float32 and np.abs(codes).max() == 127
    restored = SentenceVectors(codes, scales)
    rows = restored.rows(slice(None))
    cosine = (rows * real_vectors).sum(1) / np.linalg.norm(rows, axis=1)
    assert cosine.min() > 0.9999
    # a query's scores against any rows: as the float32 vectors give them, to ~1e-3
    query = real_vectors[7]
    picked = np.array([3, 0, 11, 5])
    np.testing.assert_allclose(restored.scores(picked, query), real_vectors[picked] @ query, atol=3e-3)
    np.testing.assert_allclose(restored.scores(picked, query), rows[picked] @ query, rtol=1e-5)
    np.testing.assert_array_equal(sentence_vectors.quantize(rows)[0], codes)  # re-quantising changes nothing


def test_a_zero_row_and_no_rows_quantise():
    codes, scales = sentence_vectors.quantize(np.zeros((1, 4), dtype=np.float32))
    assert codes.tolist() == [[0, 0, 0, 0]] and np.isfinite(scales).all()
    codes, scales = sentence_vectors.quantize(np.empty((0, 4), dtype=np.float32))
    assert codes.shape == (0, 4) and scales.shape == (0,)


def _as_format_2(index_dir):
    """Rewrite an index's sentence vectors the way format 2 stored them: float32 rows."""
    generation = current(index_dir)
    rows = SentenceVectors.open(generation).rows(slice(None))
    np.save(generation / store.SENTENCE_VECTORS, rows, allow_pickle=False)
    (generation / store.SENTENCE_SCALES).unlink()
    manifest = json.loads((generation / store.MANIFEST).read_text())
    manifest["format_version"] = 2
    del manifest["checksums"][store.SENTENCE_SCALES]
    manifest["checksums"][store.SENTENCE_VECTORS] = store.file_checksum(generation / store.SENTENCE_VECTORS)
    (generation / store.MANIFEST).write_text(json.dumps(manifest))
    return rows


def test_a_format_2_index_searches_as_before_and_updates_to_the_current_format(searcher, index_copy, tmp_path):
    from indexer.update import update

    from helpers import SEEDS

    rows = _as_format_2(index_copy)
    old = Searcher.open(index_copy)
    assert old.manifest["format_version"] == 2
    for question in ("How many North Korean soldiers were sent?", "Which countries founded BRICS?"):
        ours, theirs = searcher.search(question, k=5), old.search(question, k=5)
        assert [h.text for h in theirs] == [h.text for h in ours]
        assert [h.highlight for h in theirs] == [h.highlight for h in ours]
        np.testing.assert_allclose([h.score for h in theirs], [h.score for h in ours], atol=1e-5)

    article = tmp_path / "new.txt"
    article.write_text(next(SEEDS.glob("*.txt")).read_text().replace("Korea", "Corea"))
    update(index_copy, [article])
    generation = current(index_copy)
    manifest = json.loads((generation / store.MANIFEST).read_text())
    assert manifest["format_version"] == store.FORMAT_VERSION and store.SENTENCE_SCALES in manifest["checksums"]
    updated = SentenceVectors.open(generation)
    assert len(updated) == manifest["counts"]["sentences"] > len(rows)
    # the kept sentences come first, in their old order: the same vectors, now as int8 rows
    np.testing.assert_allclose(updated.rows(slice(0, len(rows))), rows, rtol=1e-6, atol=1e-8)
    assert Searcher.open(index_copy).search("How many North Korean soldiers were sent?", k=1)[0].highlight


def test_a_sentence_that_is_a_whole_passage_is_stored_as_its_own_embedding(seed_index, embedder):
    """A one-sentence passage's sentence takes the passage's vector rather than being
    embedded again: it is stored exactly as embedding the sentence alone gives it."""
    import sqlite3

    directory = current(seed_index)
    with sqlite3.connect(directory / store.STORE) as db:
        rows = db.execute('SELECT s.id, substr(d.text, s.start + 1, s."end" - s.start), '
                          'p.start = s.start AND p."end" = s."end" FROM sentences s '
                          "JOIN passages p ON p.id = s.passage_id JOIN documents d ON d.doc_id = p.doc_id "
                          "ORDER BY s.id").fetchall()
    whole = [r for r in rows if r[2]][:4]
    part = [r for r in rows if not r[2]][:4]
    assert len(whole) == 4 and len(part) == 4
    stored = SentenceVectors.open(directory)
    ids = np.array([r[0] for r in whole + part])
    fresh = embedder.embed([r[1] for r in whole + part])
    np.testing.assert_array_equal(stored.rows(ids), SentenceVectors(*sentence_vectors.quantize(fresh)).rows(slice(None)))


def test_sentences_are_embedded_once_each_and_never_again_for_their_passage():
    from indexer.build import Additions, BuildOptions

    class Recording:
        def __init__(self):
            self.calls = []

        def embed(self, texts, batch_size=32, progress=False):
            self.calls.append(list(texts))
            return np.array([[len(t), i] for i, t in enumerate(texts)], dtype=np.float32)

    batch = Additions(embedder=None, options=BuildOptions())
    batch.texts = ["One sentence.", "Two. Three."]
    batch.sentence_texts = ["One sentence.", "Two.", "Three.", "Two."]
    recording = Recording()
    out = batch.embed_sentences(recording, np.array([[9, 9], [8, 8]], dtype=np.float32), 64)
    assert recording.calls == [["Two.", "Three."]]
    np.testing.assert_array_equal(out, [[9, 9], [4, 0], [6, 1], [4, 0]])
    batch.sentence_texts = ["One sentence."]
    assert batch.embed_sentences(recording, np.array([[9, 9], [8, 8]], dtype=np.float32), 64).tolist() == [[9, 9]]
    assert len(recording.calls) == 1


def test_rows_read_from_the_file_are_the_array_s(tmp_path):
    """arrays.Rows (pread, not a mapping): any slice or list of rows, runs and repeats,
    the bounds checked."""
    from search.index.arrays import Rows

    rng = np.random.default_rng(0)
    for array in (rng.integers(-127, 127, (1000, 384)).astype(np.int8), np.zeros((0, 4), np.int8),
                  rng.random((50, 8)).astype(np.float32)):
        np.save(tmp_path / "a.npy", array)
        rows = Rows(tmp_path / "a.npy")
        assert (len(rows), rows.shape, rows.dtype) == (len(array), array.shape, array.dtype)
        for index in (slice(None), slice(3, 17), slice(10, 2), slice(0, None, 7), slice(None, None, -1)):
            np.testing.assert_array_equal(rows[index], array[index])
        if len(array):
            for _ in range(50):
                index = rng.integers(0, len(array), rng.integers(0, 40))
                np.testing.assert_array_equal(rows[index], array[index])
            np.testing.assert_array_equal(rows[[5, 6, 7, 2, 3, 9, 9, 10]], array[[5, 6, 7, 2, 3, 9, 9, 10]])
            with pytest.raises(IndexError):
                rows[[len(array)]]


def test_mapped_and_read_sentence_vectors_give_the_same_answers(seed_index, searcher, monkeypatch):
    """A small index's sentence rows are mapped and a big one's read where asked
    (SEARCH_SENTENCES_MAPPED_MB): which one a searcher uses changes its cost, never its answers."""
    from search.index.arrays import Rows

    assert isinstance(searcher._sentence_vectors._codes, np.ndarray)  # the seeds: a few hundred KB, mapped
    monkeypatch.setenv("SEARCH_SENTENCES_MAPPED_MB", "0")
    read = Searcher.open(seed_index)
    assert isinstance(read._sentence_vectors._codes, Rows)
    for question in ("How many North Korean soldiers were sent to Russia?", "Who wrote the opinion piece?",
                     "What does Russia want from a peace settlement?"):
        mapped_hits, read_hits = searcher.search(question, 10), read.search(question, 10)
        assert [(h.citations[0].doc_id, h.text, h.score, h.highlight) for h in mapped_hits] == \
               [(h.citations[0].doc_id, h.text, h.score, h.highlight) for h in read_hits]
