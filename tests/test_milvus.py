"""The milvus vector store against a real Milvus server: `milvus-lite server` on loopback,
reached over gRPC by the same MilvusClient code a cluster would be."""

from __future__ import annotations

import gc
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import SEEDS, free_port

pymilvus = pytest.importorskip("pymilvus", reason="pymilvus is not installed (pip install '.[milvus]')")
pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (pip install '.[milvus]')")

QUESTIONS = [
    "How many North Korean troops are in Russia?",
    "What gift did Putin give Kim Jong-un?",
    "Lukashenko",
    "How did Ukraine strike targets inside Russia?",
]


@pytest.fixture(scope="module")
def milvus_index(milvus, tmp_path_factory, embedder) -> Path:
    from indexer import BuildOptions, build

    index = tmp_path_factory.mktemp("milvus-seed") / "index"
    build([SEEDS], index, options=BuildOptions(vector_store=f"milvus://{milvus[0]}:{milvus[1]}/news"))
    return index


def _client(milvus):
    return pymilvus.MilvusClient(uri=f"http://{milvus[0]}:{milvus[1]}")


def test_the_seam_answers_alike_on_both_backends(milvus, embedder):
    from search.index import vector_index
    from search.index.vector_store import FaissStore, MilvusStore, parse

    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((500, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    local = FaissStore(vector_index.build(vectors, "flat"))
    remote = MilvusStore.create(parse(f"milvus://{milvus[0]}:{milvus[1]}/seam"), 384, len(vectors))
    try:
        remote.add(np.arange(len(vectors)), vectors)
        remote.ready()
        assert remote.count() == local.count() == 500
        queries = vectors[:3] + 0.05 * rng.standard_normal((3, 384)).astype(np.float32)
        (ls, li), (rs, ri) = local.search(queries, 10), remote.search(queries, 10)
        assert (li == ri).all() and np.allclose(ls, rs, atol=1e-5)
        allowed = np.zeros(500, dtype=bool)
        allowed[[7, 70, 170, 400]] = True
        (_, li), (_, ri) = local.search(queries, 10, allowed), remote.search(queries, 10, allowed)
        assert sorted(ri[0][ri[0] >= 0]) == [7, 70, 170, 400] and (li == ri).all()
        best = int(local.search(queries, 1)[1][0][0])
        broad = np.ones(500, dtype=bool)
        broad[[best, 250]] = False  # every passage but two, the best one among them
        (_, li), (_, ri) = local.search(queries, 10, broad), remote.search(queries, 10, broad)
        assert (li == ri).all() and broad[ri[ri >= 0]].all() and best not in ri[0]
        np.testing.assert_allclose(remote.vectors(np.array([5, 1])), vectors[[5, 1]], atol=1e-6)
        remote.remove(np.array([0, 1]))
        local.remove(np.array([0, 1]))
        assert remote.count() == local.count() == 498
        assert remote.describe()["backend"] == "milvus" and local.describe()["backend"] == "faiss"
    finally:
        remote.drop()
    assert not _client(milvus).has_collection(remote.collection)


def test_an_index_on_milvus_keeps_no_vectors_of_its_own(milvus_index, milvus):
    from search.index.generations import current

    manifest = json.loads((current(milvus_index) / "manifest.json").read_text())
    described = manifest["vector_index"]
    assert described["backend"] == "milvus" and described["uri"] == f"milvus://{milvus[0]}:{milvus[1]}/news"
    assert described["collection"].startswith("news_") and _client(milvus).has_collection(described["collection"])
    assert not (current(milvus_index) / "vectors.faiss").exists()
    assert "vectors.faiss" not in manifest["checksums"]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_same_passages_in_the_same_order_as_faiss(milvus_index, searcher, mode):
    from search import Searcher

    remote = Searcher.open(milvus_index)
    assert remote.describe()["vector_index"] == "Milvus collection"
    for question in QUESTIONS:
        for collapse in (True, False):
            ours = remote.search(question, k=10, mode=mode, collapse=collapse)
            theirs = searcher.search(question, k=10, mode=mode, collapse=collapse)
            assert [(h.text, h.citations, h.highlight) for h in ours] == \
                   [(h.text, h.citations, h.highlight) for h in theirs]
            assert np.allclose([h.score for h in ours], [h.score for h in theirs], atol=1e-5)


def test_filters_and_context_through_milvus(milvus_index, searcher):
    from search import Filters, Searcher

    remote = Searcher.open(milvus_index)
    doc = searcher.search("Lukashenko", k=1)[0].citations[0].doc_id
    only = Filters.of(doc_id=[doc])
    ours = remote.search("North Korean troops", k=5, filters=only)
    assert ours and {c.doc_id for h in ours for c in h.citations} == {doc}
    assert [h.text for h in ours] == [h.text for h in searcher.search("North Korean troops", k=5, filters=only)]
    ours, theirs = (s.context("What gift did Putin give Kim Jong-un?", k=3) for s in (remote, searcher))
    assert ours["context"] == theirs["context"]
    for a, b in zip(ours["sources"], theirs["sources"], strict=True):  # scores agree to float noise
        assert a.pop("score") == pytest.approx(b.pop("score"), abs=1e-5) and a == b


def test_the_http_service_answers_from_milvus(milvus_index, searcher):
    from search.service.app import create_app

    client = create_app({"INDEX": str(milvus_index), "TESTING": True}).test_client()
    response = client.get("/search", query_string={"q": "What gift did Putin give Kim Jong-un?", "k": 3})
    assert response.status_code == 200
    expected = searcher.search("What gift did Putin give Kim Jong-un?", k=3)
    assert [r["text"] for r in response.get_json()["results"]] == [h.text for h in expected]
    assert client.get("/health").get_json()["vector_index"] == "Milvus collection"


def test_updates_write_their_vectors_into_the_collection_and_merges_a_new_one(milvus, tmp_path, embedder):
    """An update upserts its new passages' vectors into the generation's collection and
    deletes the ones it removed (no collection rewritten); a merge writes a new one, and
    the old goes when the last generation naming it is collected."""
    from indexer import BuildOptions, build
    from indexer.update import update
    from search import Searcher
    from search.index.generations import collect, current

    articles = tmp_path / "articles"
    articles.mkdir()
    (articles / "lighthouse.txt").write_text(
        "Lighthouse keeper retires after 40 years\n\nThe last keeper of the Fastnet lighthouse retired on "
        "Friday after forty years of tending its lamp through Atlantic storms.\n", encoding="utf-8")
    index = tmp_path / "index"
    build([articles], index, options=BuildOptions(vector_store=f"milvus://{milvus[0]}:{milvus[1]}/updates"))

    def collection():
        return json.loads((current(index) / "manifest.json").read_text())["vector_index"]["collection"]

    first = collection()
    client = _client(milvus)

    def rows():
        client.flush(first)
        return {r["id"] for r in client.query(first, filter="id >= 0", output_fields=["id"])}

    (articles / "harbour.txt").write_text(
        "Harbour seals return to the Thames\n\nA survey counted 1,234 harbour seals along the Thames estuary "
        "this summer, the most since records began, conservationists said.\n", encoding="utf-8")
    summary = update(index, srcs=[articles / "harbour.txt"])
    assert summary.added == ["harbour"] and not summary.merged
    assert collection() == first and rows() == {0, 1}  # one collection, the new vector added to it
    assert not (current(index) / "segments" / "s000001" / "vectors.faiss").exists()
    searcher = Searcher.open(index)
    assert searcher.describe()["passages"] == 2
    hit = searcher.search("How many seals live in the Thames?", k=1)[0]
    assert "1,234 harbour seals" in hit.text and hit.citations[0].doc_id == "harbour"
    keeper = searcher.search("Who looked after the Fastnet lamp?", k=1)[0]
    assert keeper.citations[0].doc_id == "lighthouse"
    (articles / "lighthouse.txt").write_text(
        "Lighthouse keeper retires after 41 years\n\nThe last keeper of the Fastnet lighthouse retired on "
        "Friday after forty-one years of tending its lamp through Atlantic storms.\n", encoding="utf-8")
    assert update(index, srcs=[articles / "lighthouse.txt"]).replaced == ["lighthouse"]
    assert collection() == first and rows() == {1, 2}  # the old version's vector deleted by id
    after = Searcher.open(index)
    assert "forty-one years" in after.search("Fastnet keeper", k=1)[0].text
    assert {h.citations[0].doc_id for h in after.search("lighthouse seals", k=5, mode="dense")} == {"lighthouse", "harbour"}
    assert update(index, merge=True).merged
    merged = collection()
    assert merged != first and client.has_collection(first)  # older generations still name it
    assert "forty-one years" in Searcher.open(index).search("Fastnet keeper", k=1)[0].text
    del searcher, hit, keeper, after  # readers hold their generations (leases) until they let go
    gc.collect()
    collect(index, keep=0, grace_s=0)
    assert not client.has_collection(first) and client.has_collection(merged)


def test_an_updated_milvus_index_answers_as_the_same_updates_on_faiss(milvus, seed_index, tmp_path, embedder):
    from indexer import BuildOptions, build
    from indexer.update import update
    from search import Searcher

    from helpers import write_jsonl

    remote = tmp_path / "remote"
    build([SEEDS], remote, options=BuildOptions(vector_store=f"milvus://{milvus[0]}:{milvus[1]}/same"))
    local = tmp_path / "local"
    shutil.copytree(seed_index, local)
    feed = write_jsonl(tmp_path / "feed.jsonl", {
        "id": "volcano", "title": "Volcano erupts on the Reykjanes peninsula",
        "text": "A volcano erupted on the Reykjanes peninsula on Monday night, sending lava fountains 100 metres "
                "into the air.\n\nThe town of Grindavik had been evacuated days earlier, officials said.\n"})
    removed = next(SEEDS.glob("002_*")).stem
    for index in (remote, local):
        assert not update(index, [feed]).merged
        assert not update(index, remove=[removed]).merged
    ours, theirs = Searcher.open(remote), Searcher.open(local)
    for question in QUESTIONS + ["Where did lava fountains rise?"]:
        for mode in ("hybrid", "dense"):
            a, b = ours.search(question, k=10, mode=mode), theirs.search(question, k=10, mode=mode)
            assert [(h.text, h.citations) for h in a] == [(h.text, h.citations) for h in b], (question, mode)
            assert all(h.citations[0].doc_id != removed for h in a)


def test_an_unreachable_server_is_a_clear_error(milvus_index, tmp_path):
    from search import Searcher
    from search.errors import VectorStoreError
    from search.index.generations import current

    index = tmp_path / "index"
    shutil.copytree(milvus_index, index)
    path = current(index) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["vector_index"]["uri"] = f"milvus://127.0.0.1:{free_port()}/news"
    path.write_text(json.dumps(manifest))
    with pytest.raises(VectorStoreError, match="Milvus"):
        Searcher.open(index, verify=False)


def test_a_failed_build_leaves_no_collection_and_the_old_index(milvus, milvus_index, embedder, tmp_path):
    from indexer import BuildOptions, build
    from search import Searcher

    class FailsOnSentences:  # the real model, failing at the build's second model pass
        def __init__(self, real):
            self.real, self.calls = real, 0
            self.name, self.backend, self.dimension, self.max_tokens = (real.name, real.backend, real.dimension,
                                                                        real.max_tokens)

        def count_tokens(self, text):
            return self.real.count_tokens(text)

        def embed(self, texts, batch_size=32, progress=False):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("the machine ran out of something")
            return self.real.embed(texts, batch_size, progress)

    index = tmp_path / "index"
    shutil.copytree(milvus_index, index)
    before = set(_client(milvus).list_collections())
    with pytest.raises(RuntimeError, match="ran out"):
        build([SEEDS], index, embedder=FailsOnSentences(embedder),
              options=BuildOptions(vector_store=f"milvus://{milvus[0]}:{milvus[1]}/news"))
    assert set(_client(milvus).list_collections()) == before
    assert Searcher.open(index).search("Lukashenko", k=1)  # the previous generation still answers


def test_a_lost_collection_is_a_503_not_a_traceback(milvus_index):
    from search import Searcher
    from search.service.app import create_app

    searcher = Searcher.open(milvus_index)
    client = create_app({"SEARCHER": searcher, "TESTING": True}).test_client()
    searcher._vectors.collection = "news_gone"  # what a dropped collection or a dead cluster looks like
    response = client.get("/search", query_string={"q": "Lukashenko", "mode": "dense"})
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "vector_store_unavailable" and "news_gone" in error["message"]
    assert client.get("/search", query_string={"q": "Lukashenko", "mode": "lexical"}).status_code == 200


def test_the_cli_checks_the_store_address(tmp_path, capsys):
    from indexer.__main__ import main

    with pytest.raises(SystemExit) as exit:
        main(["build", str(SEEDS), "--index", str(tmp_path / "i"), "--vector-store", "milvus://nowhere/x"])
    assert exit.value.code == 2
    assert "milvus://host:port/collection" in capsys.readouterr().err
