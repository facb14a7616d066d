"""Index lifecycle: generations, incremental add/replace/remove (the same index a full
build makes, without re-embedding what did not change), and the layouts an index has had."""

import gc
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from indexer import build
from indexer.update import update
from search import Searcher
from search.errors import DocumentNotFound
from search.index import generations
from search.index.generations import current
from search.index.sentence_vectors import SentenceVectors

from helpers import ROOT, SEEDS, write_jsonl

VOLCANO = {"id": "volcano", "title": "Volcano erupts on the Reykjanes peninsula",
           "text": "A volcano erupted on the Reykjanes peninsula on Monday night, sending lava fountains "
                   "100 metres into the air.\n\nThe nearby town of Grindavik had been evacuated days earlier "
                   "as a precaution, officials said, and no one was hurt.\n"}
QUESTIONS = ["How many Russian casualties since 2022", "Where did the lava fountains rise?",
             "North Korean troops in Kursk", "KN-23 missiles", "Who was evacuated?"]


class CountingEmbedder:
    """The real model, counting the texts it is asked to embed."""

    def __init__(self, real):
        self.real, self.texts = real, []
        self.name, self.backend, self.dimension = real.name, real.backend, real.dimension
        self.max_tokens, self.count_tokens = real.max_tokens, real.count_tokens

    def embed(self, texts, batch_size=32, progress=False):
        self.texts.extend(texts)
        return self.real.embed(texts, batch_size=batch_size)


def results(index, mode="hybrid"):
    searcher = Searcher.open(index, backend=Searcher.open(index, verify=False).manifest["model"]["backend"])
    return [[(h.text, [(c.doc_id, c.paragraph, c.start, c.end) for c in h.citations], round(h.score, 4))
             for h in searcher.search(q, k=5, mode=mode)] for q in QUESTIONS]


def same_answers(a, b):
    """Equal passages, citations and order; scores equal up to float noise."""
    assert [[(text, cites) for text, cites, _ in hits] for hits in a] == \
        [[(text, cites) for text, cites, _ in hits] for hits in b]
    np.testing.assert_allclose([s for hits in a for *_, s in hits], [s for hits in b for *_, s in hits], atol=2e-3)


def test_add_then_remove_answers_as_full_builds_do(tmp_path):
    # the default int8 model: a text embeds the same in an update as in a build
    seeds, full, seeds_only = tmp_path / "seeds", tmp_path / "full", tmp_path / "seeds-only"
    build([SEEDS], seeds)
    feed = write_jsonl(tmp_path / "feed.jsonl", VOLCANO)
    build([SEEDS, feed], full)
    summary = update(seeds, [feed])
    assert (summary.added, summary.generation) == (["volcano"], "g000002")
    assert Searcher.open(seeds).search("Who was evacuated?", k=1)[0].citations[0].doc_id == "volcano"
    update(seeds, remove=["volcano"])
    build([SEEDS], seeds_only)
    for mode in ("hybrid", "dense", "lexical"):
        same_answers(results(seeds, mode), results(seeds_only, mode))
    update(seeds, [feed])
    for mode in ("hybrid", "dense", "lexical"):
        same_answers(results(seeds, mode), results(full, mode))


def test_unchanged_documents_are_not_embedded_again(index_copy, tmp_path, embedder):
    counting = CountingEmbedder(embedder)
    feed = write_jsonl(tmp_path / "feed.jsonl", VOLCANO)
    first = update(index_copy, [feed], embedder=counting)
    # two one-sentence paragraphs: each sentence takes its passage's vector, embedded once
    assert first.embedded_passages == 2 and len(counting.texts) == 2
    assert "lava fountains" in counting.texts[0] and "Grindavik" in counting.texts[1]

    counting.texts.clear()
    again = update(index_copy, [feed, SEEDS], embedder=counting)
    assert not again.changed and counting.texts == []
    assert sorted(again.unchanged) == sorted(["volcano"] + [p.stem for p in SEEDS.glob("*.txt")])
    assert current(index_copy).name == "g000002"  # nothing changed: no new generation

    changed = dict(VOLCANO, text=VOLCANO["text"].replace("Monday", "Tuesday"))
    replaced = update(index_copy, [write_jsonl(tmp_path / "feed.jsonl", changed)], embedder=counting)
    assert replaced.replaced == ["volcano"] and replaced.embedded_passages == 2
    assert not any("Kursk" in t for t in counting.texts)  # the seeds were not embedded again
    searcher = Searcher.open(index_copy)
    assert "Tuesday" in searcher.document("volcano")["text"]
    assert searcher.describe()["documents"] == 6 and searcher.generation == "g000003"


