"""Index builds with the real model: summary, manifest, bad input, atomicity."""

import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from test_clean import CRUFT

from indexer import build
from search import Searcher
from search.errors import BuildError
from search.index.generations import current

from helpers import ROOT, SEEDS

ARTICLE = ("North Korea sent engineers to the Donetsk region to help Russian forces.\n\n"
           "The engineers are said to be building fortifications behind the front line.\n")


def passage_texts(index) -> list[str]:
    with sqlite3.connect(current(index) / "store.sqlite") as conn:
        return [row[0] for row in conn.execute("SELECT text FROM passages ORDER BY id")]


def test_seed_build_summary_and_manifest(tmp_path):
    summary = build([SEEDS], tmp_path / "index")
    assert (summary.documents, len(summary.skipped)) == (5, 0)
    assert str(summary).startswith(f"indexed 5 documents, {summary.passages} passages in ")
    manifest = json.loads((current(tmp_path / "index") / "manifest.json").read_text())
    assert manifest["format_version"] == 4
    assert all(digest.startswith("xxh3_128:") for digest in manifest["checksums"].values())
    from search.embedding.onnx_export import EXPORT_VERSION

    assert manifest["model"] == {"name": "sentence-transformers/all-MiniLM-L6-v2", "backend": "onnx-int8", "dimension": 384,
                                 "normalized": True, "max_tokens": 254, "export_version": EXPORT_VERSION}
    assert manifest["counts"] == {"documents": 5, "passages": summary.passages, "skipped": 0,
                                  "sentences": manifest["counts"]["sentences"]}
    assert manifest["counts"]["sentences"] > summary.passages
    assert {name for name in manifest["checksums"] if not name.startswith("lexical/")} == {
        "vectors.faiss", "store.sqlite", "sentences.npy", "sentence_scales.npy"}
    assert any(name.startswith("lexical/passages/") for name in manifest["checksums"])
    assert any(name.startswith("lexical/documents/") for name in manifest["checksums"])
    assert manifest["inputs"]["files"] == sorted(p.name for p in SEEDS.glob("*.txt"))


def test_no_cruft_line_is_ever_a_passage(seed_index):
    texts = passage_texts(seed_index)
    for cruft in (line for lines in CRUFT.values() for line in lines):
        for text in texts:
            assert not any(line.strip().startswith(cruft) for line in text.split("\n")), (cruft, text)
    assert all(len(text.split()) >= 8 for text in texts)  # fragments were joined to a neighbour


def test_byline_joins_its_neighbour(seed_index):
    texts = passage_texts(seed_index)
    assert "Robert Fox is the Standard’s defense editor" not in texts
    assert any(t.endswith("\n\nRobert Fox is the Standard’s defense editor") for t in texts)


def test_jsonl_articles_cite_their_url(tmp_path):
    src = tmp_path / "feed.jsonl"
    records = [{"id": "a1", "title": "Engineers to Donetsk", "text": ARTICLE, "url": "https://example.org/a1",
                "published": "2024-10-25"},
               {"id": 7, "title": "", "text": ARTICLE.replace("engineers", "medics")}]
    src.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    build([src], tmp_path / "index")
    searcher = Searcher.open(tmp_path / "index")
    hit = searcher.search("engineers building fortifications", k=1)[0]
    assert hit.citations[0].source == "https://example.org/a1"
    assert hit.citations[0].title == "Engineers to Donetsk"
    assert searcher.document("a1")["published"] == "2024-10-25"
    assert searcher.document("7")["source"] == "feed.jsonl"


