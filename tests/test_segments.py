"""Segments (search/index/segments.py): an update adds what it adds and marks what it
removes; the segments it carries are the previous generation's files; a segmented index
answers exactly as the same index merged into one segment."""

import os
import shutil

import pytest

import indexer.update as updates
from indexer import build
from indexer.update import update
from search import DocumentNotFound, Filters, Searcher
from search.index import segments, store
from search.index.generations import current

from helpers import SEEDS, write_jsonl

QUESTIONS = ("Does Lukashenko support sending foreign troops to Russia?", "How many North Korean soldiers are in Kursk?",
             "What does Kim get from Moscow in exchange?", "Who wrote about the nightmare scenario for China?",
             "artillery shells")
REPLACEMENT = {"id": "002_2d4b3a8059ce6963", "title": "Putin's farewell in Pyongyang",
               "text": "Putin closed his visit to Pyongyang with a farewell that sparked a flurry of memes.\n\n"
                       "Kim Jong Un waved as the motorcade left the airport in the early morning."}


def _seeds(directory, prefixes):
    directory.mkdir()
    for path in SEEDS.glob("*.txt"):
        if path.name[:3] in prefixes:
            shutil.copy(path, directory / path.name)
    return directory


@pytest.fixture(scope="module")
def segmented(tmp_path_factory, embedder):
    """Seeds 000-002 built, then 003 and 004 added one at a time, 001 removed and 002
    replaced: a base, three segments, deletions."""
    root = tmp_path_factory.mktemp("segments")
    index = root / "index"
    build([_seeds(root / "base", ("000", "001", "002"))], index)
    for prefix in ("003", "004"):
        update(index, [_seeds(root / prefix, (prefix,))])
    update(index, remove=[p.stem for p in SEEDS.glob("001_*")])
    update(index, [write_jsonl(root / "replacement.jsonl", REPLACEMENT)])
    return index


def test_an_update_adds_a_segment_and_carries_the_others_as_the_same_files(segmented):
    generation = current(segmented)
    layout = segments.Layout.of(store.read_manifest(generation), generation)
    assert [s.name for s in layout.segments] == ["", "segments/s000001", "segments/s000002", "segments/s000003"]
    assert len(layout.deleted) > 0 and len(layout.deleted_documents) == 2  # 001, and 002's old version
    previous = segmented / "generations" / "g000004"
    for name in ("vectors.faiss", "sentences.npy", "segments/s000001/vectors.faiss"):
        assert os.stat(generation / name).st_ino == os.stat(previous / name).st_ino  # hard links, not copies


def test_a_segmented_index_answers_as_the_same_index_merged(segmented, tmp_path):
    merged = tmp_path / "merged"
    shutil.copytree(segmented, merged)
    summary = update(merged, merge=True)
    assert summary.merged and segments.Layout.of(store.read_manifest(current(merged)), current(merged)).simple
    ours, theirs = Searcher.open(segmented), Searcher.open(merged)
    assert ours.describe()["passages"] == theirs.describe()["passages"]
    for mode in ("hybrid", "dense", "lexical"):
        for question in QUESTIONS:
            a, b = ours.search(question, 8, mode), theirs.search(question, 8, mode)
            assert len(a) >= 3
            assert [(c.doc_id, c.paragraph) for h in a for c in h.citations] == \
                [(c.doc_id, c.paragraph) for h in b for c in h.citations], (mode, question)
            assert [round(h.score, 6) for h in a] == [round(h.score, 6) for h in b], (mode, question)


