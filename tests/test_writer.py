"""One writer per index (search/service/writer_process.py): a process of its own that the
service's workers and `indexer add` send their writes to, batching what arrives together."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from search import DocumentNotFound, Searcher
from search.index.generations import current, number
from search.index.store import read_manifest
from search.service import writer_process

from helpers import write_jsonl

ROOT = Path(__file__).resolve().parents[1]
VOLCANO = {"id": "volcano", "title": "Volcano erupts on the Reykjanes peninsula",
           "text": "A volcano erupted on the Reykjanes peninsula on Monday night, sending lava fountains "
                   "100 metres into the air.\n\nThe nearby town of Grindavik had been evacuated days earlier "
                   "as a precaution, officials said, and no one was hurt.\n"}


def _brief(n: int):
    from indexer.sources import Document

    return Document(doc_id=f"brief-{n}", source=f"brief-{n}", title=f"Bridge number {n}",
                    text=f"Officials in town number {n} opened a new bridge over the river on Monday.")


@pytest.fixture
def writer(index_copy):
    process = subprocess.Popen([sys.executable, "-m", "search.service.writer_process", str(index_copy)], cwd=ROOT,
                               env={**os.environ, "SEARCH_EMBED_THREADS": "1"}, start_new_session=True)
    deadline = time.monotonic() + 120
    while writer_process.find(index_copy) is None:
        assert process.poll() is None, "the writer process exited"
        assert time.monotonic() < deadline, "the writer process did not start"
        time.sleep(0.1)
    yield process
    process.terminate()
    process.wait(30)


def test_a_write_sent_to_the_writer_process_is_published_and_its_errors_come_back(index_copy, writer):
    record = json.loads((index_copy / "writer.json").read_text())
    assert record["pid"] == writer.pid and oct((index_copy / "writer.json").stat().st_mode & 0o777) == "0o600"
    summary = writer_process.write(index_copy, [_brief(1)])
    assert summary.added == ["brief-1"] and summary.generation == current(index_copy).name
    assert Searcher.open(index_copy).search("bridge in town number 1", 1, "lexical")[0].citations[0].doc_id == "brief-1"
    with pytest.raises(DocumentNotFound, match="no document with id 'nowhere'"):
        writer_process.write(index_copy, remove=["nowhere"])


def test_writes_arriving_together_are_one_generation(index_copy, writer):
    before = number(current(index_copy).name)
    with ThreadPoolExecutor(8) as pool:
        summaries = list(pool.map(lambda n: writer_process.write(index_copy, [_brief(n)]), range(8)))
    assert all(f"brief-{n}" in s.added for n, s in enumerate(summaries))  # (each batch's summary names all it added)
    made = number(current(index_copy).name) - before
    assert made <= 3  # the first write alone, then the rest together (at most one more split)
    searcher = Searcher.open(index_copy)
    assert all(searcher.document(f"brief-{n}") for n in range(8))


def _paused_writes(index_copy, embedder, busy: bool) -> list[str]:
    """Generations of three writes: one, then two sent a moment apart while the writer waits."""
    from search.service.writer import Writer

    writer = Writer(index_copy, lambda: embedder, interval_s=0.0, busy_interval_s=3.0, idle=lambda: not busy)
    first = writer.write([_brief(1)])
    with ThreadPoolExecutor(2) as pool:
        second = pool.submit(writer.write, [_brief(2)])
        time.sleep(0.2)
        third = pool.submit(writer.write, [_brief(3)])
        return [first.generation, second.result().generation, third.result().generation]


def test_on_a_busy_machine_writes_arriving_within_the_publish_interval_are_one_generation(index_copy, embedder):
    first, second, third = _paused_writes(index_copy, embedder, busy=True)
    assert number(second) == number(first) + 1 and third == second
    assert all(Searcher.open(index_copy).document(f"brief-{n}") for n in (1, 2, 3))


def test_with_a_core_to_spare_the_writer_does_not_wait_for_more_writes(index_copy, embedder):
    first, second, third = _paused_writes(index_copy, embedder, busy=False)
    assert number(first) < number(second) < number(third)


def test_a_paced_writer_gives_way_all_along_its_updates_and_merges_not_only_in_the_model(index_copy, embedder):
    from search.service.writer import Writer

    places = []  # the functions that gave way, in each thread
    pacer = lambda: places.append((threading.current_thread().name, sys._getframe(2).f_code.co_name))  # noqa: E731
    writer = Writer(index_copy, lambda: embedder, interval_s=0.0, pacer=pacer, idle=lambda: True)
    writer._merge_if_due = lambda: None  # the merge below, on demand
    assert writer.write([_brief(1), _brief(2)]).added == ["brief-1", "brief-2"]
    in_update = {f for thread, f in places if thread == "search-writer"}
    # what an update does besides its model: stories, the segment's files, the manifest
    assert {"update", "_append", "place"} <= in_update, in_update
    places.clear()
    writer._merge()
    in_merge = {f for thread, f in places}
    assert {"verify_checksums", "_write"} <= in_merge, in_merge
    assert "segments" not in read_manifest(current(index_copy))  # merged into one base
    assert Searcher.open(index_copy).document("brief-2")


def test_indexer_add_goes_through_the_running_writer(index_copy, writer, tmp_path, monkeypatch):
    import indexer.update
    from indexer.__main__ import main

    def not_here(*args, **kwargs):
        raise AssertionError("indexer add updated the index itself")

    monkeypatch.setattr(indexer.update, "update", not_here)
    assert main(["add", str(write_jsonl(tmp_path / "feed.jsonl", VOLCANO)), "--index", str(index_copy)]) == 0
    assert "lava" in Searcher.open(index_copy).document("volcano")["text"]
    assert main(["remove", "volcano", "--index", str(index_copy)]) == 0
    with pytest.raises(DocumentNotFound):
        Searcher.open(index_copy).document("volcano")


def test_without_a_live_writer_process_writes_are_made_here(index_copy, writer, tmp_path):
    os.kill(writer.pid, signal.SIGTERM)
    writer.wait(30)
    assert not (index_copy / "writer.json").exists()  # it took its address with it
    (index_copy / "writer.json").write_text(json.dumps({"socket": "/nowhere", "key": "00", "pid": writer.pid}))
    assert writer_process.find(index_copy) is None  # a record left by a writer that is gone
    from indexer.__main__ import main

    assert main(["add", str(write_jsonl(tmp_path / "feed.jsonl", VOLCANO)), "--index", str(index_copy)]) == 0
    assert Searcher.open(index_copy).document("volcano")


def test_a_served_index_has_one_writer_process_for_its_workers_and_indexer_add(index_copy, tmp_path):
    import http.client

    from tools.served import get, gunicorn

    with gunicorn(index_copy, env={"SEARCH_API_KEY": "k", "SEARCH_WORKERS": "2"}) as (port, server):
        deadline = time.monotonic() + 120
        while writer_process.find(index_copy) is None:
            assert time.monotonic() < deadline, "the service started no writer process"
            time.sleep(0.2)
        pid = writer_process.find(index_copy)["pid"]
        assert pid != server.pid
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/alerts", json.dumps({"query": "volcanic eruption near Grindavik"}),
                     {"Content-Type": "application/json", "Authorization": "Bearer k"})
        alert = json.loads(conn.getresponse().read())["id"]
        conn.request("PUT", "/documents/volcano", json.dumps({k: v for k, v in VOLCANO.items() if k != "id"}),
                     {"Content-Type": "application/json", "Authorization": "Bearer k"})
        response = conn.getresponse()
        assert response.status == 201, response.read()
        assert json.loads(response.read())["generation"] == current(index_copy).name
        put_at, matched = time.monotonic(), []  # the writer process matches it against the alert
        while not matched and time.monotonic() < put_at + 5:
            matched = json.loads(get(port, f"/alerts/{alert}/matches")[1])["matches"]
            time.sleep(0.1)
        assert [m["doc_id"] for m in matched] == ["volcano"]
        feed = write_jsonl(tmp_path / "b.jsonl", {"id": "brief", "title": "Bridge",
                                                  "text": "Officials in Grindavik opened a new bridge on Monday."})
        done = subprocess.run([sys.executable, "-m", "indexer", "add", str(feed), "--index", str(index_copy)],
                              cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0 and f"writer process {pid}" in done.stderr, done.stderr
        deadline = time.monotonic() + 5  # every worker serves it within seconds
        while True:
            found = [json.loads(get(port, "/search?q=new+bridge+Grindavik&k=1&mode=lexical")[1])["results"][0]
                     ["citations"][0]["doc_id"] for _ in range(6)]
            if found == ["brief"] * 6 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert found == ["brief"] * 6
    assert not (index_copy / "writer.json").exists()  # the writer went with the service


def test_a_reply_from_a_newer_writer_is_still_understood(index_copy):
    from indexer.update import UpdateSummary

    record = writer_process.summary_record(UpdateSummary(index_copy, added=["a"], generation="g000002"))
    summary = writer_process._summary(index_copy, {**record, "a_field_of_a_later_version": 1})
    assert summary.added == ["a"] and summary.generation == "g000002" and summary.changed
