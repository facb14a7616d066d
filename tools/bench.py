"""Speed and memory at the corpus sizes asked, in one run on this machine.

    scripts/bench [--sizes 1000,100000,1000000] [--json] [--serve-max N] [--mode M] [--vs-txtai]

1. Real text (the seeds and the first --base SciFact documents) is indexed with the
   project's indexer: the total indexing rate. A sample of its passages is embedded by
   every backend and by the plain sentence-transformers fp32 path, side by side: the
   embedding rates and their cosine agreement. One-line questions time query encoding.
2. For each size, passage vectors are the real ones, replicated with noise past the real
   count (a replica keeps cosine ~0.8 with its original: real-like neighbourhoods, not
   isotropic random vectors). The vector index the indexer would choose for that size is
   built and loaded memory-mapped in a fresh process: load time, resident memory, search
   p50/p99, and recall@10 against exact search, for questions embedded for real.
3. Up to --serve-max passages, a full index is built from the replicated articles (their
   vectors replayed, not re-embedded) and served by gunicorn as in production: HTTP
   p50/p99 with one client, throughput with 16 concurrent clients, errors, and the
   service's resident memory (RSS and PSS, summed over gunicorn's processes) once it has
   answered --sustain seconds of 1,000 different questions (`memory_after`).
4. --vs-txtai: txtai and this project on the same model, passages and questions, each in
   a fresh process (tools/bench_txtai.py): indexing rate, query p50, QPS, memory.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from tools.bench_txtai import compare
from tools.progress import say
from tools.served import pss_by_mapping, pss_mb, rss_mb

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = ROOT.parent / "shared" / "eval" / "scifact" / "corpus.jsonl"

QUESTIONS = ROOT / "tests" / "data" / "seed_questions.json"
NOISE = 0.75  # replica = normalise(v + NOISE * g/sqrt(d)): cosine ~ 1/sqrt(1 + NOISE^2) = 0.8


def check_corpus(parser, corpus: Path) -> None:
    """A --corpus that is not there is a usage error naming it (the default is found beside
    the checkout, ../shared/eval, which a copy elsewhere does not have)."""
    if not corpus.exists():
        parser.error(f"--corpus {corpus}: no such file or directory (pass a BEIR corpus, e.g. "
                     f"--corpus ../shared/eval/scifact/corpus.jsonl)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,100000,1000000", help="passage counts, comma-separated")
    parser.add_argument("--corpus", type=Path, default=SCIFACT, help="BEIR corpus.jsonl for real text")
    parser.add_argument("--base", type=int, default=600, help="real documents from --corpus to index")
    parser.add_argument("--serve-max", type=int, default=100_000,
                        help="largest size served over HTTP (each needs a full index on disk)")
    parser.add_argument("--mode", default="hybrid", choices=("hybrid", "dense", "lexical"))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the concurrent-load run")
    parser.add_argument("--sustain", type=float, default=60.0,
                        help="seconds of varied questions (from the real passages) before memory is read")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("SEARCH_WORKERS", "2")))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("SEARCH_THREADS", "4")))
    parser.add_argument("--work", type=Path, help="keep built indexes here (default: a temporary directory)")
    parser.add_argument("--vs-txtai", action="store_true",
                        help="also run txtai on the same model, passages and questions; print the ratios")
    parser.add_argument("--alerts", metavar="COUNTS",
                        help="also: articles ingested a second with that many alerts stored, e.g. 0,100,10000")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    check_corpus(parser, args.corpus)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-"))
    work.mkdir(parents=True, exist_ok=True)
    say(f"indexing the bench's real text: the seeds and {args.base} documents of {args.corpus.name}")
    base = real_index(work, args.corpus, args.base)
    say(f"embedding rates: {', '.join(available_backends())} and sentence-transformers' fp32")
    rates = embedding_rates(base)
    say("question encoding, each backend")
    shared = {"index_passages_per_s": base["index_passages_per_s"]} | rates | query_encoding()
    questions = question_texts()
    query_vectors = _embedder().embed(questions, batch_size=1)
    out = {"machine": machine(), "base_passages": base["passages"], **shared, "sizes": {}}
    for size in sizes:
        row = dict(shared)
        say(f"size {size}: the vector index alone")
        row |= vector_part(work, base, size, query_vectors)
        if size <= args.serve_max:
            say(f"size {size}: served by gunicorn ({args.workers} workers): one client, {args.clients} clients for "
                f"{args.seconds:g} s, {args.sustain:g} s of varied questions, memory")
            row |= service_part(work, base, size, questions, args)
        else:
            row |= {key: None for key in ("http_p50_ms", "http_p99_ms", "qps_16_clients", "errors", "rss_mb",
                                          "pss_mb", "first_answer_s", "bench_index_build_s")}
            row["service_skipped"] = f"above --serve-max {args.serve_max}"
        out["sizes"][str(size)] = row
        say(f"size {size}: done")
    if args.vs_txtai:
        say("txtai and ours on the same passages and questions, each in a process of its own")
        out["vs_txtai"] = compare(work, base, questions, args.clients, args.seconds)
    if args.alerts:
        from tools.bench_alerts import alert_rates

        out["alerts"] = alert_rates(work, base, [int(c) for c in args.alerts.split(",")], args.corpus)
    print(json.dumps(out, indent=2) if args.json else table(out))
    return 0


# ---- real text, embedding rates, query encoding ----------------------------------------

def _embedder(backend: str | None = None):
    from search.embedding.embedder import get_embedder

    return get_embedder(backend=backend)


def corpus_articles(corpus: Path, count: int, target: Path, prefix: str = "") -> Path:
    """The first `count` documents of a BEIR corpus.jsonl as an articles .jsonl at `target`."""
    with open(corpus, encoding="utf-8") as src, open(target, "w", encoding="utf-8") as out:
        for _, line in zip(range(count), src):
            doc = json.loads(line)
            out.write(json.dumps({"id": f"{prefix}{doc['_id']}", "title": doc.get("title") or None,
                                  "text": doc["text"]}) + "\n")
    return target


def real_index(work: Path, corpus: Path, count: int) -> dict:
    """Index the seeds and `count` SciFact documents for real; the total indexing rate."""
    from indexer import build

    articles = corpus_articles(corpus, count, work / "real.jsonl", prefix="scifact-")
    _embedder().embed(["warm up the model before the clock starts"])
    started = time.perf_counter()
    summary = build([ROOT / "seeds", articles], work / "real-index")
    seconds = time.perf_counter() - started
    import faiss

    from search.index.generations import current

    index = faiss.read_index(str(current(work / "real-index") / "vectors.faiss"))
    vectors = np.vstack([index.reconstruct(i) for i in range(index.ntotal)])
    return {"dir": current(work / "real-index"), "root": work / "real-index", "articles": articles, "passages": summary.passages,
            "vectors": vectors, "index_passages_per_s": round(summary.passages / seconds, 1)}


# Why a backend is not measured on a CPU (its embedder would fall back to another one).
UNAVAILABLE = {"torch-bf16": "this CPU has neither AMX nor AVX-512 BF16"}


def available_backends() -> list[str]:
    """The backends this CPU runs as themselves (bf16 needs bf16 instructions)."""
    from search.embedding.embedder import BACKENDS, native_bf16

    return [b for b in BACKENDS if b != "torch-bf16" or native_bf16()]


def embedding_rates(base: dict, sample: int = 384) -> dict:
    """Passages/s of each backend and of sentence-transformers' own fp32 encode, on the
    same passages, and the default's mean cosine with fp32."""
    import sqlite3

    from search.embedding.embedder import BACKENDS, DEFAULT_BACKEND, model_location

    with sqlite3.connect(base["dir"] / "store.sqlite") as db:
        texts = [row[0] for row in db.execute("SELECT text FROM passages ORDER BY id LIMIT ?", (sample,))]
    from sentence_transformers import SentenceTransformer

    plain = SentenceTransformer(model_location(_embedder().name), device="cpu")
    plain.encode(texts[:8])
    started = time.perf_counter()
    reference = plain.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    baseline = len(texts) / (time.perf_counter() - started)
    rates, agreement = {}, {}
    for backend in available_backends():
        embedder = _embedder(backend)
        embedder.embed(texts[:8])
        started = time.perf_counter()
        vectors = embedder.embed(texts, batch_size=32)
        rates[backend] = round(len(texts) / (time.perf_counter() - started), 1)
        agreement[backend] = round(float((vectors * reference).sum(axis=1).mean()), 5)
    default = _embedder().backend
    return {"backend": default, "embed_passages_per_s": rates[default],
            "baseline_fp32_passages_per_s": round(baseline, 1),
            "speedup_vs_baseline": round(rates[default] / baseline, 2),
            "cosine_agreement": agreement[default],
            "by_backend": {b: {"passages_per_s": rates[b], "cosine_agreement": agreement[b],
                               "speedup_vs_baseline": round(rates[b] / baseline, 2)} if b in rates
                           else {"unavailable": UNAVAILABLE[b]} for b in BACKENDS},
            "embed_sample_passages": len(texts), "default_backend": DEFAULT_BACKEND}