def test_removed_and_replaced_documents_are_gone_from_every_answer(segmented):
    searcher = Searcher.open(segmented)
    removed = next(SEEDS.glob("001_*")).stem
    with pytest.raises(DocumentNotFound):
        searcher.document(removed)
    assert searcher.document(REPLACEMENT["id"])["text"] == REPLACEMENT["text"]
    for question in QUESTIONS + ("Putin's farewell in Pyongyang", "memes motorcade airport"):
        for mode in ("hybrid", "dense", "lexical"):
            for hit in searcher.search(question, 10, mode, collapse=False):
                assert hit.citations[0].doc_id != removed
                if hit.citations[0].doc_id == REPLACEMENT["id"]:
                    assert hit.text in REPLACEMENT["text"]
    hits = searcher.search("memes motorcade airport", 3, "lexical")
    assert hits[0].citations[0].doc_id == REPLACEMENT["id"]
    # a filter sees only what is live
    only = searcher.search("Kim Jong Un", 10, filters=Filters(doc_id=(REPLACEMENT["id"], removed)))
    assert only and {h.citations[0].doc_id for h in only} == {REPLACEMENT["id"]}


def test_an_op_ed_added_after_its_translation_joins_its_duplicate_group(tmp_path, embedder):
    index = tmp_path / "index"
    build([_seeds(tmp_path / "first", ("000", "003"))], index)
    update(index, [_seeds(tmp_path / "translation", ("001",))])
    hits = Searcher.open(index).search("Half of all medium and heavy artillery shells come from North Korea", 3)
    assert {c.doc_id[:3] for c in hits[0].citations} == {"000", "001"}  # one result citing both copies
    manifest = store.read_manifest(current(index))
    assert manifest["duplicates"]["grouped_passages"] >= 20 and "segments" in manifest


def test_small_segments_are_folded_together_and_large_ones_merged(tmp_path, embedder, monkeypatch):
    """The tiered policy: past MERGE_SEGMENTS, small segments are folded into one (the base
    untouched); once they hold more than MERGE_SHARE of the base, everything is merged."""
    monkeypatch.setattr(updates, "MERGE_SEGMENTS", 2)
    index = tmp_path / "index"
    build([_seeds(tmp_path / "base", ("000", "001", "002", "003"))], index)
    base_inode = os.stat(current(index) / "vectors.faiss").st_ino
    briefs = [{"id": f"brief-{n}", "title": f"Brief {n}",
               "text": f"Officials in town number {n} opened a new bridge over the river on Monday."} for n in range(4)]
    shapes = []
    for n, brief in enumerate(briefs):
        summary = update(index, [write_jsonl(tmp_path / f"brief-{n}.jsonl", brief)])
        shapes.append((summary.merged, summary.segments))
    assert shapes == [(False, 2), (False, 3), (False, 3), (False, 3)]  # folded at the third and fourth
    assert os.stat(current(index) / "vectors.faiss").st_ino == base_inode
    searcher = Searcher.open(index)
    for n in range(4):
        hits = searcher.search(f"bridge in town number {n}", 1, "lexical")
        assert hits[0].citations[0].doc_id == f"brief-{n}"
    summary = update(index, [_seeds(tmp_path / "more", ("004",))])  # 22 passages: more than a quarter of the base
    summary = update(index, [write_jsonl(tmp_path / "last.jsonl", dict(briefs[0], id="brief-last"))])
    assert (summary.merged, summary.segments) == (True, 1)
    assert "segments" not in store.read_manifest(current(index))
    assert Searcher.open(index).describe()["documents"] == 4 + 4 + 2