def test_bad_files_are_skipped_by_name(tmp_path, caplog):
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.txt").write_text(ARTICLE, encoding="utf-8")
    (src / "latin1.txt").write_bytes("Caf\xe9 society in Pyongyang is thriving this year.".encode("latin-1"))
    (src / "empty.txt").write_text("  \n\n", encoding="utf-8")
    (src / "feed.jsonl").write_text('{"id": "x", "text": "fine text here for a passage of words."}\n'
                                    "{not json\n"
                                    '{"id": "", "text": "no id"}\n'
                                    '["a list"]\n', encoding="utf-8")
    (src / "zdup.jsonl").write_text(json.dumps({"id": "good", "text": ARTICLE}) + "\n", encoding="utf-8")
    summary = build([src, tmp_path / "missing.txt"], tmp_path / "index")
    reasons = {s.where.replace(str(tmp_path), ""): s.reason for s in summary.skipped}
    assert reasons == {
        "/missing.txt": "no such file or directory",
        "/src/empty.txt": "empty",
        "/src/latin1.txt": "not UTF-8 text (byte 0xe9 at offset 3)",
        "/src/feed.jsonl:2": reasons["/src/feed.jsonl:2"],
        "/src/feed.jsonl:3": 'missing "id" (a non-empty string)',
        "/src/feed.jsonl:4": "not a JSON object",
        "/src/zdup.jsonl": f"duplicate doc_id 'good' (first in {src / 'good.txt'})",
    }
    assert reasons["/src/feed.jsonl:2"].startswith("not valid JSON")
    assert (summary.documents, len(summary.skipped)) == (2, 7)
    assert "skipped 7" in str(summary)
    assert "latin1.txt" in caplog.text


def test_strict_refuses_bad_input_and_keeps_the_old_index(index_copy, tmp_path):
    before = (current(index_copy) / "manifest.json").read_text()
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe broken")
    with pytest.raises(BuildError, match=r"bad.txt: not UTF-8 text .*--strict"):
        build([SEEDS, bad], index_copy, strict=True)
    assert (current(index_copy) / "manifest.json").read_text() == before
    assert not list(index_copy.glob("generations/.tmp-*"))


