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
