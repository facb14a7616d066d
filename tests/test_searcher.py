"""The Searcher over a real index of the seeds, with the real model."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from search import BadRequest, IndexCorrupt, IndexMismatch, IndexNotFound, Searcher
from search.index.generations import current

# (question as a reader would ask it, acceptable doc ids, words the expected passage holds)
QUESTIONS = [
    ("How many Russian casualties since 2022", {"000", "001"}, "710,000"),
    ("What did Belarus's leader think of sending foreign troops?", {"004"}, "Lukashenko"),
    ("What gift did Putin give Kim Jong-un?", {"002"}, "Auxus"),
    ("How many North Korean soldiers were sent according to South Korea's spy agency?", {"003"}, "12,000 men"),
    ("Which missiles has North Korea sent to Russia?", {"003"}, "KN-23"),
    ("What does Article 4 of the partnership treaty say?", {"000", "001"}, "Article 4"),
    ("When did Ukraine launch its incursion into Kursk?", {"004"}, "August 6"),
    ("How many tank barrels is Russia losing each month?", {"000", "001"}, "320"),
    ("What did the White House say the move reflects?", {"003"}, "desperation"),
    ("What is Putin's short-term war goal?", {"000", "001"}, "out of Kursk"),
    ("Which countries founded BRICS?", {"004"}, "Brazil, Russia, India, and China"),
    ("Could starving North Koreans cross into China and Russia?", {"000", "001"}, "Tumen River"),
    ("What did Ukraine claim about North Korean officers killed near Donetsk?", {"003"}, "six North Korean officers"),
]


@pytest.mark.parametrize("question,docs,holds", QUESTIONS, ids=[q for q, _, _ in QUESTIONS])
def test_expected_passage_ranks_first(searcher, question, docs, holds):
    top = searcher.search(question, k=5)[0]
    assert top.citations[0].doc_id[:3] in docs
    assert holds in top.text


def test_hits_are_ranked_and_cited(searcher):
    hits = searcher.search("North Korean troops in Kursk", k=10)
    assert [h.rank for h in hits] == list(range(1, 11))
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for hit in hits:
        c = hit.citations[0]
        assert searcher.document(c.doc_id)["text"][c.start:c.end] == hit.text
        assert c.source == f"{c.doc_id}.txt"


def test_hit_dict_holds_every_field(searcher):
    import dataclasses

    def fields(hit):  # `more` is there only for group=article
        return {k: v for k, v in dataclasses.asdict(hit).items() if k != "more" or v is not None}

    hits = searcher.search("Kim Jong Un", k=10)  # collapsed hits cite several sources
    assert any(len(h.citations) > 1 for h in hits) and all(h.highlight for h in hits)
    assert [h.to_dict() for h in hits] == [fields(h) for h in hits] and not any("more" in h.to_dict() for h in hits)
    no_highlight = searcher.search("Kim Jong Un", k=1, highlight=False)[0]
    assert no_highlight.to_dict() == fields(no_highlight)
    grouped = searcher.search("Kim Jong Un", k=3, group="article")
    assert [h.to_dict() for h in grouped] == [dataclasses.asdict(h) for h in grouped]


def test_citation_offsets_slice_the_original_file(searcher):
    from helpers import SEEDS

    for hit in searcher.search("Kim Jong Un", k=30):
        for c in hit.citations:  # every copy's offsets slice its own file
            passage = (SEEDS / c.source).read_text(encoding="utf-8")[c.start:c.end]
            assert passage == hit.text if c is hit.citations[0] else passage


def test_citation_carries_title(searcher):
    hit = searcher.search("What gift did Putin give Kim Jong-un?", k=1)[0]
    assert hit.citations[0].title == "Putin, Kim Jong-un and North Korea’s Ukraine War Involvement"


def test_k_larger_than_the_index_returns_every_passage(searcher):
    n = searcher.describe()["passages"]
    assert n < 100
    assert len(searcher.search("war", k=100, collapse=False)) == n
    assert len(searcher.search("war", k=100)) == n - 14  # the op-ed's 14 translated pairs, once each


def test_batch_equals_single(searcher):
    questions = [q for q, _, _ in QUESTIONS[:4]]
    batch = searcher.search_batch(questions, k=3)
    for question, hits in zip(questions, batch):
        single = searcher.search(question, k=3)
        assert [h.text for h in hits] == [h.text for h in single]
        assert [h.score for h in hits] == pytest.approx([h.score for h in single], abs=1e-4)


@pytest.mark.parametrize("query,k,code", [
    ("", 5, "empty_query"), ("   \n\t", 5, "empty_query"), ("x" * 1001, 5, "query_too_long"),
    ("war", 0, "invalid_k"), ("war", 101, "invalid_k"), ("war", "5", "invalid_k"), ("war", True, "invalid_k"),
    ("bad \ud800 surrogate", 5, "invalid_query"), (None, 5, "invalid_query"),
])
def test_bad_queries_are_refused(searcher, query, k, code):
    with pytest.raises(BadRequest) as e:
        searcher.search(query, k=k)
    assert e.value.code == code


def test_missing_index_says_what_to_run(tmp_path):
    with pytest.raises(IndexNotFound, match=r"no index at .*: run `python -m indexer build seeds --index"):
        Searcher.open(tmp_path / "nowhere")


def test_index_built_with_another_model_is_refused(index_copy):
    manifest_path = current(index_copy) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["model"]["name"] = "sentence-transformers/all-mpnet-base-v2"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="built with model 'sentence-transformers/all-mpnet-base-v2'"):
        Searcher.open(index_copy)
    # and searching it with the model it names is what the message suggests
    with pytest.raises(IndexMismatch, match="rebuild it with this model"):
        Searcher.open(index_copy, model="all-MiniLM-L6-v2")


def test_index_of_another_dimension_is_refused(index_copy):
    manifest_path = current(index_copy) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["model"]["dimension"] = 768
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="768-dimensional vectors but model .* makes 384"):
        Searcher.open(index_copy)


def test_corrupted_index_is_refused(index_copy):
    with open(current(index_copy) / "vectors.faiss", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(IndexCorrupt, match="vectors.faiss fails its checksum"):
        Searcher.open(index_copy)


def test_an_index_missing_a_file_is_refused_by_name(index_copy):
    generation = current(index_copy)
    (generation / "sentence_scales.npy").unlink()
    with pytest.raises(IndexCorrupt, match="is missing sentence_scales.npy"):
        Searcher.open(index_copy)
    (generation / "sentence_scales.npy").mkdir()  # a directory where the file was
    with pytest.raises(IndexCorrupt, match="is missing sentence_scales.npy"):
        Searcher.open(index_copy)


def _as_format_3(index_dir):
    """Rewrite an index's manifest the way format 3 wrote it: bare SHA-256 checksums."""
    generation = current(index_dir)
    manifest = json.loads((generation / "manifest.json").read_text())
    manifest["format_version"] = 3
    manifest["checksums"] = {name: hashlib.sha256((generation / name).read_bytes()).hexdigest()
                             for name in manifest["checksums"]}
    (generation / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def test_a_format_3_index_with_sha256_checksums_is_verified_and_updated_in_place(index_copy, tmp_path):
    from indexer.update import update

    from helpers import SEEDS

    old = _as_format_3(index_copy)
    assert Searcher.open(index_copy).search("Which countries founded BRICS?", k=1)
    article = tmp_path / "new.txt"
    article.write_text(next(SEEDS.glob("*.txt")).read_text().replace("Korea", "Corea"))
    summary = update(index_copy, [article])
    manifest = json.loads((current(index_copy) / "manifest.json").read_text())
    # a segment appended (no merge, which would rewrite every file), its own files with the
    # new hash, the carried base's SHA-256 digests as they were
    assert not summary.merged and manifest["format_version"] == 4
    assert manifest["checksums"]["vectors.faiss"] == old["checksums"]["vectors.faiss"]
    assert all(digest.startswith("xxh3_128:") for name, digest in manifest["checksums"].items()
               if name.startswith("segments/"))
    with open(current(index_copy) / "vectors.faiss", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(IndexCorrupt, match="vectors.faiss fails its checksum"):
        Searcher.open(index_copy)


def test_other_format_version_is_refused(index_copy):
    manifest_path = current(index_copy) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 99
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="format version 99"):
        Searcher.open(index_copy)


def test_index_is_plain_data(seed_index):
    # FAISS's own format, SQLite, JSON and .npy arrays: nothing that executes code when loaded
    generation = current(seed_index)
    files = sorted(str(p.relative_to(generation)) for p in generation.rglob("*") if p.is_file())
    assert [f for f in files if not f.startswith("lexical/")] == ["manifest.json", "sentence_scales.npy", "sentences.npy",
                                                                  "store.sqlite", "vectors.faiss"]
    lexical = [f for f in files if f.startswith("lexical/")]
    assert {f.split("/")[1] for f in lexical} == {"passages", "documents"}
    assert {Path(f).suffix for f in lexical} == {".json", ".npy"}
    for f in lexical:
        if f.endswith(".npy"):
            np.load(generation / f, allow_pickle=False)  # raises on a pickled array


def test_a_repeated_question_reuses_its_embedding(searcher, monkeypatch):
    question = "Who fired the Kursk commander?"
    first = searcher.search(question, k=3)
    calls = []
    real = searcher.embedder.embed
    monkeypatch.setattr(searcher.embedder, "embed", lambda *a, **kw: calls.append(a) or real(*a, **kw))
    assert [h.text for h in searcher.search(question, k=3)] == [h.text for h in first]
    assert calls == []
    searcher.search("A question not asked before about Kim Jong Un", k=3)
    assert len(calls) == 1


def test_the_query_cache_is_bounded(searcher, monkeypatch):
    monkeypatch.setattr(searcher, "query_cache_size", 2)
    for question in ("war", "peace", "missiles", "troops"):
        searcher.search(question, k=1, mode="dense")
    assert list(searcher._query_cache) == ["missiles", "troops"]


def test_bm25_beside_the_model_ranks_as_inline(searcher, monkeypatch):
    # a lone search runs BM25 on the spare core while the model encodes; the results
    # must be those of running it inline, as under load
    from search.retrieval import idle as module

    helper, handed = module.helper(), []

    class Counting:
        def submit(self, *args):
            handed.append(args[1])
            return helper.submit(*args)

    monkeypatch.setattr(module, "helper", Counting)
    questions = [q for q, _, _ in QUESTIONS[:4]]
    ranked = {}
    for beside in (True, False):
        monkeypatch.setattr(module, "spare_core", lambda: beside)
        searcher._query_cache.clear()  # the model has work to do
        ranked[beside] = [[(h.text, h.score) for h in searcher.search(q, k=10)] for q in questions]
    assert ranked[True] == ranked[False]
    assert handed == [[q] for q in questions]  # beside the model only when a core was spare
    monkeypatch.setattr(module, "spare_core", lambda: True)
    searcher.search(questions[0], k=10)
    assert len(handed) == len(questions)  # a cached vector: nothing to overlap with
