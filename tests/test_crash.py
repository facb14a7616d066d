"""Crash safety: the indexer is SIGKILLed at every named point of a build and of an
incremental update (indexer/crashpoints.py); each time the service then loads an index
whose checksums verify, either the old generation or the complete new one, and answers."""

import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from indexer import build
from search.service.app import create_app

from helpers import ROOT, write_jsonl

ARTICLES = [
    {"id": "ports", "title": "Dockworkers strike at three ports",
     "text": "Dockworkers walked out at three ports on Tuesday over pay.\n\nShipping lines diverted vessels."},
    {"id": "storm", "title": "Storm closes schools",
     "text": "A winter storm closed schools across the region on Wednesday.\n\nSnow ploughs worked overnight."},
]
NEW = {"id": "vaccine", "title": "Vaccine approved",
       "text": "Regulators approved a new malaria vaccine for children on Thursday.\n\nDoses ship next year."}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("crash")
    base = write_jsonl(root / "base.jsonl", *ARTICLES)
    more = write_jsonl(root / "more.jsonl", NEW)
    index = root / "index"
    build([base], index)
    return root, base, more, index


def indexer(index, args, env):
    return subprocess.run([sys.executable, "-m", "indexer", *args, "--index", str(index)], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def commands(base, more):
    """A full build over the index (with one more article), and an incremental add."""
    return {"build": ["build", str(base), str(more), "--quiet"], "update": ["add", str(more)]}


@pytest.fixture(scope="module")
def points(corpus):
    """Every crash point a real build and a real update pass, in order."""
    root, base, more, index = corpus
    found = {}
    for kind, args in commands(base, more).items():
        target, trace = root / f"trace-{kind}", root / f"trace-{kind}.txt"
        shutil.copytree(index, target)
        done = indexer(target, args, {"INDEXER_TRACE_POINTS": str(trace)})
        assert done.returncode == 0, done.stderr
        found[kind] = trace.read_text().split()
    return found


def test_every_kill_point_leaves_a_servable_index(corpus, points, tmp_path):
    root, base, more, index = corpus
    runs = [(kind, point) for kind in ("build", "update") for point in points[kind]]
    assert len(runs) >= 20 and len(set(runs)) == len(runs)

    def kill_at(run):
        kind, point = run
        target = tmp_path / f"{kind}-{point.replace(':', '-')}"
        shutil.copytree(index, target)
        killed = indexer(target, commands(base, more)[kind], {"INDEXER_KILL_AT": point})
        return run, target, killed.returncode

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(kill_at, runs))
    recovered = []
    for (kind, point), target, returncode in outcomes:
        assert returncode == -signal.SIGKILL, f"{kind} at {point}: exit {returncode}"
        client = create_app({"INDEX": str(target), "TESTING": True}).test_client()  # verifies checksums
        health = client.get("/health").get_json()
        old = health["generation"] == "g000001"
        assert health["generation"] in ("g000001", "g000002"), (kind, point, health)
        assert health["documents"] == (2 if old else 3), (kind, point, health)
        hits = client.get("/search", query_string={"q": "Which ports had a strike?", "k": 1}).get_json()["results"]
        assert hits[0]["citations"][0]["doc_id"] == "ports", (kind, point)
        vaccine = client.get("/documents/vaccine").status_code
        assert vaccine == (404 if old else 200), (kind, point)
        # the index takes the next update: the writer lock died with the killed process
        assert indexer(target, ["remove", "storm"], {}).returncode == 0, (kind, point)
        assert not list((target / "generations").glob(".tmp-*")), (kind, point)
        recovered.append((kind, point, health["generation"]))
    # points before the pointer's rename keep the old generation, the last one has the new
    assert {g for kind, point, g in recovered if point == "publish:pointer-renamed"} == {"g000002"}
    assert {g for kind, point, g in recovered if point.startswith(("build:", "update:"))} == {"g000001"}