def test_removed_documents_are_never_returned(index_copy):
    doc = "002_2d4b3a8059ce6963"
    update(index_copy, remove=[doc])
    searcher = Searcher.open(index_copy)
    for mode in ("hybrid", "dense", "lexical"):
        for q in QUESTIONS:
            assert all(c.doc_id != doc for h in searcher.search(q, k=20, mode=mode, collapse=False)
                       for c in h.citations)
    with pytest.raises(DocumentNotFound):
        searcher.document(doc)


def test_unknown_id_to_remove_changes_nothing(index_copy):
    with pytest.raises(DocumentNotFound, match="no document with id 'nope' in the index; nothing was changed"):
        update(index_copy, remove=["002_2d4b3a8059ce6963", "nope"])
    assert current(index_copy).name == "g000001"
    assert Searcher.open(index_copy).describe()["documents"] == 5


def test_same_id_twice_in_one_batch(index_copy, tmp_path):
    feed = write_jsonl(tmp_path / "feed.jsonl", VOLCANO, dict(VOLCANO, text="Another text altogether."))
    summary = update(index_copy, [feed])
    assert summary.added == ["volcano"]
    assert [s.reason for s in summary.skipped] == [f"duplicate doc_id 'volcano' (first in {feed})"]
    assert "lava" in Searcher.open(index_copy).document("volcano")["text"]
    from search.errors import BuildError

    with pytest.raises(BuildError, match="duplicate doc_id 'volcano'.*nothing was changed"):
        update(index_copy, [feed], strict=True)


def test_duplicate_groups_follow_updates(index_copy):
    op_ed, translation = "000_c7708b97d51473e9", "001_69714012eee412eb"
    built = Searcher.open(index_copy).manifest["duplicates"]
    assert built["grouped_passages"] == 28  # the op-ed's 14 paragraphs and their translations
    update(index_copy, remove=[translation])
    searcher = Searcher.open(index_copy)
    assert searcher.manifest["duplicates"]["grouped_passages"] == 0
    assert all(len(h.citations) == 1 for h in searcher.search(QUESTIONS[0], k=5))
    update(index_copy, [SEEDS])  # the translation comes back and is grouped with its original again
    top = Searcher.open(index_copy).search(QUESTIONS[0], k=1)[0]
    assert {c.doc_id for c in top.citations} == {op_ed, translation}
    # the same groups as the build: the translation's paragraphs embed as they did there
    assert Searcher.open(index_copy).manifest["duplicates"] == built


def test_an_ivf_index_keeps_its_clusters_through_updates(tmp_path):
    index = tmp_path / "ivf"
    from indexer.build import BuildOptions

    build([SEEDS], index, options=BuildOptions(vector_index="ivf"))
    update(index, [write_jsonl(tmp_path / "feed.jsonl", VOLCANO)])
    searcher = Searcher.open(index)
    assert searcher.manifest["vector_index"]["kind"] == "ivf"
    assert "lava" in searcher.search("lava fountains", k=1, mode="dense")[0].text


def test_old_generations_are_collected(index_copy, tmp_path, monkeypatch):
    monkeypatch.setattr(generations, "GRACE_S", 0.0)
    for n in range(4):
        update(index_copy, documents=[], srcs=[write_jsonl(tmp_path / "feed.jsonl",
                                                           dict(VOLCANO, text=VOLCANO["text"] + f"Update {n}."))])
    names = sorted(p.name for p in (index_copy / "generations").iterdir())
    assert names == ["g000003", "g000004", "g000005"]  # the current one and KEEP=2 before it
    assert (index_copy / "CURRENT").read_text().strip() == "g000005"


