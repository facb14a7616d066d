"""Updates of an index held in Milvus (indexer/milvus_update.py), against a real
`milvus-lite server` on loopback: added, replaced and removed articles answer at once,
each update writes what it changes and no more, replicas read only what changed, and a
writer killed anywhere leaves the index as its last manifest says."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import ROOT, SEEDS, write_jsonl

pytest.importorskip("pymilvus", reason="pymilvus is not installed (pip install '.[milvus]')")

VOLCANO = {"id": "volcano", "title": "Volcano erupts near Grindavik", "url": "https://news.example/volcano",
           "published": "2026-11-30",
           "text": "A volcano on the Reykjanes peninsula erupted on Sunday night, sending lava fountains into the "
                   "sky.\n\nAuthorities evacuated the town of Grindavik as a precaution. Iceland's "
                   "Meteorological Office said the fissure was about three kilometres long.\n\nFlights at "
                   "Keflavik airport were not affected, the airport operator said."}


def _spec(milvus, name: str) -> str:
    return f"milvus://{milvus[0]}:{milvus[1]}/{name}"


def _document(record: dict):
    from indexer.sources import Document

    return Document(doc_id=record["id"], text=record["text"], source=record["url"], title=record["title"],
                    url=record["url"], published=record["published"])


def _first(searcher, question: str, mode: str = "hybrid"):
    return searcher.search(question, 1, mode)[0].citations[0]


class _Writes:
    """Rows each collection was sent (inserts and upserts), by the suffix of its name."""

    def __init__(self, client, monkeypatch):
        self.rows: dict[str, int] = {}
        for method in ("insert", "upsert"):
            real = getattr(client, method)

            def counted(name, data, *args, _real=real, **kwargs):
                part = name.rsplit("_", 1)[1]
                self.rows[part] = self.rows.get(part, 0) + len(data)
                return _real(name, data, *args, **kwargs)

            monkeypatch.setattr(client, method, counted)


def test_an_update_answers_at_once_and_writes_only_what_it_changes(milvus, embedder, monkeypatch):
    from indexer import build_in_milvus
    from indexer.update import update
    from search import Searcher
    from search.index.milvus_index import client_for
    from search.index.vector_store import parse

    spec = _spec(milvus, "growing")
    build_in_milvus([SEEDS], spec)
    before = Searcher.open(spec)
    writes = _Writes(client_for(parse(spec)), monkeypatch)
    summary = update(spec, documents=[_document(VOLCANO)])
    assert summary.added == ["volcano"] and summary.generation == "g000002"
    after = Searcher.open(spec)
    assert after.generation == "g000002" and after.manifest["counts"]["documents"] == 6
    for mode in ("hybrid", "dense", "lexical"):
        cited = _first(after, "Were flights at Keflavik airport affected by the eruption?", mode)
        assert (cited.doc_id, cited.paragraph, cited.title) == ("volcano", 3, "Volcano erupts near Grindavik"), mode
    assert after.document("volcano")["text"] == VOLCANO["text"]
    # the searcher opened before answers from its own generation: the new rows are not its
    assert all(c.doc_id != "volcano" for h in before.search("volcano lava Grindavik", 10) for c in h.citations)
    # what was written: the article's own rows, its terms and its story's, and the manifest
    passages = after.document("volcano")["passages"]
    sentences = len(after._store.sentences_of(after._store.passages_of(["volcano"])))
    assert writes.rows["passages"] == passages and writes.rows["documents"] == 1
    assert writes.rows["sentences"] == sentences
    distinct_terms = {"volcano", "grindavik", "keflavik", "lava"}
    assert len(distinct_terms) < writes.rows["terms"] < 200  # this article's terms, not the corpus's
    assert writes.rows["manifest"] >= 1
    # the replica carried what it read: only the new rows are asked for, by primary key
    update(spec, documents=[_document({**VOLCANO, "id": "volcano-2", "text": "Lava reached the road to Grindavik."})])
    from search.index import milvus_index

    asked = []
    monkeypatch.setattr(milvus_index, "_scan", lambda *a, **k: asked.append(("scan", a[3], a[4], k.get("offset"))))
    for method in ("_passages", "_document_rows"):
        real = getattr(milvus_index.MilvusCatalog, method)
        monkeypatch.setattr(milvus_index.MilvusCatalog, method,
                            lambda self, ids, fields, real=real, method=method: asked.append((method, list(ids))) or
                            real(self, ids, fields))
    carried = Searcher.open(spec)
    assert carried.generation == "g000003"
    assert asked == [("_passages", [61 + passages]), ("_document_rows", [6])]
    monkeypatch.undo()
    assert _first(carried, "Did lava reach the road?").doc_id == "volcano-2"
    # what the replica carried is what a replica reading everything has
    import numpy as np

    from search import searcher as searcher_module

    searcher_module._LATEST.pop(spec)
    whole = Searcher.open(spec)
    assert np.array_equal(carried._sentence_range, whole._sentence_range)
    assert np.array_equal(carried._document_row, whole._document_row)
    assert np.array_equal(carried._dates.days, whole._dates.days, equal_nan=True)


def test_replace_and_remove(milvus, embedder, monkeypatch):
    import pymilvus

    from indexer import build_in_milvus, milvus_update
    from indexer.update import update
    from search import Searcher
    from search.errors import DocumentNotFound

    spec = _spec(milvus, "changing")
    build_in_milvus([SEEDS], spec)
    update(spec, documents=[_document(VOLCANO)])
    replaced = {**VOLCANO, "text": VOLCANO["text"].replace("three kilometres", "four kilometres")
                .replace("Flights at Keflavik airport were not affected", "Keflavik airport closed its runway")}
    summary = update(spec, documents=[_document(replaced)])
    assert summary.replaced == ["volcano"]
    searcher = Searcher.open(spec)
    assert searcher.document("volcano")["text"] == replaced["text"]
    hits = searcher.search("Were flights affected? Keflavik runway", 10, "lexical")
    volcano = [h.text for h in hits if h.citations[0].doc_id == "volcano"]
    assert volcano and all("not affected" not in text for text in volcano)  # the old version answers nothing
    assert searcher.manifest["counts"]["documents"] == 6
    assert update(spec, documents=[_document(replaced)]).unchanged == ["volcano"]  # same text: nothing written
    removed = update(spec, remove=["004_8ec5d6834c1552e8"])
    assert removed.removed == ["004_8ec5d6834c1552e8"]
    searcher = Searcher.open(spec)
    with pytest.raises(DocumentNotFound):
        searcher.document("004_8ec5d6834c1552e8")
    for question in ("Does the Belarusian president support sending soldiers?", "Lukashenko"):
        for mode in ("hybrid", "dense", "lexical"):  # its rows are still in Milvus (the grace), never answered
            assert all(c.doc_id != "004_8ec5d6834c1552e8" for h in searcher.search(question, 10, mode)
                       for c in h.citations), (question, mode)
    assert searcher.manifest["counts"]["documents"] == 5
    with pytest.raises(DocumentNotFound, match="nothing was changed"):
        update(spec, remove=["004_8ec5d6834c1552e8"])
    # past the grace, the next update deletes the rows themselves
    monkeypatch.setattr(milvus_update, "GRACE_S", 0.0)
    update(spec, remove=["volcano"])
    client = pymilvus.MilvusClient(uri=f"http://{milvus[0]}:{milvus[1]}")
    left = client.query("changing_g000001_documents", filter='doc_id in ["004_8ec5d6834c1552e8"]',
                        output_fields=["row"])
    assert left == []
    after = Searcher.open(spec)
    assert after.manifest["counts"]["documents"] == 4 and len(after.manifest["store"]["pending"]) == 1
    assert _first(after, "What gift did Putin give Kim Jong-un?").doc_id != "004_8ec5d6834c1552e8"


def test_an_added_article_joins_its_story_and_duplicates_collapse(milvus, embedder, searcher):
    from indexer import build_in_milvus
    from indexer.update import update
    from search import Searcher

    spec = _spec(milvus, "stories")
    build_in_milvus([SEEDS], spec)
    seed = searcher.document("004_8ec5d6834c1552e8")
    copy = {"id": "syndicated", "title": "Putin's allies fail to back North Korean troops", "url": "https://b.example/x",
            "published": "2024-10-26", "text": seed["text"]}
    update(spec, documents=[_document(copy)])
    grown = Searcher.open(spec)
    story = grown.search("Lukashenko", 1)[0].story
    assert story is not None
    timeline = grown.story(story)["timeline"]
    assert {"004_8ec5d6834c1552e8", "syndicated"} <= {entry["doc_id"] for entry in timeline}
    assert grown.story(story)["articles"] == len(searcher.story(story)["timeline"]) + 1
    # the copy's paragraphs are its original's duplicates: one hit, citing both
    hit = grown.search("Does the Belarusian president support sending foreign soldiers to fight for Russia?", 5)
    cited = {c.doc_id for c in hit[0].citations}
    assert cited == {"004_8ec5d6834c1552e8", "syndicated"}


def _stories_of(searcher) -> dict[str, int]:
    """doc_id -> story of a searcher's live articles (embedded or in Milvus)."""
    store = searcher._store
    rows = range(len(searcher._story_of_row))
    if hasattr(store, "_documents"):
        ids = {row: d["doc_id"] for row, d in enumerate(store._documents) if d is not None}
    else:
        ids = dict(store.rows("SELECT rowid - 1, doc_id FROM documents"))
    return {ids[row]: int(searcher._story_of_row[row]) for row in rows if store.live_documents[row] and row in ids}