def question_texts() -> list[str]:
    return [q["question"] for q in json.loads(QUESTIONS.read_text(encoding="utf-8"))]


def query_encoding() -> dict:
    questions = question_texts()
    out = {}
    for backend in available_backends():
        embedder = _embedder(backend)
        embedder.embed(questions[:2], batch_size=1)
        times = []
        for _ in range(3):
            for q in questions:
                started = time.perf_counter()
                embedder.embed([q], batch_size=1)
                times.append((time.perf_counter() - started) * 1000)
        out[backend] = round(statistics.median(times), 2)
    return {"query_encode_p50_ms": out[_embedder().backend], "query_encode_p50_ms_by_backend": out}


# ---- vectors at size ------------------------------------------------------------------

def replicated(vectors: np.ndarray, size: int, seed: int = 7) -> np.ndarray:
    """`size` unit vectors: the real ones first, then noisy replicas of them in turn."""
    rng = np.random.default_rng(seed)
    out = np.empty((size, vectors.shape[1]), dtype=np.float32)
    for start in range(0, size, len(vectors)):
        chunk = vectors[:min(len(vectors), size - start)]
        if start:
            chunk = chunk + NOISE * rng.standard_normal(chunk.shape, dtype=np.float32) / np.sqrt(chunk.shape[1])
            chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        out[start:start + len(chunk)] = chunk
    return out


