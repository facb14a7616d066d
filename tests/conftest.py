"""Shared fixtures: the real bundled model (loaded once per session), a real index of
the seeds built once, and the real Flask app over it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helpers import SEEDS

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def embedder():
    from search.embedding.embedder import get_embedder

    e = get_embedder()
    e.embed(["load the model now, once, so timing-sensitive tests don't pay for it"])
    return e


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory, embedder) -> Path:
    from indexer import build

    index = tmp_path_factory.mktemp("seed") / "index"
    build([SEEDS], index)
    return index


@pytest.fixture(scope="session")
def searcher(seed_index):
    from search import Searcher

    return Searcher.open(seed_index)


@pytest.fixture()
def app(seed_index):
    from search.service.app import create_app

    return create_app({"INDEX": str(seed_index), "TESTING": True})


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def index_copy(seed_index, tmp_path) -> Path:
    """A private copy of the seed index that a test may replace or damage."""
    target = tmp_path / "index"
    shutil.copytree(seed_index, target)
    return target


@pytest.fixture(scope="session")
def milvus(tmp_path_factory):
    """(host, port) of a real Milvus server (`milvus-lite server` on loopback), started
    once for the tests that need one and stopped after them."""
    import subprocess
    import sys
    import time

    pymilvus = pytest.importorskip("pymilvus", reason="pymilvus is not installed (pip install '.[milvus]')")
    pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (pip install '.[milvus]')")
    from helpers import free_port

    port = free_port()
    data = tmp_path_factory.mktemp("milvus")
    server = subprocess.Popen([str(Path(sys.executable).parent / "milvus-lite"), "server", "--data-dir", str(data),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"milvus-lite server exited: {server.stderr.read().decode()[-2000:]}")
            try:
                pymilvus.MilvusClient(uri=f"http://127.0.0.1:{port}", timeout=2).list_collections()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield "127.0.0.1", port
    finally:
        server.terminate()
        server.wait(timeout=30)