def test_updates_in_milvus_split_a_story_as_the_embedded_index_does(milvus, embedder, tmp_path):
    from indexer import build, build_in_milvus
    from indexer.update import update
    from search import Searcher
    from search import searcher as searcher_module

    from story_articles import ACEH, OTHER, PAPUA, QUAKES, REHAB

    feed = [{"id": d, "title": t, "text": x} for d, t, x in OTHER + REHAB + QUAKES]
    whole = tmp_path / "whole"
    build([write_jsonl(tmp_path / "all.jsonl", *feed)], whole)
    expected = _stories_of(Searcher.open(whole))
    assert len({expected[d] for d, _, _ in ACEH} | {expected[d] for d, _, _ in PAPUA}) == 2  # split apart
    spec = _spec(milvus, "splitting")
    built = len(OTHER) + len(REHAB) + 2  # the first Aceh and Papua reports: one story in the build
    build_in_milvus([write_jsonl(tmp_path / "first.jsonl", *feed[:built])], spec)
    replica = Searcher.open(spec)
    assert replica._story_of_row is not None
    for n, article in enumerate(feed[built:]):
        update(spec, [write_jsonl(tmp_path / f"{n}.jsonl", article)])
        replica = Searcher.open(spec)  # carries what the one before read, and the moves since
    assert _stories_of(replica) == expected
    searcher_module._LATEST.pop(spec)
    assert _stories_of(Searcher.open(spec)) == expected  # a replica reading everything
    # a correction, a deletion alone, then an article: each index takes the old versions
    # out of their stories (the embedded one at its next segment), and they agree
    grown = tmp_path / "grown"
    build([write_jsonl(tmp_path / "first-local.jsonl", *feed[:built])], grown)
    for n, article in enumerate(feed[built:]):
        update(grown, [write_jsonl(tmp_path / f"{n}.jsonl", article)])
    corrected = {**feed[len(OTHER)], "text": feed[len(OTHER)]["text"] + " She is said to be doing well."}
    bridge = {"id": "bridge-2", "title": "Traffic crosses the new bridge",
              "text": "The first cars crossed the city's new bridge over the river on Tuesday morning."}
    for index in (grown, spec):
        update(index, [write_jsonl(tmp_path / "corrected.jsonl", corrected)])
        update(index, remove=["papua-4"])
        update(index, [write_jsonl(tmp_path / "bridge.jsonl", bridge)])
    local, remote = _stories_of(Searcher.open(grown)), _stories_of(Searcher.open(spec))
    assert local == remote and "papua-4" not in remote and remote["reid-1"] == remote["reid-2"]
    from indexer.milvus_update import MilvusStories
    from search.index.milvus_index import client_for
    from search.index.vector_store import parse

    manifest = Searcher.open(spec).manifest["store"]
    state = MilvusStories(client_for(parse(spec)), manifest["collections"]["stories"],
                          int(manifest["generation"][1:]), manifest["placed"], 0, manifest["collections"]["members"])
    papua = remote["papua-1"]
    assert state.size(papua) == sum(1 for s in remote.values() if s == papua)  # papua-4 counts no more