def vector_part(work: Path, base: dict, size: int, queries: np.ndarray) -> dict:
    import faiss

    from search.index import vector_index

    vectors = replicated(base["vectors"], size)
    kind = vector_index.choose(size)
    path = work / f"vectors-{size}.faiss"
    started = time.perf_counter()
    faiss.write_index(vector_index.build(vectors, kind), str(path))
    build_s = time.perf_counter() - started
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, 10)
    del exact, vectors
    np.save(work / "queries.npy", queries, allow_pickle=False)
    np.save(work / "truth.npy", truth, allow_pickle=False)
    # a fresh process: its resident memory is the index's, not this one's
    measured = json.loads(subprocess.run(
        [sys.executable, "-m", "tools.bench", "--probe-vectors", str(path), str(work)],
        check=True, capture_output=True, text=True).stdout)
    return {"vector_index": kind, "vector_build_s": round(build_s, 1),
            "vectors_file_mb": round(path.stat().st_size / 2**20, 1), **measured}


def probe_vectors(path: Path, work: Path) -> None:
    """(Run in a fresh process.) Load an index as the searcher does and measure it."""
    import faiss

    from search.index import vector_index

    faiss.omp_set_num_threads(1)
    queries = np.load(work / "queries.npy", allow_pickle=False)
    truth = np.load(work / "truth.npy", allow_pickle=False)
    before = rss_mb()
    started = time.perf_counter()
    index = vector_index.load(path)
    load_s = time.perf_counter() - started
    times, found = [], []
    for _ in range(5):
        for q in queries:
            started = time.perf_counter()
            _, ids = index.search(q[None, :], 10)
            times.append((time.perf_counter() - started) * 1000)
            found.append(ids[0])
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(np.tile(truth, (5, 1)), found)])
    print(json.dumps({"vector_load_s": round(load_s, 3), "vectors_rss_mb": round(rss_mb() - before, 1),
                      "vector_search_p50_ms": round(float(np.percentile(times, 50)), 3),
                      "vector_search_p99_ms": round(float(np.percentile(times, 99)), 3),
                      "recall_at_10": round(float(recall), 4)}))