def test_nothing_to_index_is_an_error(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(BuildError, match="nothing to index: .*empty.txt: empty"):
        build([tmp_path / "empty.txt"], tmp_path / "index")
    assert not (tmp_path / "index" / "CURRENT").exists()


def test_failed_build_leaves_the_old_index_loadable(index_copy, monkeypatch):
    import faiss

    before = (current(index_copy) / "manifest.json").read_text()

    def crash(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(faiss, "write_index", crash)
    with pytest.raises(OSError):
        build([SEEDS], index_copy)
    assert (current(index_copy) / "manifest.json").read_text() == before
    assert Searcher.open(index_copy).search("710,000 casualties", k=1)[0].text
    assert not list(index_copy.glob("generations/.tmp-*"))


def test_rebuild_replaces_the_index(index_copy, tmp_path):
    (tmp_path / "one.txt").write_text(ARTICLE, encoding="utf-8")
    build([tmp_path / "one.txt"], index_copy)
    searcher = Searcher.open(index_copy)
    assert searcher.describe()["documents"] == 1
    assert searcher.search("fortifications", k=5)[0].citations[0].doc_id == "one"


def test_if_changed_skips_an_up_to_date_index(index_copy, tmp_path):
    stamp = (current(index_copy) / "manifest.json").stat().st_mtime_ns
    summary = build([SEEDS], index_copy, if_changed=True)
    assert not summary.rebuilt and "up to date" in str(summary)
    assert (current(index_copy) / "manifest.json").stat().st_mtime_ns == stamp
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    (seeds / "005_new.txt").write_text(ARTICLE, encoding="utf-8")
    assert build([seeds], index_copy, if_changed=True).rebuilt
    assert Searcher.open(index_copy).describe()["documents"] == 6


def test_if_changed_rebuilds_an_index_made_by_another_export_of_the_model(index_copy):
    # another export gives other vectors: an index of the old one is not up to date
    path = current(index_copy) / "manifest.json"
    manifest = json.loads(path.read_text())
    from search.embedding.onnx_export import EXPORT_VERSION

    assert manifest["model"]["export_version"] == EXPORT_VERSION
    manifest["model"]["export_version"] = EXPORT_VERSION - 1
    path.write_text(json.dumps(manifest))
    assert build([SEEDS], index_copy, if_changed=True).rebuilt


def test_killed_build_leaves_the_old_index_loadable(index_copy, tmp_path):
    before = json.loads((current(index_copy) / "manifest.json").read_text())
    big = tmp_path / "big.jsonl"  # enough text that the build is still embedding when killed
    with open(big, "w", encoding="utf-8") as f:
        for i in range(3000):
            f.write(json.dumps({"id": f"d{i}", "text": f"Report number {i}. " + ARTICLE}) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "indexer", "build", str(big), "--index", str(index_copy),
                             "--quiet"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(index_copy.glob("generations/.tmp-*/store.sqlite")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # well into the build: the store is being written or the model is embedding
    assert proc.poll() is None, "the build finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    searcher = Searcher.open(index_copy)  # verifies checksums
    assert searcher.manifest["built_at"] == before["built_at"]
    assert "710,000" in searcher.search("How many Russian casualties since 2022", k=1)[0].text
    # the next build clears what the killed one left behind
    build([SEEDS], index_copy, if_changed=True)
    assert not list(index_copy.glob("generations/.tmp-*"))


def test_cli_build_prints_summary_and_fails_clearly(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "indexer", "build", str(SEEDS), "--index", str(tmp_path / "i")],
                        cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("indexed 5 documents, ")
    bad = subprocess.run([sys.executable, "-m", "indexer", "build", str(tmp_path / "none.txt"),
                          "--index", str(tmp_path / "j")], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "indexer: error: nothing to index: " in bad.stderr and "Traceback" not in bad.stderr


def test_cli_build_shows_progress_on_a_terminal_and_a_summary(tmp_path):
    import fcntl
    import os
    import pty
    import struct
    import termios
    import threading

    controller, terminal = pty.openpty()  # stderr is a terminal: progress bars are drawn
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # of a usual size
    seen = bytearray()

    def drain():
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    done = subprocess.run([sys.executable, "-m", "indexer", "build", str(SEEDS), "--index", str(tmp_path / "i")],
                          cwd=ROOT, stderr=terminal, stdout=subprocess.PIPE, text=True)
    os.close(terminal)
    reader.join(timeout=10)
    os.close(controller)
    drawn = seen.decode("utf-8", "replace")
    assert done.returncode == 0
    # reading is counted by document: one .jsonl file can hold a whole corpus
    assert "reading: 5 documents" in drawn and "embedding: 100%" in drawn, drawn[-500:]
    assert re.fullmatch(r"indexed 5 documents, \d+ passages in [\d.]+ s; skipped 0 -> \S+ g000001\n", done.stdout)
    piped = subprocess.run([sys.executable, "-m", "indexer", "build", str(SEEDS), "--index", str(tmp_path / "j")],
                           cwd=ROOT, capture_output=True, text=True)
    assert "embedding" not in piped.stderr  # no bars in a log file



def _sentences_of(index, doc_id: str) -> list[str]:
    """The sentences an index holds for one document, in order, from every store it has."""
    found = []
    for path in sorted(current(index).rglob("store.sqlite")):
        with sqlite3.connect(path) as db:
            text = db.execute("SELECT text FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
            if text:
                found += [text[0][a:b] for a, b in db.execute(
                    'SELECT s.start, s."end" FROM sentences s JOIN passages p ON p.id = s.passage_id '
                    "WHERE p.doc_id = ? ORDER BY s.id", (doc_id,))]
    return found


@pytest.mark.parametrize("recorded", ["default", "none"])
def test_an_update_splits_sentences_with_the_splitter_the_index_was_built_with(seed_index, tmp_path, recorded):
    from indexer.chunk import DEFAULT_SEGMENTER
    from indexer.update import update

    index = tmp_path / "index"
    shutil.copytree(seed_index, index)
    (tmp_path / "storm.txt").write_text(
        "Storm crews restore power\n\n(CNN) Storm crews restored power to the coast on Tuesday after the flood. "
        "Officials said the damage was worse than expected.\n", encoding="utf-8")
    path = current(index) / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["options"]["segmenter"] == DEFAULT_SEGMENTER
    if recorded == "none":  # an index built before the choice existed: pysbd split it
        del manifest["options"]["segmenter"]
        path.write_text(json.dumps(manifest))
    update(index, [tmp_path / "storm.txt"])
    first = _sentences_of(index, "storm")[0]
    # pysbd makes the dateline a sentence of its own; the default keeps it with its sentence
    assert first == ("(CNN)" if recorded == "none" else
                     "(CNN) Storm crews restored power to the coast on Tuesday after the flood.")