def test_a_fold_leaves_an_earlier_fold_as_it_is_while_it_holds_more_than_the_newer_segments(tmp_path, embedder,
                                                                                           monkeypatch):
    """Size tiers beside an IVF base: a flat segment folded before is carried (the same
    files) while it holds more passages than the newer segments together, so a passage is
    not rewritten at every fold; when it no longer does, it is folded with them."""
    from indexer.build import BuildOptions

    monkeypatch.setattr(updates, "MERGE_SEGMENTS", 3)
    monkeypatch.setattr(updates, "CODE_AT", 10**6)
    index = tmp_path / "index"
    build([_seeds(tmp_path / "base", ("000", "001", "002", "003"))], index, options=BuildOptions(vector_index="ivf"))
    sizes, inodes = [], []
    for n in range(7):
        brief = {"id": f"brief-{n}", "title": f"Brief {n}",
                 "text": f"Officials in town number {n} opened a new bridge over the river on Monday."}
        update(index, [write_jsonl(tmp_path / f"brief-{n}.jsonl", brief)])
        generation = current(index)
        layout = segments.Layout.of(store.read_manifest(generation), generation)
        assert not any(segments.is_coded(s, generation) for s in layout.segments[1:])
        sizes.append([s.size for s in layout.segments[1:]])
        inodes.append(os.stat(generation / layout.segments[1].name / store.VECTORS).st_ino)
    # folded at the fourth update (all three), the sixth (the two newer ones; the three left
    # as they were) and the seventh (three is no longer more than two and one)
    assert sizes == [[1], [1, 1], [1, 1, 1], [3, 1], [3, 1, 1], [3, 2, 1], [6, 1]]
    assert inodes[3] == inodes[4] == inodes[5] != inodes[6]
    searcher = Searcher.open(index)
    for n in range(7):
        hits = searcher.search(f"bridge in town number {n}", 1, "lexical")
        assert hits[0].citations[0].doc_id == f"brief-{n}"
    assert searcher.describe()["documents"] == 4 + 7


def test_folds_beside_an_ivf_base_keep_recent_passages_flat_and_code_older_ones_in_its_clusters(tmp_path, embedder,
                                                                                                 monkeypatch):
    """Beside an IVF base, folded passages stay flat (searched exactly) until they hold
    CODE_AT passages; that fold codes them as the base codes its own (its clusters, its
    8-bit ranges), later folds leave the coded segment as it is while the flat ones are
    few, and a coded segment folded again is carried as coded. The ranking is what scoring
    every live passage gives, each as its segment scores it."""
    import numpy as np

    from indexer.build import BuildOptions
    from indexer.merge import merge_in_background
    from search.index import vector_store

    monkeypatch.setattr(updates, "MERGE_SEGMENTS", 2)
    index = tmp_path / "index"
    build([_seeds(tmp_path / "base", ("000", "001", "002", "003"))], index, options=BuildOptions(vector_index="ivf"))
    stories = ("A harbour crane collapsed during a storm on Sunday night, damaging two cargo ships.",
               "The city council voted to close the old library and open a larger one by the river.",
               "Volcanic ash grounded every flight at the island's airport for a second day.",
               "The national orchestra cancelled its winter tour after a strike by stage crews.",
               "A rare white deer was seen grazing near the motorway outside the capital.")
    questions = ("Which crane fell in the storm?", "What happens to the old library?", "Why were flights grounded?",
                 "Why did the orchestra call off its tour?", "Where was the white deer seen?")
    shapes = []
    for n, (text, code_at) in enumerate(zip(stories, (1, 1, 1, 10**6, 1))):
        monkeypatch.setattr(updates, "CODE_AT", code_at)
        brief = {"id": f"brief-{n}", "title": f"Brief {n}", "text": text}
        update(index, [write_jsonl(tmp_path / f"brief-{n}.jsonl", brief)])
        generation = current(index)
        layout = segments.Layout.of(store.read_manifest(generation), generation)
        shapes.append([("coded" if segments.is_coded(s, generation) else "flat") for s in layout.segments[1:]])
        if n == 2:
            first = layout.segments[1], vector_store.FaissStore.read(generation / layout.segments[1].name)
            inode = os.stat(generation / layout.segments[1].name / store.VECTORS).st_ino
        if n == 3:  # the flat ones folded, the coded one left as it was
            assert layout.segments[1] == first[0]
            assert os.stat(generation / layout.segments[1].name / store.VECTORS).st_ino == inode
    assert shapes == [["flat"], ["flat", "flat"], ["coded", "flat"], ["coded", "flat", "flat"], ["coded", "flat"]]
    (segment, earlier), later = first, vector_store.FaissStore.read(generation / layout.segments[1].name)
    ids = np.arange(*segment.passages)  # the last fold carried the first one's codes as they were
    assert layout.segments[1].passages[0] == segment.passages[0] and np.array_equal(earlier.vectors(ids),
                                                                                      later.vectors(ids))

    searcher = Searcher.open(index)
    vectors = searcher._vectors
    assert len(vectors._parts) == 3 and vectors.in_memory is not None
    live = np.flatnonzero(layout.live())
    for n, question in enumerate(questions):
        query = searcher.embedder.embed([question])[0]
        scores, ids = vectors.search(query[None], 10)
        every = vectors.scores(query, live)  # each passage as its segment scores it
        # the ten found are the ten best of all, each with its own score (the order of two
        # within float rounding of each other is the kernels')
        assert np.allclose(scores[0], np.sort(every)[::-1][:10], atol=1e-5)
        assert np.allclose(scores[0], vectors.scores(query, ids[0]), atol=1e-5)
        assert len(set(ids[0].tolist())) == 10
        assert searcher.search(question, 1, "dense")[0].citations[0].doc_id == f"brief-{n}"

    merge_in_background(index)  # the coded passages' vectors carried into one base again
    merged = Searcher.open(index)
    assert "segments" not in merged.manifest and merged.describe()["documents"] == 4 + 5
    for n, question in enumerate(questions):
        assert merged.search(question, 1, "dense")[0].citations[0].doc_id == f"brief-{n}"


