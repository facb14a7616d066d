"""An index held entirely in Milvus (`indexer build --store milvus://...`): a real
`milvus-lite server` on loopback, a searcher and a service with no index directory, which
answer as the embedded default does over the same build."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, SEEDS

pytest.importorskip("pymilvus", reason="pymilvus is not installed (pip install '.[milvus]')")

QUESTIONS = [q["question"] for q in json.loads((ROOT / "tests" / "data" / "seed_questions.json").read_text())][:24]


@pytest.fixture(scope="module")
def spec(milvus, embedder) -> str:
    from indexer import build_in_milvus

    spec = f"milvus://{milvus[0]}:{milvus[1]}/archive"
    build_in_milvus([SEEDS], spec)
    return spec


@pytest.fixture(scope="module")
def remote(spec):
    from search import Searcher

    return Searcher.open(spec)


def _seen(hits):
    return [(h.text, h.citations, h.highlight, h.story) for h in hits]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_every_mode_answers_as_the_embedded_index(remote, searcher, mode):
    for question in QUESTIONS:
        ours, theirs = remote.search(question, 5, mode), searcher.search(question, 5, mode)
        assert _seen(ours) == _seen(theirs), question
        assert np.allclose([h.score for h in ours], [h.score for h in theirs], atol=1e-4)


def test_bm25_is_the_embedded_default_s_to_float_precision(remote, searcher):
    from search.index.lexical import search_terms

    for question in QUESTIONS[:8] + ["Lukashenko", "710,000 casualties"]:
        words = search_terms(question)
        for side in ("_passage_lexical", "_document_lexical"):
            (ours, our_scores), (theirs, their_scores) = (getattr(s, side).best_of(words, 1000)
                                                          for s in (remote, searcher))
            assert ours.tolist() == theirs.tolist(), (question, side)
            np.testing.assert_allclose(our_scores, their_scores, rtol=1e-5)
            # rows a fusion asks about (the candidates' articles): some that match, some not
            rows = np.union1d(theirs[::2], np.arange(0, 40, 7))
            our_rows, their_rows = (getattr(s, side).scores_of(words, rows) for s in (remote, searcher))
            assert their_rows.any() == bool(len(theirs)), (question, side)
            np.testing.assert_allclose(our_rows, their_rows, rtol=1e-5)


def test_filters_context_documents_and_stories(remote, searcher, monkeypatch):
    from search import Filters
    from search.retrieval import feedback

    doc = searcher.search("Lukashenko", k=1)[0].citations[0].doc_id
    source = searcher.document(doc)["source"]
    for filters in (Filters.of(doc_id=[doc]), Filters.of(source=[source])):
        ours = remote.search("North Korean troops", k=5, filters=filters)
        assert ours and {c.doc_id for h in ours for c in h.citations} == {doc}
        assert _seen(ours) == _seen(searcher.search("North Korean troops", k=5, filters=filters))
    for neighbours in (0, 1):
        ours, theirs = (s.context("What gift did Putin give Kim Jong-un?", k=3, neighbours=neighbours)
                        for s in (remote, searcher))
        assert ours == theirs
    assert remote.document(doc) == searcher.document(doc)
    assert remote.stories("North Korean troops in Kursk") == searcher.stories("North Korean troops in Kursk")
    assert remote.facets("North Korean troops", ["source"]) == searcher.facets("North Korean troops", ["source"])
    for options in ({"group": "article"}, {"group": "story"}, {"mmr": 0.5}, {"sort": "date"}, {"diversity": 1},
                    {"collapse": False, "offset": 3}):
        assert _seen(remote.search("North Korean troops", 5, **options)) == \
            _seen(searcher.search("North Korean troops", 5, **options)), options
    monkeypatch.setattr(feedback, "HEAD", 2)  # five articles leave a tail past two: the feedback search's
    for filters in (Filters(), Filters.of(source=[source])):
        ours = remote.search("North Korean troops", 30, collapse=False, filters=filters)
        assert len(ours) > 10 and _seen(ours) == _seen(searcher.search("North Korean troops", 30, collapse=False,
                                                                         filters=filters))


def test_a_service_with_no_index_directory(spec, searcher, tmp_path, monkeypatch):
    from search.service.app import create_app

    monkeypatch.chdir(tmp_path)  # nothing may be written beside it
    client = create_app({"STORE": spec, "INDEX": str(tmp_path / "none"), "API_KEY": "secret"}).test_client()
    answer = client.get("/search", query_string={"q": "What gift did Putin give Kim Jong-un?", "k": 3})
    assert answer.status_code == 200
    expected = searcher.search("What gift did Putin give Kim Jong-un?", 3)
    assert [r["citations"][0]["doc_id"] for r in answer.json["results"]] == [h.citations[0].doc_id for h in expected]
    health = client.get("/health").json
    assert health["index"] == spec and health["generation"].startswith("g")
    doc = expected[0].citations[0].doc_id
    assert client.get(f"/documents/{doc}").json["text"] == searcher.document(doc)["text"]
    assert client.get("/documents/nope").status_code == 404
    assert client.post("/alerts", json={"query": "x"}, headers={"Authorization": "Bearer secret"}).status_code == 501
    assert list(tmp_path.iterdir()) == []


def test_a_publish_is_one_alias_switch_that_replicas_follow(milvus, embedder, tmp_path):
    import pymilvus

    from indexer import build_in_milvus
    from search import Searcher
    from search.live import LiveSearcher

    spec = f"milvus://{milvus[0]}:{milvus[1]}/rolling"
    one = tmp_path / "one"
    one.mkdir()
    (one / "a.txt").write_text("Lukashenko spoke to the BBC at the summit in Kazan.\n", encoding="utf-8")
    first = build_in_milvus([one], spec)
    live = LiveSearcher(spec, lambda: Searcher.open(spec), check_s=0)
    assert live.get().generation == first.generation == "g000001"
    second = build_in_milvus([SEEDS], spec)
    assert second.generation == "g000002"
    live.get()  # notices the switch and reloads in the background
    live._loading.acquire()
    live._loading.release()
    assert live.get().generation == "g000002" and live.get().search("Lukashenko", 1)[0].citations[0].doc_id[:3] == "004"
    idle = LiveSearcher(spec, lambda: Searcher.open(spec), check_s=0)  # on g000002, then asked nothing
    build_in_milvus([one], spec)
    client = pymilvus.MilvusClient(uri=f"http://{milvus[0]}:{milvus[1]}")
    kept = {name.split("_")[1] for name in client.list_collections() if name.startswith("rolling_g")}
    assert kept == {"g000002", "g000003"}  # the one before the last publish stays for replicas still on it
    build_in_milvus([SEEDS], spec)  # g000002 is dropped now: the idle replica's next answer comes from g000004
    assert idle.get().generation == "g000004" and idle.get().search("Lukashenko", 1)


def test_clear_errors(milvus):
    from search import Searcher
    from search.errors import IndexNotFound, VectorStoreError

    with pytest.raises(IndexNotFound, match="no index named 'missing'.*indexer build"):
        Searcher.open(f"milvus://{milvus[0]}:{milvus[1]}/missing")
    from helpers import free_port

    with pytest.raises(VectorStoreError, match="cannot reach Milvus"):
        Searcher.open(f"milvus://127.0.0.1:{free_port()}/archive")
    run = subprocess.run([sys.executable, "-m", "indexer", "build", str(SEEDS), "--store", "faiss"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and "--store must be milvus://host:port/name" in run.stderr


def test_filters_are_milvus_expressions_on_the_rows_own_fields(milvus, embedder, tmp_path, monkeypatch):
    from helpers import write_jsonl

    from indexer import build, build_in_milvus
    from search import Filters, Searcher
    from search.index import milvus_index

    feed = write_jsonl(tmp_path / "feed.jsonl", *[
        {"id": f"d{i}", "title": f"Kursk report {i}", "url": f"https://{src}/{i}", "published": date,
         "text": f"Report {i}: North Korean troops were seen near Kursk. {extra}"}
        for i, (src, date, extra) in enumerate([
            ("a.example", "2022-03-01", "Shelling continued."), ("b.example", "2024-10-28", "Drones flew."),
            ("a.example", "2024-11-02", "Kim visited Moscow."), ("c.example", None, "No date was given.")])])
    local = tmp_path / "local"
    build([feed], local)
    spec = f"milvus://{milvus[0]}:{milvus[1]}/dated"
    build_in_milvus([feed], spec)
    remote, embedded = Searcher.open(spec), Searcher.open(local)
    # a filtered search asks Milvus with the filters' own expression, never a list of passage ids
    monkeypatch.setattr(milvus_index, "id_expression", lambda mask: pytest.fail("an id expression was sent"))
    monkeypatch.setattr("search.index.vector_store.id_expression", lambda mask: pytest.fail("ids were sent"))
    for filters in (Filters.of(source=["https://a.example/0", "https://a.example/2"]),
                    Filters.of(published_from="2024-01-01"), Filters.of(published_to="2023-12-31"),
                    Filters.of(doc_id=["d1", "d3"]),
                    Filters.of(source=["https://a.example/2", "https://c.example/3"], published_from="2024-11-01")):
        for mode in ("hybrid", "dense", "lexical"):
            ours = remote.search("North Korean troops near Kursk", 4, mode, filters=filters)
            assert _seen(ours) == _seen(embedded.search("North Korean troops near Kursk", 4, mode, filters=filters))
            assert ours or mode == "lexical"  # (four near-identical rows: every term has an IDF of 0)
    interpreted = remote.search("troops near Kursk since October", 4, as_of="2024-12-01")
    assert [h.citations[0].doc_id for h in interpreted] == \
        [h.citations[0].doc_id for h in embedded.search("troops near Kursk since October", 4, as_of="2024-12-01")]
    assert {h.citations[0].doc_id for h in interpreted} == {"d1", "d2", "d3"}  # undated kept, 2022 not


POINTS = ["milvus:collections", "milvus:rows", "milvus:flushed", "milvus:published"]


def _one_article(tmp_path, text: str):
    folder = tmp_path / "articles"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.txt").write_text(text + "\n", encoding="utf-8")
    return folder


def _build(spec, folder, **env):
    import os

    return subprocess.run([sys.executable, "-m", "indexer", "build", str(folder), "--store", spec, "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **env})


def test_the_crash_points_are_those_a_build_passes(milvus, tmp_path):
    trace = tmp_path / "trace"
    done = _build(f"milvus://{milvus[0]}:{milvus[1]}/traced", _one_article(tmp_path, "Kim met Putin."),
                  INDEXER_TRACE_POINTS=str(trace))
    assert done.returncode == 0, done.stderr
    assert [p for p in trace.read_text().split() if p.startswith("milvus:")] == POINTS


@pytest.mark.parametrize("point", POINTS)
def test_a_build_killed_anywhere_leaves_the_alias_on_a_complete_generation(milvus, embedder, tmp_path, point):
    import pymilvus

    from indexer import build_in_milvus
    from search import Searcher

    spec = f"milvus://{milvus[0]}:{milvus[1]}/crash_{point.split(':')[1]}"
    build_in_milvus([_one_article(tmp_path, "Lukashenko spoke to the BBC at the summit.")], spec)
    scratch = _scratch_dirs()
    killed = _build(spec, _one_article(tmp_path / "b", "A harbour crane collapsed in a storm."), INDEXER_KILL_AT=point)
    assert killed.returncode == -9, killed.stderr
    searcher = Searcher.open(spec)
    survived = "g000002" if point == "milvus:published" else "g000001"
    assert searcher.generation == survived
    answer = searcher.search("Who spoke to the BBC?", 1) if survived == "g000001" else searcher.search("crane", 1)
    assert answer and answer[0].citations[0].doc_id == "a"
    assert searcher.document("a")["passages"] == 1
    build_in_milvus([_one_article(tmp_path / "c", "A bridge opened in Oslo.")], spec)  # the next build goes through
    assert _scratch_dirs() <= scratch  # and removed the killed one's scratch index
    after = Searcher.open(spec)
    assert "Oslo" in after.search("bridge", 1)[0].text
    client = pymilvus.MilvusClient(uri=f"http://{milvus[0]}:{milvus[1]}")
    left = {name.split("_")[2] for name in client.list_collections() if name.startswith(f"crash_{point.split(':')[1]}_g")}
    assert left == {after.generation, survived}  # what the killed build left is gone


def _scratch_dirs() -> set[Path]:
    import tempfile

    return set(Path(tempfile.gettempdir()).glob("milvus-build-*"))


def test_a_chatbot_s_mcp_tools_over_an_index_in_milvus(spec, searcher):
    import asyncio
    import os

    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=os.path.join(os.path.dirname(sys.executable), "search-mcp"),
                                   args=["--store", spec], cwd=str(ROOT), env={**os.environ, "HF_HUB_OFFLINE": "1"})

    async def run():
        async with Client(params, read_timeout_seconds=120) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            return tools, await client.call_tool("search", {"query": "What gift did Putin give Kim Jong-un?", "k": 2})

    tools, found = asyncio.run(run())
    assert tools == {"search", "context", "get_document", "stories", "get_story"}  # no alerts without a directory
    assert [r["citations"][0]["doc_id"] for r in found.structured_content["results"]] == \
        [h.citations[0].doc_id for h in searcher.search("What gift did Putin give Kim Jong-un?", 2)]
