"""`indexer build --engine ray`: Ray Data over model actors writes the same index as a
single-process build."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import SEEDS

pytest.importorskip("ray", reason="ray is not installed (pip install '.[ray]')")


def _vectors(index: Path) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    from search.index.generations import current
    from search.index.sentence_vectors import SentenceVectors

    flat = faiss.read_index(str(current(index) / "vectors.faiss"))
    passages = faiss.downcast_index(flat.index).reconstruct_n(0, flat.ntotal)
    return passages, SentenceVectors.open(current(index)).all()


def _rows(index: Path) -> list:
    from search.index.generations import current

    with sqlite3.connect(current(index) / "store.sqlite") as db:
        return db.execute('SELECT p.id, p.doc_id, p.start, p."end", s.id, s.start, s."end" FROM passages p '
                          "JOIN sentences s ON s.passage_id = p.id ORDER BY s.id").fetchall()


def test_a_ray_build_is_identical_to_a_local_one(seed_index, tmp_path):
    index = tmp_path / "index"
    run = subprocess.run([str(Path(sys.executable).parent / "indexer"), "build", str(SEEDS), "--index", str(index),
                          "--engine", "ray", "--actors", "2", "--quiet"],
                         capture_output=True, text=True, timeout=600, env=_env())  # a local cluster
    assert run.returncode == 0, run.stderr[-3000:]
    assert "indexed 5 documents" in run.stdout
    ray_passages, ray_sentences = _vectors(index)
    passages, sentences = _vectors(seed_index)
    assert ray_passages.shape == passages.shape and np.array_equal(ray_passages, passages)
    assert ray_sentences.shape == sentences.shape and np.array_equal(ray_sentences, sentences)
    assert _rows(index) == _rows(seed_index)


def test_actors_need_the_ray_engine(tmp_path, capsys):
    from indexer.__main__ import main

    with pytest.raises(SystemExit) as exit:
        main(["build", str(SEEDS), "--index", str(tmp_path / "i"), "--actors", "2"])
    assert exit.value.code == 2 and "--actors needs --engine ray" in capsys.readouterr().err


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