def test_an_index_whose_update_only_deleted_answers_without_them(tmp_path, embedder):
    index = tmp_path / "index"
    build([_seeds(tmp_path / "all", ("000", "003", "004"))], index)
    removed = next(SEEDS.glob("004_*")).stem
    update(index, remove=[removed])
    layout = segments.Layout.of(store.read_manifest(current(index)), current(index))
    assert len(layout.segments) == 1 and len(layout.deleted) > 0  # a base, and deletions
    searcher = Searcher.open(index)
    for mode in ("hybrid", "dense", "lexical"):
        hits = searcher.search("Lukashenko foreign troops Belarus", 10, mode)
        assert hits and all(h.citations[0].doc_id != removed for h in hits)


def test_a_searcher_of_the_next_generation_reads_only_the_new_passages_and_the_same_answers(tmp_path, embedder):
    """A process that served one generation opens the next reusing what it read of the
    passages both hold; what it holds then is what a fresh process would read."""
    import numpy as np

    import search.searcher as searchers

    index = tmp_path / "index"
    build([_seeds(tmp_path / "base", ("000", "002", "003"))], index)
    first = Searcher.open(index)
    first.search("the latest on North Korean troops", 3)  # reads the publication dates
    update(index, [_seeds(tmp_path / "more", ("004",))], remove=[next(SEEDS.glob("003_*")).stem])
    reused = Searcher.open(index)
    assert reused._extends(first)
    searchers._LATEST.clear()
    fresh = Searcher.open(index)
    live = fresh._layout.live()  # (a deleted passage's old reading stays: nothing reaches it)
    assert not live.all()
    for name in ("_document_row", "_sentence_range"):
        np.testing.assert_array_equal(getattr(reused, name)[live], getattr(fresh, name)[live])
    np.testing.assert_array_equal(reused._dates.days[live], fresh._dates.days[live])
    for question in QUESTIONS:
        assert [(h.citations[0].doc_id, h.text, h.score) for h in reused.search(question, 5)] == \
            [(h.citations[0].doc_id, h.text, h.score) for h in fresh.search(question, 5)]
    update(index, merge=True)  # renumbered: nothing of the old reading holds
    assert not Searcher.open(index)._extends(fresh)


def test_an_update_writes_a_store_of_what_it_adds_and_links_the_others(segmented):
    """No store is copied: the base's and the older segments' stores are the previous
    generation's files, and the new segment's holds only its own document."""
    import sqlite3

    generation, previous = current(segmented), segmented / "generations" / "g000004"
    for name in ("store.sqlite", "segments/s000001/store.sqlite"):
        assert os.stat(generation / name).st_ino == os.stat(previous / name).st_ino
    with sqlite3.connect(generation / "segments/s000003/store.sqlite") as conn:
        assert conn.execute("SELECT doc_id FROM documents").fetchall() == [(REPLACEMENT["id"],)]
    manifest = store.read_manifest(generation)
    assert manifest["counts"]["documents"] == 4 and manifest[segments.OWN_STORES] is True
    assert manifest["counts"]["passages"] == Searcher.open(segmented).describe()["passages"]