# ---- a full index at size, served ---------------------------------------------------------

class Replay:
    """Embedder stand-in for the indexer: each text gets the real vector recorded for it,
    with fresh noise for every repeat of the text (its replicas)."""

    def __init__(self, real, recorded: dict[str, np.ndarray], seed: int = 11):
        self.real, self.recorded = real, recorded
        self.name, self.backend, self.dimension = real.name, real.backend, real.dimension
        self.max_tokens = real.max_tokens
        self.count_tokens, self.count_tokens_each = real.count_tokens, real.count_tokens_each
        self._seen: dict[str, int] = {}
        self._rng = np.random.default_rng(seed)

    def embed(self, texts, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        missing = [i for i, t in enumerate(texts) if t not in self.recorded]
        if missing:
            for i, v in zip(missing, self.real.embed([texts[i] for i in missing])):
                self.recorded[texts[i]] = v
        for i, text in enumerate(texts):
            repeat = self._seen[text] = self._seen.get(text, -1) + 1
            v = self.recorded[text]
            if repeat:
                v = v + NOISE * self._rng.standard_normal(len(v), dtype=np.float32) / np.sqrt(len(v))
                v = v / np.linalg.norm(v)
            out[i] = v
        return out


def full_index(work: Path, base: dict, size: int) -> Path:
    """An index of `size` passages: the real articles, then renamed copies of them."""
    import sqlite3

    from indexer import build
    from search.index.generations import current
    from search.index.sentence_vectors import SentenceVectors

    target = work / f"index-{size}"
    if (current(target) / "manifest.json").exists():  # built by an earlier run (--work)
        return target
    say(f"size {size}: building the full index (progress bars on a terminal)")
    with sqlite3.connect(base["dir"] / "store.sqlite") as db:
        db.row_factory = sqlite3.Row
        docs = [dict(r) for r in db.execute(
            "SELECT d.doc_id, d.title, d.text, COUNT(p.id) AS n FROM documents d JOIN passages p USING (doc_id) "
            "GROUP BY d.doc_id ORDER BY d.rowid")]
        passages = [r[0] for r in db.execute("SELECT text FROM passages ORDER BY id")]
    vectors = SentenceVectors.open(base["dir"]).all()
    with sqlite3.connect(base["dir"] / "store.sqlite") as db:
        spans = db.execute('SELECT s.id, s.start, s."end", p.doc_id FROM sentences s JOIN passages p '
                           'ON p.id = s.passage_id ORDER BY s.id').fetchall()
    text_of = {d["doc_id"]: d["text"] for d in docs}
    recorded = {text_of[doc][a:b]: vectors[i] for i, a, b, doc in spans}
    recorded.update(zip(passages, base["vectors"]))
    articles = work / f"articles-{size}.jsonl"
    with open(articles, "w", encoding="utf-8") as out:
        total, copy = 0, 0
        while total < size:
            for d in docs:
                if total >= size:
                    break
                out.write(json.dumps({"id": f"{d['doc_id']}~{copy}" if copy else d["doc_id"],
                                      "title": d["title"], "text": d["text"]}) + "\n")
                total += d["n"]
            copy += 1
    build([articles], target, embedder=Replay(_embedder(), recorded), progress=sys.stderr.isatty())
    return target


def disk_mb(index: Path) -> dict:
    """The index's size on disk by part, in MB."""
    from search.index import store
    from search.index.generations import current

    directory = current(index)
    parts = {"store": [store.STORE], "vectors": [store.VECTORS],
             "sentence_vectors": [store.SENTENCE_VECTORS, store.SENTENCE_SCALES],
             "bm25_passages": [store.PASSAGE_LEXICAL], "bm25_documents": [store.DOCUMENT_LEXICAL]}

    def size(path: Path) -> int:
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else \
            (path.stat().st_size if path.exists() else 0)

    out = {part: round(sum(size(directory / name) for name in names) / 2**20, 1) for part, names in parts.items()}
    out["total"] = round(size(directory) / 2**20, 1)
    return out


def service_part(work: Path, base: dict, size: int, questions: list[str], args) -> dict:
    from search.index import store
    from search.index.generations import current
    from tools.served import gunicorn, process_tree

    index = full_index(work, base, size)
    manifest = store.read_manifest(current(index))
    # index load: opening the index in a fresh process once the model is loaded
    probe = subprocess.run([sys.executable, "-c", (
        "import time, json; from search import Searcher; from search.embedding.embedder import get_embedder; "
        "get_embedder().embed(['load the model first']); t = time.perf_counter(); "
        f"Searcher.open({str(index)!r}); print(json.dumps(time.perf_counter() - t))")],
        check=True, capture_output=True, text=True, cwd=ROOT)
    env = {"SEARCH_WORKERS": str(args.workers), "SEARCH_THREADS": str(args.threads), "SEARCH_MODE": args.mode,
           # questions repeat across rounds: measure the model's work, not the cache's
           "SEARCH_QUERY_CACHE": "0"}
    starting = time.monotonic()
    with gunicorn(index, env) as (port, server):
        paths = [f"/search?k=5&q={_quote(q)}" for q in questions]
        # from the server's start to every worker ready and a question answered
        status = _get(port, paths[0])
        first_answer_s = time.monotonic() - starting if status == 200 else None
        for path in paths:  # warm every worker
            _get(port, path)
        single = _timed_requests(port, paths * 3)
        qps, errors = _load(port, paths, args.clients, args.seconds)
        # Memory is read after a run of many different questions: each reaches other
        # candidates, whose sentence vectors and BM25 postings a worker then maps, so a
        # short run over the few bench questions reads low.
        varied = [f"/search?k=5&q={_quote(q)}" for q in varied_questions(base)]
        sustained_qps, sustained_errors = _load(port, varied, args.clients, args.sustain) if args.sustain else (0, 0)
        processes = process_tree(server.pid)
        memory = sum(rss_mb(pid) for pid in processes)
        proportional = sum(pss_mb(pid) for pid in processes)
        by_mapping = pss_by_mapping(processes, index)
    return {"passages": manifest["counts"]["passages"],
            # the manifest's own record: the same whether this run built it or reused it
            "bench_index_build_s": round(manifest["build_seconds"], 1),
            "index_load_s": round(json.loads(probe.stdout), 2),
            "first_answer_s": None if first_answer_s is None else round(first_answer_s, 2),
            "disk_mb": disk_mb(index),
            "http_p50_ms": round(float(np.percentile(single, 50)), 2),
            "http_p99_ms": round(float(np.percentile(single, 99)), 2),
            "qps_16_clients": round(qps, 1), "errors": errors, "rss_mb": round(memory, 1),
            "pss_mb": round(proportional, 1), "pss_by_mapping_mb": by_mapping, "mapped_files_mb": mapped_files_mb(index),
            "memory_after": {"seconds": args.sustain, "distinct_questions": len(varied),
                             "requests": round(sustained_qps * args.sustain), "errors": sustained_errors},
            "service": {"workers": args.workers, "threads": args.threads, "mode": args.mode}}


def varied_questions(base: dict, count: int = 1000) -> list[str]:
    """Questions that reach different passages: the opening words of real passages."""
    import sqlite3

    with sqlite3.connect(base["dir"] / "store.sqlite") as db:
        texts = [t for (t,) in db.execute("SELECT text FROM passages ORDER BY id LIMIT ?", (count,))]
    return [" ".join(t.split()[:12]) for t in texts if t.split()]


def mapped_files_mb(index: Path) -> float:
    """Size of the index files a worker memory-maps: the vectors, the sentence vectors'
    scales, the BM25 row lengths of an updated index (the sentence vectors and the BM25
    postings are read with pread: search/index/arrays.py). A short run's RSS holds only the
    pages its queries touched (and their neighbours the kernel maps with them); a
    long-running worker's grows towards all of them, shared with the other workers and
    reclaimable, but counted in each one's RSS."""
    from search.index import store
    from search.index.generations import current
    from search.index.lexical import LexicalIndex

    directory = current(index)
    files = [directory / store.VECTORS, directory / store.SENTENCE_SCALES,
             *(directory / part / name for part in (store.PASSAGE_LEXICAL, store.DOCUMENT_LEXICAL)
               for name in (LexicalIndex.LENGTHS,))]
    return round(sum(f.stat().st_size for f in files if f.exists()) / 2**20, 1)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text)