def test_a_service_answering_from_milvus_takes_writes(milvus, embedder):
    from indexer import build_in_milvus
    from search.service.app import create_app

    spec = _spec(milvus, "served")
    build_in_milvus([SEEDS], spec)
    client = create_app({"STORE": spec, "API_KEY": "secret"}).test_client()
    key = {"Authorization": "Bearer secret"}
    put = client.put("/documents/volcano", json={k: v for k, v in VOLCANO.items() if k != "id"}, headers=key)
    assert put.status_code == 201, put.json
    assert put.json["status"] == "added" and put.json["generation"] == "g000002"
    found = client.get("/search", query_string={"q": "Were flights at Keflavik affected?", "k": 1}).json
    assert found["results"][0]["citations"][0]["doc_id"] == "volcano"
    assert client.put("/documents/volcano", json={"text": "x"}).status_code == 401
    gone = client.delete("/documents/volcano", headers=key)
    assert gone.status_code == 200 and gone.json["generation"] == "g000003"
    assert client.get("/documents/volcano").status_code == 404
    assert client.delete("/documents/volcano", headers=key).status_code == 404


POINTS = ["milvus-update:read", "milvus-update:embedded", "milvus-update:rows", "milvus-update:flushed",
          "milvus-update:published"]


def _add(spec, path, **env):
    return subprocess.run([sys.executable, "-m", "indexer", "add", str(path), "--store", spec], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, **env})