def _one_store(generation):
    """Rewrite a generation as the first segmented format wrote it: one store.sqlite of
    every live row, no store in any segment, no mark in the manifest."""
    import json
    import sqlite3

    manifest = store.read_manifest(generation)
    layout = segments.Layout.of(manifest, generation)
    base = generation / "store.sqlite"
    shutil.copy(base, generation / "base.sqlite")  # (a copy: the base file is shared by hard links)
    os.replace(generation / "base.sqlite", base)
    with sqlite3.connect(base) as conn:
        gone = [int(r) + 1 for r in layout.deleted_documents if r < layout.segments[0].documents[1]]
        conn.executemany("DELETE FROM sentences WHERE passage_id IN (SELECT id FROM passages WHERE doc_id = "
                         "(SELECT doc_id FROM documents WHERE rowid = ?))", [(r,) for r in gone])
        conn.executemany("DELETE FROM passages WHERE doc_id = (SELECT doc_id FROM documents WHERE rowid = ?)",
                         [(r,) for r in gone])
        conn.executemany("DELETE FROM documents WHERE rowid = ?", [(r,) for r in gone])
        for segment in layout.segments[1:]:
            part = generation / segment.name / "store.sqlite"
            conn.execute("ATTACH DATABASE ? AS part", (str(part),))
            live = ",".join(str(r + 1) for r in range(*segment.documents) if r not in set(layout.deleted_documents))
            conn.execute(f"INSERT INTO documents (rowid, doc_id, title, source, url, published, author, sha256, text) "
                         f"SELECT rowid, doc_id, title, source, url, published, author, sha256, text "
                         f"FROM part.documents WHERE rowid IN ({live})")
            conn.execute('INSERT INTO passages SELECT * FROM part.passages WHERE doc_id IN '
                         f'(SELECT doc_id FROM part.documents WHERE rowid IN ({live}))')
            conn.execute("INSERT INTO sentences SELECT * FROM part.sentences WHERE passage_id IN "
                         "(SELECT id FROM main.passages)")
            conn.execute("INSERT OR REPLACE INTO duplicates SELECT * FROM part.duplicates")
            conn.commit()
            conn.execute("DETACH DATABASE part")
            os.remove(part)
            del manifest["checksums"][f"{segment.name}/store.sqlite"]
    manifest["checksums"]["store.sqlite"] = store.file_checksum(base)
    del manifest[segments.OWN_STORES]
    (generation / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_a_generation_with_one_store_for_its_segments_is_read_and_merged_by_its_next_update(segmented, tmp_path,
                                                                                           monkeypatch):
    monkeypatch.setattr(updates, "MERGE_DELETED", 1.0)  # (the policy alone would append)
    monkeypatch.setattr(updates, "MERGE_SHARE", 100.0)
    old = tmp_path / "old"
    shutil.copytree(segmented, old)
    _one_store(current(old))
    ours, theirs = Searcher.open(old), Searcher.open(segmented)
    for question in QUESTIONS:
        assert [(c.doc_id, c.paragraph) for h in ours.search(question, 8) for c in h.citations] == \
            [(c.doc_id, c.paragraph) for h in theirs.search(question, 8) for c in h.citations], question
    assert ours.document(REPLACEMENT["id"])["text"] == REPLACEMENT["text"]
    assert not segments.Layout.of(store.read_manifest(current(old)), current(old)).own_stores
    shutil.copytree(segmented, tmp_path / "new")
    assert not update(tmp_path / "new", remove=[next(SEEDS.glob("000_*")).stem]).merged  # the new format appends
    summary = update(old, remove=[next(SEEDS.glob("003_*")).stem])
    assert summary.merged and summary.documents == 3
    assert segments.Layout.of(store.read_manifest(current(old)), current(old)).simple


def test_a_background_merge_keeps_the_writes_made_while_it_ran(tmp_path, embedder, monkeypatch):
    from indexer.merge import merge_in_background

    monkeypatch.setattr(updates, "MERGE_DELETED", 1.0)  # the updates made meanwhile append

    index = tmp_path / "index"
    build([_seeds(tmp_path / "base", ("000", "003"))], index)
    update(index, [_seeds(tmp_path / "a", ("002",))])
    update(index, remove=[next(SEEDS.glob("000_*")).stem])
    removed = next(SEEDS.glob("003_*")).stem

    def meanwhile():  # writes while the merged base is being written, each its own generation
        update(index, [_seeds(tmp_path / "b", ("004",))])
        update(index, [write_jsonl(tmp_path / "replacement.jsonl", REPLACEMENT)])
        update(index, remove=[removed])

    summary = merge_in_background(index, embedder, hold=meanwhile)
    generation = current(index)
    layout = segments.Layout.of(store.read_manifest(generation), generation)
    assert summary.generation == generation.name and len(layout.segments) == 2  # the merged base, and the catch-up
    searcher = Searcher.open(index)
    assert searcher.document(REPLACEMENT["id"])["text"] == REPLACEMENT["text"]
    with pytest.raises(DocumentNotFound):
        searcher.document(removed)
    reference = tmp_path / "reference"
    shutil.copytree(index, reference)
    update(reference, merge=True)
    theirs = Searcher.open(reference)
    assert searcher.describe()["passages"] == theirs.describe()["passages"]
    for mode in ("hybrid", "dense", "lexical"):
        for question in QUESTIONS + ("memes motorcade airport",):
            a, b = searcher.search(question, 8, mode), theirs.search(question, 8, mode)
            assert [(c.doc_id, c.paragraph) for h in a for c in h.citations] == \
                [(c.doc_id, c.paragraph) for h in b for c in h.citations], (mode, question)
            assert [round(h.score, 5) for h in a] == [round(h.score, 5) for h in b], (mode, question)


def test_the_service_writer_merges_in_the_background_when_the_policy_asks(index_copy, embedder, monkeypatch):
    import time

    from indexer.sources import Document
    from search.service.writer import Writer

    monkeypatch.setattr(updates, "MERGE_DELETED", 0.0)  # any deletion asks for a merge
    writer = Writer(index_copy, lambda: embedder, interval_s=0.0, busy_interval_s=0.0)
    summary = writer.write(remove=[next(SEEDS.glob("002_*")).stem])
    assert not summary.merged  # the write itself appended (a deletion), and did not wait for a merge
    deadline = time.monotonic() + 120
    while not segments.Layout.of(store.read_manifest(current(index_copy)), current(index_copy)).simple:
        assert time.monotonic() < deadline, "no background merge happened"
        time.sleep(0.2)
    brief = Document(doc_id="brief", source="brief", text="Officials opened a new bridge over the river on Monday.")
    assert writer.write([brief]).added == ["brief"]
    assert Searcher.open(index_copy).search("new bridge over the river", 1, "lexical")[0].citations[0].doc_id == "brief"


def test_a_background_merge_overtaken_by_a_merge_publishes_nothing(tmp_path, embedder):
    from indexer.merge import merge_in_background

    index = tmp_path / "index"
    build([_seeds(tmp_path / "base", ("000", "003"))], index)
    update(index, [_seeds(tmp_path / "a", ("002",))])
    summary = merge_in_background(index, embedder, hold=lambda: update(index, merge=True))
    assert summary.generation == current(index).name == "g000003"  # the build, the add, the merge on demand
    assert Searcher.open(index).describe()["documents"] == 3


def test_the_next_generation_scores_bm25_from_the_postings_read_before_as_a_fresh_reader_does(tmp_path, embedder,
                                                                                            monkeypatch):
    """A term's postings in a segment are read once and kept for the generations that share
    the segment (under ingestion a generation a second); the scores are still the new
    generation's statistics, bit for bit a fresh reader's, deletions in a kept segment
    included, and after a fold (the kept postings' newest segments are gone)."""
    index = tmp_path / "index"
    build([_seeds(tmp_path / "base", ("000", "002"))], index)
    update(index, [_seeds(tmp_path / "more", ("003",))])
    first = Searcher.open(index)
    for question in QUESTIONS:
        first.search(question, 5)  # reads the postings of their terms in both segments
    update(index, [_seeds(tmp_path / "last", ("004",))], remove=[next(SEEDS.glob("003_*")).stem])
    reused = _same_bm25_as_a_fresh_reader(index, first)
    assert [s.name for s in reused._layout.segments] == ["", "segments/s000001", "segments/s000002"]
    for setting, value in (("MERGE_SEGMENTS", 1), ("MERGE_SHARE", 10.0), ("MERGE_DELETED", 1.0)):
        monkeypatch.setattr(updates, setting, value)  # the next update folds the two, merges nothing
    update(index, [_seeds(tmp_path / "again", ("001",))])
    folded = _same_bm25_as_a_fresh_reader(index, reused)
    assert [s.name for s in folded._layout.segments] == ["", "segments/s000003", "segments/s000004"]


def _same_bm25_as_a_fresh_reader(index, previous):
    """The index's current generation opened after `previous` (carrying its postings), once
    its BM25 answers were checked against a reader that read everything afresh."""
    import weakref

    import numpy as np

    import search.searcher as searchers
    from search.index.lexical import search_terms

    reused = Searcher.open(index)
    assert reused._passage_lexical._read is previous._passage_lexical._read
    assert reused._document_lexical._read is previous._document_lexical._read
    searchers._LATEST.clear()
    fresh = Searcher.open(index)
    assert fresh._passage_lexical._read is not previous._passage_lexical._read
    for question in QUESTIONS:
        words = search_terms(question)
        for part in ("_passage_lexical", "_document_lexical"):
            kept, read = getattr(reused, part), getattr(fresh, part)
            rows, scores = kept.best_of(words, 1000)
            expected_rows, expected = read.best_of(words, 1000)
            np.testing.assert_array_equal(rows, expected_rows)
            np.testing.assert_array_equal(scores, expected)  # exactly, not approximately
        assert [(h.citations[0].doc_id, h.score) for h in reused.search(question, 5, "lexical")] == \
            [(h.citations[0].doc_id, h.score) for h in fresh.search(question, 5, "lexical")]
    searchers._LATEST[str(index.resolve())] = weakref.ref(reused)  # what the next one carries from
    return reused


def test_the_next_generation_carries_the_segments_it_held_and_reads_only_the_new_one(tmp_path, embedder,
                                                                                     monkeypatch):
    """Under steady ingestion a worker opens a generation every few seconds: the updates'
    segments it holds in memory and their sentence rows are carried, only the new
    segment's files are read, and it answers as a fresh process does."""
    from pathlib import Path

    import faiss
    import numpy as np

    import search.searcher as searchers
    from search.index import vector_store

    index = tmp_path / "index"
    build([_seeds(tmp_path / "base", ("000", "001"))], index)
    update(index, [_seeds(tmp_path / "a", ("002",))])
    first = Searcher.open(index)
    update(index, [_seeds(tmp_path / "b", ("003",))])
    read = []
    real = vector_store.FaissStore.read
    monkeypatch.setattr(vector_store.FaissStore, "read",
                        lambda directory, nprobe=None: read.append(Path(directory).name) or real(directory, nprobe))
    carried = Searcher.open(index)
    assert carried._extends(first) and read == ["s000002"]  # not the base, not s000001 again
    assert carried._sentence_vectors._parts[:2] == first._sentence_vectors._parts  # the same objects
    searchers._LATEST.clear()
    fresh = Searcher.open(index)
    ours, theirs = carried._vectors.in_memory[1], fresh._vectors.in_memory[1]
    np.testing.assert_array_equal(faiss.vector_to_array(ours.id_map), faiss.vector_to_array(theirs.id_map))
    np.testing.assert_array_equal(faiss.downcast_index(ours.index).reconstruct_n(0, ours.ntotal),
                                  faiss.downcast_index(theirs.index).reconstruct_n(0, theirs.ntotal))
    for question in QUESTIONS:
        assert [(h.citations[0].doc_id, h.text, h.score) for h in carried.search(question, 5)] == \
            [(h.citations[0].doc_id, h.text, h.score) for h in fresh.search(question, 5)]


def test_the_in_memory_segments_are_searched_above_the_base_as_a_full_top_k_search_would(tmp_path, embedder):
    """Only the updates' passages that beat the base's k-th score are taken from the
    in-memory segments: the same ids and scores, bit for bit, as searching them to the
    full depth and merging, with deletions in the base and in the segments."""
    import numpy as np

    index = tmp_path / "index"
    build([_seeds(tmp_path / "base", ("000", "001", "002"))], index)
    update(index, [_seeds(tmp_path / "a", ("003",))])
    later = _seeds(tmp_path / "b", ("004",))
    for n in (1, 2):  # the same passages again: ties with the base's, and among the updates'
        copy = next(SEEDS.glob("002_*.txt"))
        (later / f"9{n}_{copy.name}").write_text(copy.read_text())
    update(index, [later])
    held = Searcher.open(index)
    gone = [next(d for d in held._store.live_doc_ids() if d.startswith(prefix)) for prefix in ("001", "003")]
    update(index, [], remove=gone)
    searcher = Searcher.open(index)
    vectors = searcher._vectors
    assert vectors.in_memory is not None and any(vectors._deleted_in)
    rng = np.random.default_rng(7)
    questions = embedder.embed(QUESTIONS)
    noise = rng.normal(size=(40, questions.shape[1])).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    for batch in (questions[:1], questions, noise[:1], noise):
        for k in (1, 3, 10, 60, 1000):
            ours = vectors.search(batch, k)
            vectors.in_memory, kept = None, vectors.in_memory  # the full top-k search of every part
            theirs = vectors.search(batch, k)
            vectors.in_memory = kept
            np.testing.assert_array_equal(ours[1], theirs[1])
            np.testing.assert_array_equal(ours[0], theirs[0])
            assert ours[0].dtype == theirs[0].dtype


def test_a_reload_keeps_the_carried_segments_connections_and_closes_them_with_the_last_reader(tmp_path, embedder,
                                                                                            monkeypatch):
    """A worker reloading every few seconds opens a connection only to the new segment's
    store; a file's connections close as soon as no searcher reads it (not whenever the
    cyclic collector gets to them)."""
    import gc
    import sqlite3

    from search.index import store as stores

    index = tmp_path / "index"
    build([_seeds(tmp_path / "base", ("000", "001"))], index)
    update(index, [_seeds(tmp_path / "a", ("002",))])
    first = Searcher.open(index)
    held = [first._store.connection(p) for p in range(len(first._store.parts))]
    update(index, [_seeds(tmp_path / "b", ("003",))])
    opened = []
    real = stores.connect
    monkeypatch.setattr(stores, "connect", lambda path, readonly=True: opened.append(path.parent.name) or
                        real(path, readonly))
    second = Searcher.open(index)
    now = [second._store.connection(p) for p in range(len(second._store.parts))]
    assert len(held) == 2 and now[:2] == held and opened == ["s000002"]
    del first
    gc.collect()
    assert held[0].execute("SELECT count(*) FROM passages").fetchone()[0] > 0  # the second reads it still
    gone = next(d for d in second._store.live_doc_ids() if d.startswith("002"))
    update(index, [], remove=[gone], merge=True)  # one new base: nothing carried
    third = Searcher.open(index)
    assert [h.citations[0].doc_id for h in third.search("Who wrote the opinion piece?", 3)]
    del second
    gc.collect()
    for conn in now:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")
    assert third._store.connection(0) not in now