def _get(port: int, path: str, conn: http.client.HTTPConnection | None = None) -> int:
    from tools.served import get

    return get(port, path, conn)[0]


def _timed_requests(port: int, paths: list[str]) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for path in paths:
        started = time.perf_counter()
        _get(port, path, conn)
        times.append((time.perf_counter() - started) * 1000)
    conn.close()
    return times


def _load(port: int, paths: list[str], clients: int, seconds: float) -> tuple[float, int]:
    """Requests/s served to `clients` concurrent keep-alive clients, and non-200 answers."""
    done, errors = [0] * clients, [0] * clients
    stop = time.monotonic() + seconds

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = n
        while time.monotonic() < stop:
            try:
                if _get(port, paths[i % len(paths)], conn) != 200:
                    errors[n] += 1
            except (OSError, http.client.HTTPException):
                errors[n] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            done[n] += 1
            i += clients
        conn.close()

    started = time.monotonic()
    workers = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done) / (time.monotonic() - started), sum(errors)


def machine() -> dict:
    flags = ""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    return {"cores": os.cpu_count(), "avx512_vnni": "avx512_vnni" in flags, "amx_bf16": "amx_bf16" in flags,
            "avx512_bf16": "avx512_bf16" in flags,
            "max_rss_mb_bench": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def table(out: dict) -> str:
    keys = ["passages", "vector_index", "embed_passages_per_s", "baseline_fp32_passages_per_s", "cosine_agreement",
            "index_passages_per_s", "query_encode_p50_ms", "vector_search_p50_ms", "vector_search_p99_ms",
            "recall_at_10", "vectors_file_mb", "vectors_rss_mb", "vector_load_s", "bench_index_build_s", "index_load_s",
            "first_answer_s", "http_p50_ms", "http_p99_ms",
            "qps_16_clients", "errors", "rss_mb", "pss_mb", "mapped_files_mb"]
    sizes = list(out["sizes"])
    width = max(len(k) for k in keys)
    lines = [f"{'size':<{width}}  " + "  ".join(f"{s:>12}" for s in sizes)]
    for key in keys:
        cells = [out["sizes"][s].get(key, out.get(key)) for s in sizes]
        lines.append(f"{key:<{width}}  " + "  ".join(f"{'-' if c is None else c!s:>12}" for c in cells))
    if "vs_txtai" in out:
        versus = out["vs_txtai"]
        lines += ["", f"vs txtai ({versus['passages']} passages){'':<{width - 20}}  {'ours':>12}  {'txtai':>12}  {'ratio':>12}"]
        for key, ratio in (("index_passages_per_s", "indexing_rate"), ("query_p50_ms", "query_p50_speedup"),
                           ("qps", "qps"), ("rss_mb", "rss")):
            lines.append(f"{key:<{width}}  {versus['ours'][key]!s:>12}  {versus['txtai'][key]!s:>12}  "
                         f"{versus['ratios'][ratio]!s:>12}")
    for count, row in out.get("alerts", {}).items():
        lines.append(f"with {int(count):,} alerts: {row['articles_per_s']} articles/s ingested, matching "
                     f"{row['matching_ms_per_article']} ms an article, {row['alerts_matched']} alerts matched")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--probe-vectors":
        probe_vectors(Path(sys.argv[2]), Path(sys.argv[3]))
        sys.exit(0)
    sys.exit(main())