def _updates(index, tmp_path, count):
    for n in range(count):
        update(index, documents=[], srcs=[write_jsonl(tmp_path / "feed.jsonl",
                                                      dict(VOLCANO, text=VOLCANO["text"] + f"Update {n}."))])


def test_an_idle_reader_keeps_its_files_through_updates_and_collection(index_copy, tmp_path, monkeypatch):
    # a searcher opened first, idle through five updates whose publishing collects old
    # generations at once, then asked from a thread that never searched (which opens its
    # own SQLite connection to the generation's store): it answers from what it opened
    monkeypatch.setattr(generations, "GRACE_S", 0.0)
    idle = Searcher.open(index_copy)
    assert idle.search("Who was evacuated?", k=1)
    _updates(index_copy, tmp_path, 5)
    assert (index_copy / "generations" / idle.generation).is_dir()
    answers = []
    thread = threading.Thread(target=lambda: answers.append(idle.search("Which ports had a strike?", k=2)))
    thread.start()
    thread.join()
    assert answers and len(answers[0]) == 2
    # once the reader lets go, the next collection takes its generation
    held = idle.generation
    del idle, answers
    gc.collect()
    generations.collect(index_copy)
    assert not (index_copy / "generations" / held).exists()


def test_a_single_directory_index_is_read_and_migrated(seed_index, tmp_path):
    legacy = tmp_path / "legacy"
    shutil.copytree(current(seed_index), legacy)  # the layout before generations
    assert Searcher.open(legacy).describe()["generation"] is None
    assert results(legacy) == results(seed_index)
    update(legacy, [write_jsonl(tmp_path / "feed.jsonl", VOLCANO)])
    assert sorted(p.name for p in legacy.iterdir()) == [".lock", "CURRENT", "generations"]
    assert Searcher.open(legacy).describe()["documents"] == 6


def test_a_corrupt_pointer_is_refused_clearly(index_copy):
    from search.errors import IndexCorrupt

    (index_copy / "CURRENT").write_text("../../etc\n")
    with pytest.raises(IndexCorrupt, match="CURRENT names '../../etc', not a generation"):
        Searcher.open(index_copy)


def test_cli_add_and_remove(index_copy, tmp_path):
    feed = write_jsonl(tmp_path / "feed.jsonl", VOLCANO)

    def run(*args):
        return subprocess.run([sys.executable, "-m", "indexer", *args, "--index", str(index_copy)],
                              cwd=ROOT, capture_output=True, text=True)

    added = run("add", str(feed))
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added 1, replaced 0, removed 0, unchanged 0; skipped 0: 6 documents")
    assert "g000002" in added.stdout
    missing = run("remove", "volcano", "nope")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "indexer: error: no document with id 'nope' in the index; nothing was changed"
    removed = run("remove", "volcano")
    assert removed.returncode == 0 and removed.stdout.startswith("added 0, replaced 0, removed 1")
    vectors = SentenceVectors.open(current(index_copy))
    assert len(vectors) == Searcher.open(index_copy).manifest["counts"]["sentences"]


def test_strict_keeps_a_document_whose_replacement_is_only_page_cruft(index_copy, tmp_path):
    from search.errors import BuildError

    update(index_copy, [write_jsonl(tmp_path / "feed.jsonl", VOLCANO)])
    before = current(index_copy)
    cruft = write_jsonl(tmp_path / "cruft.jsonl", dict(VOLCANO, text="close\nComments\nNo time to read?\n"))
    with pytest.raises(BuildError, match="'volcano' has no article text.*--strict: nothing was changed"):
        update(index_copy, [cruft], strict=True)
    assert current(index_copy) == before
    assert "lava" in Searcher.open(index_copy).document("volcano")["text"]