def test_the_crash_points_are_those_an_update_passes(milvus, embedder, tmp_path):
    from indexer import build_in_milvus

    spec = _spec(milvus, "traced_update")
    build_in_milvus([SEEDS], spec)
    trace = tmp_path / "trace"
    done = _add(spec, write_jsonl(tmp_path / "feed.jsonl", VOLCANO), INDEXER_TRACE_POINTS=str(trace))
    assert done.returncode == 0, done.stderr
    assert "added 1" in done.stdout
    assert [p for p in trace.read_text().split() if p.startswith("milvus-update:")] == POINTS


@pytest.mark.parametrize("point", POINTS)
def test_an_update_killed_anywhere_leaves_the_last_manifest_s_index(milvus, embedder, tmp_path, point,
                                                                    monkeypatch):
    import tempfile

    from indexer import build_in_milvus
    from indexer.update import update
    from search import Searcher

    spec = _spec(milvus, f"killed_{point.split(':')[1]}")
    build_in_milvus([SEEDS], spec)
    # a killed update cannot remove its scratch directory: let it leave it here, not in /tmp
    killed = _add(spec, write_jsonl(tmp_path / "feed.jsonl", VOLCANO), INDEXER_KILL_AT=point, TMPDIR=str(tmp_path))
    assert killed.returncode == -9, killed.stderr
    searcher = Searcher.open(spec)
    published = point == "milvus-update:published"
    assert searcher.generation == ("g000002" if published else "g000001")
    assert searcher.manifest["counts"]["documents"] == (6 if published else 5)
    volcano = [c.doc_id for h in searcher.search("volcano lava Grindavik Keflavik", 10) for c in h.citations]
    assert ("volcano" in volcano) == published
    # the next writer takes over the dead one's lease at once and writes over what it left,
    # and removes the scratch directory it left (a killed update's is there until the rows
    # are flushed)
    left = list(tmp_path.glob("milvus-update-*"))
    assert len(left) == (1 if point in POINTS[:3] else 0)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    again = update(spec, documents=[_document({**VOLCANO, "text": VOLCANO["text"] + "\n\nThe lava slowed."})])
    assert again.generation == ("g000003" if published else "g000002")
    assert not any(path.exists() for path in left)
    after = Searcher.open(spec)
    assert after.manifest["counts"]["documents"] == 6
    hits = [h for h in after.search("Were flights at Keflavik airport affected?", 10) if h.citations[0].doc_id == "volcano"]
    assert len(hits) == len({h.citations[0].paragraph for h in hits})  # one copy of each paragraph
    assert after.document("volcano")["text"].endswith("The lava slowed.")


