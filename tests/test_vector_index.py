"""Exact search while it is fast enough, IVF-SQ8 above: chosen by size, overridable,
and served like any index."""

import json

import numpy as np
import pytest

from search.index import vector_index
from search.index.generations import current
from search.index.sentence_vectors import SentenceVectors


def test_kind_by_size_unless_asked():
    assert vector_index.choose(50_000) == "flat"
    assert vector_index.choose(50_001) == "ivf"
    assert vector_index.choose(10, "ivf") == "ivf" and vector_index.choose(10**6, "flat") == "flat"
    with pytest.raises(ValueError, match="auto, flat, ivf"):
        vector_index.choose(10, "hnsw")


def test_ivf_finds_what_exact_search_finds(seed_index):
    # real embeddings: every sentence of the seeds, each also asked as a query
    vectors = SentenceVectors.open(current(seed_index)).all()
    exact = vector_index.build(vectors, "flat")
    approximate = vector_index.build(vectors, "ivf")
    assert approximate.nlist == vector_index.nlist_for(len(vectors)) > 1
    _, truth = exact.search(vectors, 10)
    _, found = approximate.search(vectors, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found)])
    assert recall >= 0.95


def test_an_ivf_index_serves_the_same_answers(tmp_path, searcher):
    from indexer import BuildOptions, build
    from search import Searcher

    from helpers import SEEDS

    build([SEEDS], tmp_path / "ivf", options=BuildOptions(vector_index="ivf"))
    manifest = json.loads((current(tmp_path / "ivf") / "manifest.json").read_text())
    assert manifest["vector_index"]["kind"] == "ivf" and manifest["vector_index"]["nprobe"] > 0
    approximate = Searcher.open(tmp_path / "ivf")
    for question in ("How many Russian casualties since 2022", "Which missiles has North Korea sent to Russia?"):
        assert approximate.search(question, k=1)[0].text == searcher.search(question, k=1)[0].text


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_a_store_scores_given_passages_as_its_search_does(tmp_path, kind):
    # fusion asks for the cosines of passages only BM25 found; they must be the search's own
    import faiss

    from search.index.store import VECTORS
    from search.index.vector_store import FaissStore

    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    faiss.write_index(vector_index.build(vectors, kind), str(tmp_path / VECTORS))
    store = FaissStore.read(tmp_path)  # memory-mapped, as served
    in_memory = FaissStore(faiss.read_index(str(tmp_path / VECTORS)))  # as an update holds one
    query = vectors[11]
    scores, ids = store.search(query[None, :], 50)
    picked = ids[0][[0, 7, 49]]
    np.testing.assert_allclose(store.scores(query, picked), scores[0][[0, 7, 49]], rtol=1e-5, atol=1e-5)
    # IVF-SQ8 scores its mapped codes in place; an index in memory reconstructs: the same numbers
    assert (store._codes is not None) == (kind == "ivf") and in_memory._codes is None
    everyone = rng.permutation(3000)[:700]
    np.testing.assert_allclose(store.scores(query, everyone), in_memory.scores(query, everyone), atol=1e-5)
    if kind == "ivf":
        np.testing.assert_allclose(store.scores(query, everyone),
                                   in_memory.index.reconstruct_batch(everyone) @ query, atol=1e-5)


def test_a_search_of_a_few_questions_runs_faiss_on_its_thread_alone():
    # libgomp keeps OpenMP's thread count per thread: a request thread that never set it
    # ran every search on a team of all cores, whose spinning threads cost 2.5x the CPU
    import threading

    import faiss

    from search.index.vector_store import FEW_QUERIES, FaissStore

    vectors = np.random.default_rng(3).standard_normal((500, 16)).astype(np.float32)
    store = FaissStore(vector_index.build(vectors, "flat"))
    seen = []

    class Recording:  # the index, noting the thread count each search runs with
        def __init__(self, index):
            self.index = index

        def search(self, *args, **kwargs):
            seen.append(faiss.omp_get_max_threads())
            return self.index.search(*args, **kwargs)

    store.index = Recording(store.index)
    found = {}

    def fresh_thread():
        found["before"] = faiss.omp_get_max_threads()
        found["ids"] = store.search(vectors[:1], 3)[1]
        store.search(vectors[:FEW_QUERIES + 1], 3)
        found["after"] = faiss.omp_get_max_threads()

    thread = threading.Thread(target=fresh_thread)
    thread.start()
    thread.join()
    assert found["ids"][0][0] == 0
    # one thread for one question; the many keep the team, and the thread's setting is its own again
    assert seen == [1, found["before"]] and found["after"] == found["before"]


def test_a_selective_filter_on_an_ivf_index_finds_what_exact_search_finds(tmp_path):
    # IVF probes a few clusters: a filter allowing 1% of the passages left most of them
    # unprobed, and the filtered search missed allowed passages exact search ranks first
    import faiss

    from search.index.vector_store import FaissStore

    rng = np.random.default_rng(5)
    centres = rng.standard_normal((64, 48)).astype(np.float32)
    vectors = centres[rng.integers(0, 64, 20000)] + 0.3 * rng.standard_normal((20000, 48)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    faiss.write_index(vector_index.build(vectors, "ivf"), str(tmp_path / "v.faiss"))
    ivf = FaissStore(vector_index.load(tmp_path / "v.faiss"))
    exact = FaissStore(vector_index.build(vectors, "flat"))
    allowed = np.zeros(len(vectors), dtype=bool)
    allowed[rng.choice(len(vectors), 200, replace=False)] = True
    queries = vectors[rng.choice(len(vectors), 20, replace=False)]
    _, found = ivf.search(queries, 10, allowed)
    _, truth = exact.search(queries, 10, allowed)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
    assert recall >= 0.99
    assert allowed[found[found >= 0]].all()


def test_a_milvus_filter_is_ranges_of_ids_the_shorter_way_round():
    from search.index.vector_store import id_expression

    allowed = np.zeros(10, dtype=bool)
    allowed[[2, 3, 4, 7]] = True
    assert id_expression(allowed) == "(id >= 2 and id <= 4) or id == 7"
    assert id_expression(~allowed) == "not ((id >= 2 and id <= 4) or id == 7)"
    assert id_expression(np.ones(5, dtype=bool)) == "id >= 0"
    broad = np.ones(1_000_000, dtype=bool)
    broad[[10, 500_000]] = False  # a filter allowing all but two passages stays short
    assert id_expression(broad) == "not (id == 10 or id == 500000)"