def test_an_idle_gunicorn_worker_answers_after_updates_and_collection(index_copy, tmp_path, monkeypatch):
    # one worker that does not look for new generations while the test runs (the longest
    # an idle worker can go on its first one), five updates whose publishing collects at
    # once, then requests on all its threads, most of which never searched before
    from concurrent.futures import ThreadPoolExecutor

    from tools.served import get, gunicorn

    monkeypatch.setattr(generations, "GRACE_S", 0.0)
    env = {"SEARCH_WORKERS": "1", "SEARCH_THREADS": "4", "SEARCH_RELOAD_CHECK_S": "3600"}
    with gunicorn(index_copy, env=env) as (port, _):
        assert get(port, "/search?q=strike")[0] == 200
        _updates(index_copy, tmp_path, 5)
        # collection ran, and left the generation the worker holds
        assert not (index_copy / "generations" / "g000002").exists()
        assert (index_copy / "generations" / "g000001").is_dir()
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda n: get(port, f"/search?q=ports+strike+{n}")[0], range(16)))
    assert statuses == [200] * 16


def test_a_reload_that_fails_is_retried_with_backoff(index_copy, tmp_path, monkeypatch):
    from search.live import LiveSearcher

    attempts = []

    def opener():
        attempts.append(time.monotonic())
        if len(attempts) in (2, 3):  # the new generation fails to open twice
            raise OSError("not yet")
        return Searcher.open(index_copy)

    monkeypatch.setattr(LiveSearcher, "RETRY_S", 0.2)
    live = LiveSearcher(index_copy, opener, check_s=0)
    first = live.get().generation
    _updates(index_copy, tmp_path, 1)
    deadline = time.monotonic() + 20
    while live.get().generation == first and time.monotonic() < deadline:
        time.sleep(0.01)
    assert live.get().generation == current(index_copy).name
    assert len(attempts) == 4  # one open, two failures, the reload that worked
    assert attempts[2] - attempts[1] >= 0.2 and attempts[3] - attempts[2] >= 0.4  # waits that double


def test_a_rebuild_that_would_drop_added_documents_refuses_and_says_how_to_proceed(tmp_path):
    # scripts/serve rebuilds the seeds' index when seeds/ change: documents added through
    # the API since must not go silently
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    index = tmp_path / "index"
    build([seeds], index)
    update(index, [write_jsonl(tmp_path / "feed.jsonl", VOLCANO)])
    generation = current(index).name
    first = sorted(seeds.iterdir())[0]
    first.write_text(first.read_text(encoding="utf-8") + "\nA paragraph added later.\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "indexer", "build", str(seeds), "--index", str(index),
                           "--if-changed", "--no-drop", "--quiet"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode != 0
    assert "'volcano'" in done.stderr and f"indexer add SOURCES --index {index}" in done.stderr
    assert current(index).name == generation  # nothing changed
    assert build([seeds], index, if_changed=True, drop=True).rebuilt  # a plain rebuild still replaces it


def test_an_update_syncs_what_it_wrote_and_every_directory_not_the_files_it_links(index_copy, tmp_path, monkeypatch):
    """The files an update carries are hard links to the published generation's, synced when
    it was published; the new segment's files and every directory (the links) are synced."""
    import os

    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    before = current(index_copy)
    update(index_copy, documents=[], srcs=[write_jsonl(tmp_path / "feed.jsonl", VOLCANO)])  # a segment first
    monkeypatch.setattr(os, "fsync", fsync)
    update(index_copy, documents=[], srcs=[write_jsonl(tmp_path / "feed.jsonl",
                                                       dict(VOLCANO, id="volcano-2", text=VOLCANO["text"] + "More."))])
    after = current(index_copy)
    assert before != after
    files = {p.relative_to(after) for p in after.rglob("*") if p.is_file()}
    linked = {p for p in files if (after / p).stat().st_nlink > 1}
    written = files - linked
    marker = f"{os.sep}generations{os.sep}.tmp-"
    # what was synced in the scratch tree the generation was written in, relative to it
    synced_files = {p.split(marker, 1)[1].partition(os.sep)[2] or "." for p in synced if marker in p}
    assert linked and written
    assert all(str(p) in synced_files for p in written)  # everything new is synced
    assert not any(str(p) in synced_files for p in linked)  # nothing carried is synced again
    directories = {str(p.relative_to(after)) for p in after.rglob("*") if p.is_dir()}
    assert directories <= synced_files | {"."}
