"""Crash safety: the indexer is SIGKILLed at every named point of a build, an incremental
add, a delete, a merge of segments and a background merge (indexer/crashpoints.py); each time the service then
loads an index whose checksums verify, either the old generation or the complete new one,
and answers, and the index takes the next update."""

import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

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
    # the same with the new article added: a base and a segment (g000002)
    segmented = root / "segmented"
    shutil.copytree(index, segmented)
    assert indexer(segmented, ["add", str(more)], {}).returncode == 0
    return root, base, more, index, segmented


def indexer(index, args, env):
    return subprocess.run([sys.executable, "-m", "indexer", *args, "--index", str(index)], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


@dataclass(frozen=True)
class Kind:
    """A command killed at each of its points: the index it starts from, and what the old
    and the new generation hold (documents; whether the vaccine article is in)."""

    start: str
    args: tuple[str, ...]
    old: tuple[str, int, bool]
    new: tuple[str, int, bool]
    then: tuple[str, ...]  # a command the index must take afterwards


def kinds(base, more) -> dict[str, Kind]:
    """A full build over the index (with one more article), an incremental add, a delete
    (marking a segment's passages deleted) and a merge of segments."""
    return {"build": Kind("index", ("build", str(base), str(more), "--quiet"), ("g000001", 2, False),
                          ("g000002", 3, True), ("remove", "storm")),
            "update": Kind("index", ("add", str(more)), ("g000001", 2, False), ("g000002", 3, True),
                           ("remove", "storm")),
            "delete": Kind("segmented", ("remove", "storm"), ("g000002", 3, True), ("g000003", 2, True),
                           ("remove", "vaccine")),
            "merge": Kind("segmented", ("merge",), ("g000002", 3, True), ("g000003", 3, True),
                          ("remove", "vaccine")),
            "background merge": Kind("segmented", ("merge", "--background"), ("g000002", 3, True),
                                     ("g000003", 3, True), ("remove", "vaccine"))}


@pytest.fixture(scope="module")
def points(corpus):
    """Every crash point a real run of each kind passes, in order."""
    root, base, more, index, segmented = corpus
    found = {}
    for name, kind in kinds(base, more).items():
        target, trace = root / f"trace-{name}", root / f"trace-{name}.txt"
        shutil.copytree(index if kind.start == "index" else segmented, target)
        done = indexer(target, kind.args, {"INDEXER_TRACE_POINTS": str(trace)})
        assert done.returncode == 0, done.stderr
        found[name] = trace.read_text().split()
    return found


def test_every_kill_point_leaves_a_servable_index(corpus, points, tmp_path):
    root, base, more, index, segmented = corpus
    every = kinds(base, more)
    runs = [(name, point) for name in every for point in points[name]]
    assert len(runs) >= 40 and len(set(runs)) == len(runs)
    assert "update:manifest" in points["delete"] and "update:manifest" in points["merge"]

    def kill_at(run):
        name, point = run
        target = tmp_path / f"{name}-{point.replace(':', '-')}"
        shutil.copytree(index if every[name].start == "index" else segmented, target)
        killed = indexer(target, every[name].args, {"INDEXER_KILL_AT": point})
        return run, target, killed.returncode

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(kill_at, runs))
    recovered = []
    for (name, point), target, returncode in outcomes:
        kind = every[name]
        assert returncode == -signal.SIGKILL, f"{name} at {point}: exit {returncode}"
        client = create_app({"INDEX": str(target), "TESTING": True}).test_client()  # verifies checksums
        health = client.get("/health").get_json()
        assert health["generation"] in (kind.old[0], kind.new[0]), (name, point, health)
        generation, documents, vaccine = kind.old if health["generation"] == kind.old[0] else kind.new
        assert health["documents"] == documents, (name, point, health)
        hits = client.get("/search", query_string={"q": "Which ports had a strike?", "k": 1}).get_json()["results"]
        assert hits[0]["citations"][0]["doc_id"] == "ports", (name, point)
        assert client.get("/documents/vaccine").status_code == (200 if vaccine else 404), (name, point)
        # the index takes the next update: the writer lock died with the killed process
        assert indexer(target, kind.then, {}).returncode == 0, (name, point)
        assert not list((target / "generations").glob(".tmp-*")), (name, point)
        recovered.append((name, point, health["generation"] == kind.new[0]))
    # points before the pointer's rename keep the old generation, the last one has the new
    assert {new for name, point, new in recovered if point == "publish:pointer-renamed"} == {True}
    assert {new for name, point, new in recovered if point.startswith(("build:", "update:"))} == {False}