def test_what_a_killed_update_left_past_the_next_update_s_rows_is_deleted(milvus, embedder, tmp_path):
    """The killed update wrote more than the next one: a long article (two pieces of text,
    many passages and sentences) against a one-line one in the same document row."""
    from indexer import build_in_milvus
    from indexer.update import update
    from search import Searcher
    from search.errors import DocumentNotFound
    from search.index.milvus_index import PIECE_CHARS, PIECES, client_for, read_manifest
    from search.index.vector_store import parse

    spec = _spec(milvus, "tail")
    build_in_milvus([SEEDS], spec)
    paragraph = ("Lava from the fissure crossed the road to Grindavik on day {n}, and crews raised the earth walls "
                 "that shield the power plant at Svartsengi by another metre. ")
    long_text = "\n\n".join(paragraph.format(n=n) * 2 for n in range(PIECE_CHARS // len(paragraph) // 2 + 8))
    assert len(long_text) > PIECE_CHARS
    killed = _add(spec, write_jsonl(tmp_path / "feed.jsonl", {**VOLCANO, "id": "long", "text": long_text}),
                  INDEXER_KILL_AT="milvus-update:rows")
    assert killed.returncode == -9, killed.stderr
    small = {**VOLCANO, "id": "small", "text": "Lava reached the road to Grindavik."}
    update(spec, documents=[_document(small)])
    after = Searcher.open(spec)
    assert after.document("small")["text"] == small["text"]  # none of the long article's second piece
    with pytest.raises(DocumentNotFound):
        after.document("long")
    record = read_manifest(spec)["store"]
    client, names, next_ = client_for(parse(spec)), record["collections"], record["next"]
    for part, key, first in (("passages", "id", next_["passages"]), ("sentences", "id", next_["sentences"]),
                             ("documents", "id", next_["documents"] * PIECES)):
        client.flush(names[part])
        assert client.query(names[part], filter=f"{key} >= {first}", output_fields=["id"]) == [], part
    row = next_["documents"] - 1
    assert [r["piece"] for r in client.query(names["documents"], filter=f"row == {row}", output_fields=["piece"])] == [0]


def test_one_writer_at_a_time(milvus, embedder, monkeypatch):
    from indexer import build_in_milvus, milvus_lease
    from indexer.update import update
    from search.errors import VectorStoreError
    from search.index.milvus_index import client_for
    from search.index.vector_store import parse

    spec = _spec(milvus, "leased")
    build_in_milvus([SEEDS], spec)
    monkeypatch.setattr(milvus_lease, "WAIT_S", 2.0)
    client = client_for(parse(spec))
    with milvus_lease.held(client, parse(spec)):  # (another replica's writer, say)
        with pytest.raises(VectorStoreError, match="another writer"):
            update(spec, documents=[_document(VOLCANO)])
        with pytest.raises(VectorStoreError, match="another writer"):
            build_in_milvus([SEEDS], spec)  # a build waits its turn too
    assert update(spec, documents=[_document(VOLCANO)]).added == ["volcano"]  # released: the next one writes
