"""`scripts/loadtest`: the production server under load while its index changes.

A copy of the index is served by gunicorn as `scripts/serve` runs it (2 workers x 4
threads). 32 clients send searches over keep-alive connections until --requests are done
(or --max-seconds pass). A third of the way in, another process adds an article with
`indexer add` (the workers pick the new generation up by hot reload); two thirds in, a
client replaces a document with `PUT /documents/<id>` (an update inside a worker). Every
answer must be a 200 with results; the service's memory is read before and after.

    scripts/loadtest [--index DIR] [--requests 20000] [--clients 32] [--json]
    scripts/loadtest --ingest-per-hour 5000 [--seconds 600] [--index DIR] [--clients 16] [--json]
    scripts/loadtest --store milvus://HOST:PORT/NAME [--replicas 3] [--requests 20000] [--json]

With --store the index is held in Milvus: the seeds are built there under NAME, and
--replicas service processes, none with an index directory, share the clients; a third
and two thirds of the way in, a rebuild with one more article is published (an alias
switch), and every replica must end on the last generation having failed no request.

With --ingest-per-hour the run measures continuous ingestion instead: the same search load
twice, first alone (`baseline_p99_ms`), then while real articles are PUT one at a time at
that rate (`p99_ms`), and after each PUT's reply how long until searches find the article
(`visible_max_s`: three searches in a row on new connections, any worker). Those
visibility searches are load of their own, beside the clients': each asks a question
never asked before (a model run on the worker's one search thread). So that the ratio
measures ingestion and not them, the baseline sends the same searches at the same rate
for articles already indexed (`probes`, `baseline_probes`). Each phase's `cpu` says where
the machine's CPU went: the workers' (and their CPU per search, and the part of it that
was the kernel's, `workers_system_cores`), the writer process's and the load generator's.
`since_publish` gives the ingesting searches' p50 and p99 by how long after a generation
was published they were sent: whether the tail is made as the workers open a generation
or while the writer works towards the next. `p99_ms_by_minute` and
`baseline_p99_ms_by_minute` give each minute's own p99 (the progress lines' stretches):
whether the tail holds through a phase; `workers_ms_per_search_by_minute` and
`baseline_workers_ms_per_search_by_minute` what a request cost the workers' CPU in the
same stretches: whether a growing tail is searches growing dearer or something else.
`others_cores` (by minute: `others_cores_by_minute`) is what the rest of the machine ran
meanwhile, and `stolen_cores` what the hypervisor gave other guests: a run in which other
programs took 0.15 cores or more in a minute says so in a warning, since its ratio is
then not the service's alone.

The machine's own speed drifts by 10-20% over minutes, so a baseline run before the
ingesting one can flatter or damn the ratio by as much. `--interleave S` measures the same
two phases as alternating blocks of S seconds (baseline, ingesting, ingesting, baseline,
...) on two services started alike from two copies of the index, one that only searches
and one that ingests (during its own blocks only: a block ends once its last PUT is
answered and found, and the next starts after its workers had time to reload), so that
both phases see the same machine. The keys are the same, the ratio taken over all the
blocks of each phase; `p99_ratio_by_pair` gives each ingesting block's p99 over the
baseline block beside it.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import itertools
import json
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np

from tools.bench import SCIFACT, check_corpus, question_texts
from tools.progress import say
from tools.served import (ROOT, command_line, cpu_seconds, cpu_times, get, gunicorn, machine_cpu_seconds,
                          process_tree, rss_mb)

ARTICLE = {"id": "loadtest-harbour", "title": "Harbour crane collapses in storm",
           "text": "A harbour crane collapsed during a storm on Sunday night, damaging two cargo ships.\n\n"
                   "Port officials said no one was injured and that the harbour would reopen on Tuesday.\n"}


def serving_copy(index: Path, target: Path) -> Path:
    """A copy of the generation `index` serves now (its older generations, hard links of
    the same files, would each be copied whole: a hundred of them filled the disk)."""
    current = index / "CURRENT"
    if not current.exists():  # a single-directory index
        shutil.copytree(index, target)
        return target
    name = current.read_text(encoding="utf-8").strip()
    shutil.copytree(index / "generations" / name, target / "generations" / name)
    shutil.copy2(current, target / "CURRENT")
    return target


def loadtest(index: Path, requests: int, clients: int, max_seconds: float, workers: int, threads: int,
             warmup: int = 2000) -> dict:
    key = secrets.token_hex(16)
    questions = question_texts()
    paths = [f"/search?k={1 + n % 10}&q={quote(q)}" for n, q in enumerate(questions)]
    with tempfile.TemporaryDirectory(prefix="loadtest-") as scratch:
        copy = serving_copy(index, Path(scratch) / "index")
        feed = Path(scratch) / "feed.jsonl"
        feed.write_text(json.dumps(ARTICLE) + "\n", encoding="utf-8")
        env = {"SEARCH_API_KEY": key, "SEARCH_WORKERS": str(workers), "SEARCH_THREADS": str(threads)}
        with open(Path(scratch) / "server.log", "w+") as log, gunicorn(copy, env, log=log) as (port, server):
            # memory "before" is read once the service has run under this load for a while (its
            # threads' allocator arenas, model buffers and caches grown to their working size)
            _Run(port, paths, warmup, clients, max_seconds).go()
            before = _memory(server.pid)
            generation_before = _health(port)["generation"]
            run = _Run(port, paths, requests, clients, max_seconds, label="load")
            run.on_progress(requests // 3, lambda: _add_from_another_process(copy, feed))
            run.on_progress(2 * requests // 3, lambda: _put_document(port, key, index))
            run.go()
            time.sleep(2)  # let a reload that started near the end finish before reading
            after = _memory(server.pid)
            health = _health(port)
            metrics = get(port, "/metrics")[1].decode()
            log.seek(0)
            tracebacks = log.read().count("Traceback")
    return {**run.summary(), "rss_mb_before": round(before, 1), "rss_mb_after": round(after, 1),
            "reloads": int(_metric(metrics, "search_index_reloads_total")),
            "generation_before": generation_before, "generation_after": health["generation"],
            "documents_after": health["documents"], "events": run.events, "tracebacks": tracebacks,
            "warmup_requests": warmup, "service": {"workers": workers, "threads": threads}}


def store_loadtest(spec: str, requests: int, clients: int, max_seconds: float, replicas: int, workers: int,
                   threads: int, warmup: int = 500) -> dict:
    from contextlib import ExitStack

    from indexer import build_in_milvus

    questions = question_texts()
    paths = [f"/search?k={1 + n % 10}&q={quote(q)}" for n, q in enumerate(questions)]
    with tempfile.TemporaryDirectory(prefix="loadtest-") as scratch:
        feed = Path(scratch) / "feed.jsonl"
        feed.write_text(json.dumps(ARTICLE) + "\n", encoding="utf-8")
        first = build_in_milvus([ROOT / "seeds"], spec).generation
        env = {"SEARCH_STORE": spec, "SEARCH_WORKERS": str(workers), "SEARCH_THREADS": str(threads)}
        with ExitStack() as stack:
            served = [stack.enter_context(gunicorn(Path(scratch) / f"no-index-{n}", env,
                                                   log=stack.enter_context(open(Path(scratch) / f"log{n}", "w+"))))
                      for n in range(replicas)]
            ports = [port for port, _ in served]
            _Run(ports, paths, warmup, clients, max_seconds).go()
            run = _Run(ports, paths, requests, clients, max_seconds, label="load")
            for mark in (requests // 3, 2 * requests // 3):
                run.on_progress(mark, lambda: _publish(spec, [ROOT / "seeds", feed]))
            run.go()
            time.sleep(3)  # the replicas look at the alias once a second
            healths = [_health(port) for port in ports]
            found = [json.loads(get(port, f"/search?k=1&q={quote(ARTICLE['title'])}")[1])["results"][0]
                     ["citations"][0]["doc_id"] for port in ports]
            memory = [_memory(server.pid) for _, server in served]
        tracebacks = sum((Path(scratch) / f"log{n}").read_text().count("Traceback") for n in range(replicas))
    return {**run.summary(), "replicas": replicas, "store": spec, "generation_before": first,
            "generations_after": [h["generation"] for h in healths], "new_article_found": found,
            "rss_mb": [round(m, 1) for m in memory], "events": run.events, "tracebacks": tracebacks,
            "warmup_requests": warmup, "service": {"workers": workers, "threads": threads}}


_PUBLISHING = threading.Lock()  # one build of a name at a time, as an operator runs them


def _publish(spec: str, sources: list[Path]) -> dict:
    with _PUBLISHING:
        return _build_in_store(spec, sources)


def _build_in_store(spec: str, sources: list[Path]) -> dict:
    done = subprocess.run([sys.executable, "-m", "indexer", "build", *map(str, sources), "--store", spec, "--quiet"],
                          cwd=ROOT, capture_output=True, text=True)
    return {"event": "publish (indexer build --store)", "ok": done.returncode == 0,
            "output": (done.stdout or done.stderr).strip()[-300:]}


class _Run:
    """`clients` threads sharing a budget of requests; actions fired at progress marks."""

    REPORT_S = 60.0  # a progress line this often, for a labelled run

    def __init__(self, port: int | list[int], paths: list[str], requests: int, clients: int, max_seconds: float,
                 label: str | None = None, extra=lambda: "", cpu: "_CpuUse | None" = None):
        # several ports: the clients spread over them (replicas of one service)
        self.ports = port if isinstance(port, list) else [port]
        self.paths, self.budget, self.clients = paths, requests, clients
        self.max_seconds = max_seconds
        self.times: list[float] = []
        self.began: list[float] = []  # each latency's request sent at (time.monotonic())
        self.done = self.failed = 0
        self.failures: list[str] = []
        self.events: list[dict] = []
        self.reported: list[int] = []  # how many latencies were in at each progress line
        self._marks: list[tuple[int, object]] = []
        self._event_threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.label, self._extra = label, extra  # extra: more of the progress line (articles ingested)
        # the service's CPU read at the start, at each progress line and at the end: what a
        # search cost the workers in each stretch (whether the tail grows with that cost)
        self._cpu, self.cpu_marks = cpu, []

    def summary(self) -> dict:
        """What every load test reports of its run: requests, failures, latency, rate."""
        times = np.array(self.times)
        return {"requests": self.done, "failed": self.failed, "failures": self.failures[:10],
                "p50_ms": round(float(np.percentile(times, 50)), 2),
                "p99_ms": round(float(np.percentile(times, 99)), 2),
                "qps": round(self.done / self.seconds, 1), "seconds": round(self.seconds, 1), "clients": self.clients}

    def _stretches(self) -> list[tuple[int, int]]:
        """[first, end) of the latencies between progress lines (the last one to the end),
        empty ones included: the n-th lies between cpu_marks n and n + 1."""
        edges = [0, *self.reported, len(self.times)]
        return list(zip(edges, edges[1:]))

    def p99_by_window(self) -> list[float]:
        """The p99 of each stretch between progress lines: whether the tail holds through a
        phase or grows as it goes on, which its overall p99 hides."""
        return [round(float(np.percentile(self.times[a:b], 99)), 2) for a, b in self._stretches() if b > a]

    def ms_per_search_by_window(self) -> list[float]:
        """The workers' CPU per request answered in each stretch of p99_by_window (the
        visibility searches and PUTs the same workers served counted in it)."""
        return [round(spent["workers"] / requests * 1000, 3) for requests, spent, _ in self._spent_by_window()]

    def others_cores_by_window(self) -> list[float]:
        """The cores the rest of the machine used in each stretch of p99_by_window (`_cores`)."""
        return [_cores(spent, seconds).get("others_cores", 0.0) for _, spent, seconds in self._spent_by_window()]

    def _spent_by_window(self):
        """(requests, CPU seconds by part, seconds) of each non-empty stretch."""
        for (a, b), before, after in zip(self._stretches(), self.cpu_marks, self.cpu_marks[1:]):
            if b > a:
                yield b - a, {k: after[k] - before[k] for k in before if k != "at"}, after["at"] - before["at"]

    def on_progress(self, count: int, action) -> None:
        self._marks.append((count, action))

    def go(self) -> None:
        self._deadline = time.monotonic() + self.max_seconds
        started = time.monotonic()
        self._read_cpu()
        workers = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(self.clients)]
        for w in workers:
            w.start()
        finished = threading.Event()
        if self.label:
            threading.Thread(target=self._report, args=(started, finished), daemon=True).start()
        for w in workers:
            w.join()
        finished.set()
        self.seconds = time.monotonic() - started
        with self._lock:
            self._read_cpu()
        for t in self._event_threads:
            t.join()

    def _report(self, started: float, finished: threading.Event) -> None:
        while not finished.wait(self.REPORT_S):
            with self._lock:
                done, failed, times = self.done, self.failed, list(self.times)
                self._read_cpu()  # (with the latencies in at this moment: the stretch's own)
            last = times[(self.reported or [0])[-1]:]
            self.reported.append(len(times))
            p99 = ""
            if times:
                p99 = f", p99 so far {np.percentile(times, 99):.1f} ms"
            if last:
                p99 += f" ({np.percentile(last, 99):.1f} ms in the last {self.REPORT_S:g} s"
                if self._cpu is not None:
                    p99 += (f", workers' CPU {self.ms_per_search_by_window()[-1]:.2f} ms a request, "
                            f"other processes {self.others_cores_by_window()[-1]:.2f} cores")
                p99 += ")"
            say(f"{self.label}: {time.monotonic() - started:.0f} of {self.max_seconds:.0f} s, {done:,} requests, "
                f"{failed} failed{p99}{self._extra()}")

    def _read_cpu(self) -> None:
        if self._cpu is not None:
            self.cpu_marks.append(self._cpu.read())

    def _take(self) -> int | None:
        with self._lock:
            if self.done >= self.budget or time.monotonic() > self._deadline:
                return None
            self.done += 1
            n = self.done
            due = [a for count, a in self._marks if count == n]
        for action in due:  # beside the clients, none of which stops (an idle keep-alive connection
            # would be closed by the server after 2 s, and its next request fail for that alone)
            thread = threading.Thread(target=self._event, args=(n, action), daemon=True)
            thread.start()
            self._event_threads.append(thread)
        return n

    def _event(self, n: int, action) -> None:
        started = time.monotonic()
        self.events.append({"at_request": n, **action(), "seconds": round(time.monotonic() - started, 2)})

    def _client(self, n: int) -> None:
        port = self.ports[n % len(self.ports)]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while (i := self._take()) is not None:
            path = self.paths[(i * 7 + n) % len(self.paths)]
            began, started = time.monotonic(), time.perf_counter()
            try:
                status, body = get(port, path, conn)
                ok = status == 200 and json.loads(body)["results"]
                problem = None if ok else f"{status} {body[:200]!r}"
            except (OSError, http.client.HTTPException, ValueError) as e:
                problem = f"{type(e).__name__}: {e}"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            elapsed = (time.perf_counter() - started) * 1000
            with self._lock:
                self.times.append(elapsed)
                self.began.append(began)
                if problem:
                    self.failed += 1
                    self.failures.append(problem)
        conn.close()


def _add_from_another_process(index: Path, feed: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "indexer", "add", str(feed), "--index", str(index)],
                          cwd=ROOT, capture_output=True, text=True)
    return {"event": "indexer add", "ok": done.returncode == 0, "output": (done.stdout or done.stderr).strip()}


def _put_document(port: int, key: str, index: Path) -> dict:
    """Replace the first document of the index, changed by one line, over HTTP."""
    from search.index import store
    from search.index.generations import current

    with store.connect(current(index) / store.STORE) as db:
        doc_id, title, text = db.execute("SELECT doc_id, title, text FROM documents ORDER BY rowid LIMIT 1").fetchone()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = json.dumps({"text": text + "\n\nThis article was updated during a load test.\n", "title": title})
    conn.request("PUT", f"/documents/{quote(doc_id, safe='')}", body=body,
                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    response = conn.getresponse()
    answer = json.loads(response.read())
    conn.close()
    return {"event": "PUT /documents", "ok": response.status in (200, 201), "status": response.status,
            "output": answer}


# ---- --ingest-per-hour: articles added one by one while clients search ------------------

def ingest_test(index: Path, rate: float, seconds: float, clients: int, workers: int, threads: int,
                warmup: int, corpus: Path) -> dict:
    """The same search load twice for `seconds`, without and then with real articles PUT one
    at a time at `rate` an hour; after each PUT's reply, how long until a search finds it."""
    key = secrets.token_hex(16)
    paths = [f"/search?k={1 + n % 10}&q={quote(q)}" for n, q in enumerate(question_texts())]
    with tempfile.TemporaryDirectory(prefix="loadtest-") as scratch:
        copy = serving_copy(index, Path(scratch) / "index")
        env = {"SEARCH_API_KEY": key, "SEARCH_WORKERS": str(workers), "SEARCH_THREADS": str(threads)}
        with open(Path(scratch) / "server.log", "w+") as log, gunicorn(copy, env, log=log) as (port, server):
            _Run(port, paths, warmup, clients, seconds).go()
            indexed = _indexed_articles(port, question_texts())
            say(f"baseline: {seconds:.0f} s of searches from {clients} clients, and the visibility searches for "
                f"{len(indexed)} articles already indexed at {rate:g} an hour")
            cpu = _CpuUse(server.pid)
            baseline = _Run(port, paths, 10**9, clients, seconds, label="baseline", cpu=cpu)
            alike = _Probes(port, indexed, rate)
            prober = threading.Thread(target=alike.go, args=(seconds,), daemon=True)
            prober.start()
            baseline.go()
            prober.join()
            say(f"the same with {rate:g} articles an hour PUT one at a time")
            ingest = _Ingest(port, key, _articles(corpus), rate)
            loaded = _Run(port, paths, 10**9, clients, seconds, label="ingesting", cpu=cpu,
                          extra=lambda: f", {ingest.ingested} articles ingested, {ingest.failed} PUTs failed")
            feeder = threading.Thread(target=ingest.go, args=(seconds,), daemon=True)
            feeder.start()
            loaded.go()
            feeder.join()
            health = _health(port)
            tracebacks, first_traceback = _tracebacks(log)
    p99 = lambda run: round(float(np.percentile(run.times, 99)), 2)  # noqa: E731
    return {"requests": loaded.done, "failed": loaded.failed, "failures": loaded.failures[:10],
            "p99_ms": p99(loaded), "baseline_p99_ms": p99(baseline), "baseline_requests": baseline.done,
            "p99_ms_by_minute": loaded.p99_by_window(), "baseline_p99_ms_by_minute": baseline.p99_by_window(),
            "baseline_failed": baseline.failed, "p99_ratio": round(p99(loaded) / p99(baseline), 3),
            **_writes(ingest, alike), "ingest_per_hour": rate, "seconds": seconds, "clients": clients,
            "generation_after": health["generation"], "documents_after": health["documents"],
            "tracebacks": tracebacks, "first_traceback": first_traceback,
            "cpu": {"baseline": _cpu_between(baseline.cpu_marks[0], baseline.cpu_marks[-1], baseline),
                    "ingesting": _cpu_between(loaded.cpu_marks[0], loaded.cpu_marks[-1], loaded)},
            "since_publish": since_publish([loaded], ingest),
            "workers_ms_per_search_by_minute": loaded.ms_per_search_by_window(),
            "baseline_workers_ms_per_search_by_minute": baseline.ms_per_search_by_window(),
            "others_cores_by_minute": loaded.others_cores_by_window(),
            "baseline_others_cores_by_minute": baseline.others_cores_by_window(),
            "service": {"workers": workers, "threads": threads}}


# Cores the rest of the machine may take in a minute (or block) before a run's figures are
# called disturbed: the kernel's own threads and the idle service of --interleave take a
# few hundredths; a build, a test run or a package manager beside the load, tenths.
DISTURBED_CORES = 0.15


def _warn_if_disturbed(result: dict) -> None:
    """Say so when something else took the machine's CPU during a run: its ratio compares
    the service with itself only if nothing else shared the cores."""
    for phase, prefix in (("ingesting", ""), ("baseline", "baseline_")):
        for unit in ("minute", "block"):
            others = result.get(f"{prefix}others_cores_by_{unit}", [])
            busy = [str(n + 1) for n, cores in enumerate(others) if cores >= DISTURBED_CORES]
            if busy:
                say(f"warning: other processes took {max(others):.2f} cores in the {phase} phase's {unit} "
                    f"{', '.join(busy)}: its figures are not the service's alone")


# After an ingesting block, time for its workers to pick up the last generation (they look
# once a second) before the other service's block starts.
SETTLE_S = 3.0


def interleaved_ingest_test(index: Path, rate: float, seconds: float, clients: int, workers: int, threads: int,
                            warmup: int, corpus: Path, block: float) -> dict:
    """`ingest_test` with the two phases as alternating blocks of `block` seconds, each on
    a service of its own: the baseline's searches and the ingesting ones see the same
    machine, however its speed drifts over the run."""
    key = secrets.token_hex(16)
    paths = [f"/search?k={1 + n % 10}&q={quote(q)}" for n, q in enumerate(question_texts())]
    env = {"SEARCH_API_KEY": key, "SEARCH_WORKERS": str(workers), "SEARCH_THREADS": str(threads)}
    pairs = max(1, round(seconds / block))
    with tempfile.TemporaryDirectory(prefix="loadtest-") as scratch, \
            open(Path(scratch) / "baseline.log", "w+") as quiet_log, \
            open(Path(scratch) / "ingesting.log", "w+") as busy_log:
        quiet_copy = serving_copy(index, Path(scratch) / "baseline")
        busy_copy = serving_copy(index, Path(scratch) / "ingesting")
        with gunicorn(quiet_copy, env, log=quiet_log) as (quiet_port, quiet_server), \
                gunicorn(busy_copy, env, log=busy_log) as (busy_port, busy_server):
            for port in (quiet_port, busy_port):
                _Run(port, paths, warmup, clients, seconds).go()
            indexed = _indexed_articles(quiet_port, question_texts())
            say(f"{pairs} baseline and {pairs} ingesting blocks of {block:g} s, alternated, {clients} clients; "
                f"{rate:g} articles an hour PUT in the ingesting blocks, the visibility searches for {len(indexed)} "
                f"indexed articles at that rate in the baseline ones")
            phases = {"baseline": _Phase(quiet_port, _CpuUse(quiet_server.pid)),
                      "ingesting": _Phase(busy_port, _CpuUse(busy_server.pid))}
            ingest = _Ingest(busy_port, key, _articles(corpus), rate)
            alike = _Probes(quiet_port, indexed, rate)
            for n, name in enumerate(block_order(pairs)):
                phase = phases[name]
                run = _Run(phase.port, paths, 10**9, clients, block, cpu=phase.cpu)
                side = ingest if name == "ingesting" else alike
                feeder = threading.Thread(target=side.go, args=(block,), daemon=True)
                feeder.start()
                run.go()
                feeder.join()
                phase.add(run)
                say(f"block {n + 1} of {2 * pairs}, {name}: {run.done:,} requests, {run.failed} failed, p99 "
                    f"{phase.p99_by_block()[-1]:.1f} ms, workers' CPU {phase.ms_per_search_by_block()[-1]:.2f} ms "
                    f"a request, other processes {phase.others_cores_by_block()[-1]:.2f} cores"
                    + (f", {ingest.ingested} articles ingested, {ingest.failed} PUTs failed"
                       if name == "ingesting" else ""))
                if name == "ingesting":
                    time.sleep(SETTLE_S)
            health = _health(busy_port)
            tracebacks, first_traceback = _tracebacks(busy_log, quiet_log)
    quiet, busy = phases["baseline"], phases["ingesting"]
    return {"requests": busy.done, "failed": busy.failed, "failures": busy.failures[:10],
            "p99_ms": busy.p99(), "baseline_p99_ms": quiet.p99(), "baseline_requests": quiet.done,
            "baseline_failed": quiet.failed, "p99_ratio": round(busy.p99() / quiet.p99(), 3),
            "p99_ms_by_block": busy.p99_by_block(), "baseline_p99_ms_by_block": quiet.p99_by_block(),
            "p99_ratio_by_pair": [round(b / a, 3) for a, b in zip(quiet.p99_by_block(), busy.p99_by_block())],
            **_writes(ingest, alike), "ingest_per_hour": rate, "seconds": pairs * block,
            "clients": clients, "interleave_s": block, "generation_after": health["generation"],
            "documents_after": health["documents"], "tracebacks": tracebacks, "first_traceback": first_traceback,
            "cpu": {"baseline": quiet.cpu_used(), "ingesting": busy.cpu_used()},
            "since_publish": since_publish(busy.runs, ingest),
            "workers_ms_per_search_by_block": busy.ms_per_search_by_block(),
            "baseline_workers_ms_per_search_by_block": quiet.ms_per_search_by_block(),
            "others_cores_by_block": busy.others_cores_by_block(),
            "baseline_others_cores_by_block": quiet.others_cores_by_block(),
            "service": {"workers": workers, "threads": threads}}


# Stretches after a generation is published (seconds) in which `since_publish` gives the tail.
SINCE_PUBLISH_S = (0.0, 0.25, 0.5, 1.0, 2.0)


def since_publish(runs: list[_Run], ingest: "_Ingest") -> dict:
    """The ingesting searches' latency by how long after the last publish they were sent
    (a generation's publish taken as the first PUT reply naming it, a few milliseconds
    later): whether the tail is made when the workers open a generation, or while the
    writer works towards the next one."""
    published = np.sort(np.array(list(ingest.published.values())))
    began = np.concatenate([np.array(r.began) for r in runs]) if runs else np.zeros(0)
    times = np.concatenate([np.array(r.times) for r in runs]) if runs else np.zeros(0)
    out = {}
    if not len(published) or not len(began):
        return out
    last = np.searchsorted(published, began, side="right") - 1
    after = np.where(last >= 0, began - published[np.maximum(last, 0)], np.inf)
    for low, high in zip(SINCE_PUBLISH_S, SINCE_PUBLISH_S[1:] + (np.inf,)):
        here = times[(after >= low) & (after < high)]
        if len(here):
            name = f"{low:g}-{high:g} s" if np.isfinite(high) else f"{low:g} s on"
            out[name] = {"requests": int(len(here)), "p50_ms": round(float(np.percentile(here, 50)), 1),
                         "p99_ms": round(float(np.percentile(here, 99)), 1)}
    return out


def _writes(ingest: "_Ingest", alike: "_Probes") -> dict:
    """What a run reports of its PUTs and its visibility searches (and the baseline's)."""
    visible = np.array(ingest.probes.visible) if ingest.probes.visible else np.zeros(1)
    return {"probes": ingest.probes.sent, "baseline_probes": alike.sent,
            "ingested": ingest.ingested, "put_failed": ingest.failed, "put_failures": ingest.failures[:10],
            "ingested_per_hour": round(ingest.ingested / max(ingest.dispatch_s, 1e-9) * 3600),
            "put_p50_ms": round(float(np.percentile(ingest.put_ms or [0], 50)), 1),
            "put_p99_ms": round(float(np.percentile(ingest.put_ms or [0], 99)), 1),
            "visible_max_s": round(float(visible.max()), 3), "visible_p50_s": round(float(np.median(visible)), 3),
            "not_visible": ingest.probes.not_visible}


def block_order(pairs: int) -> list[str]:
    """baseline, ingesting, ingesting, baseline, baseline, ...: each phase as often first
    in a pair as second, so that a steady drift of the machine's speed favours neither."""
    order = []
    for n in range(pairs):
        order += ["baseline", "ingesting"] if n % 2 == 0 else ["ingesting", "baseline"]
    return order


class _Phase:
    """One phase's blocks on its own service, taken together."""

    def __init__(self, port: int, cpu: "_CpuUse"):
        self.port, self.cpu = port, cpu
        self.runs: list[_Run] = []

    def add(self, run: "_Run") -> None:
        self.runs.append(run)

    @property
    def done(self) -> int:
        return sum(r.done for r in self.runs)

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.runs)

    @property
    def failures(self) -> list[str]:
        return [f for r in self.runs for f in r.failures]

    def p99(self) -> float:
        return round(float(np.percentile([t for r in self.runs for t in r.times], 99)), 2)

    def p99_by_block(self) -> list[float]:
        return [round(float(np.percentile(r.times, 99)), 2) for r in self.runs]

    def ms_per_search_by_block(self) -> list[float]:
        return [r.ms_per_search_by_window()[-1] if r.done else 0.0 for r in self.runs]

    def cpu_used(self) -> dict:
        """Cores each part used over the phase's blocks (not the gaps between them), and the
        workers' CPU per request."""
        spent = {k: sum(r.cpu_marks[-1][k] - r.cpu_marks[0][k] for r in self.runs) for k in self.runs[0].cpu_marks[0]}
        seconds = spent.pop("at")
        return {**_cores(spent, seconds),
                "workers_ms_per_search": round(spent["workers"] / max(self.done, 1) * 1000, 3)}

    def others_cores_by_block(self) -> list[float]:
        return [r.others_cores_by_window()[-1] if r.done else 0.0 for r in self.runs]


def _tracebacks(*logs) -> tuple[int, str | None]:
    """How many tracebacks the services' logs hold, and the first one."""
    count, first = 0, None
    for log in logs:
        log.seek(0)
        text = log.read()
        count += text.count("Traceback")
        if first is None and "Traceback" in text:
            first = text[text.index("Traceback"):][:3000]
    return count, first


class _CpuUse:
    """Where the machine's CPU went, read from /proc: the service's workers (with
    gunicorn's master), its writer process, and this load generator (the clients, the
    PUTs and the visibility probes). Ingestion costs the searches in two ways: the CPU
    the others take, and what a search costs the workers while writes happen."""

    WRITER = "search.service.writer_process"

    def __init__(self, server: int):
        self._pids = process_tree(server)

    def read(self) -> dict[str, float]:
        machine, stolen = machine_cpu_seconds()
        use = {"workers": 0.0, "workers_system": 0.0, "writer": 0.0, "load_generator": cpu_seconds(),
               "machine": machine, "stolen": stolen, "at": time.monotonic()}
        for pid in self._pids:
            try:
                user, system = cpu_times(pid)
                part = "writer" if self.WRITER in command_line(pid) else "workers"
                use[part] += user + system
                if part == "workers":
                    use["workers_system"] += system
            except OSError:  # a process gone: what it used went with it
                pass
        return use


def _cpu_between(before: dict, after: dict, run: _Run) -> dict:
    """Cores each part used between two readings, and the workers' CPU per search of `run`
    (the PUTs and probes, served by the same workers, counted in it)."""
    spent = {k: after[k] - before[k] for k in before if k != "at"}
    return {**_cores(spent, after["at"] - before["at"]),
            "workers_ms_per_search": round(spent["workers"] / max(run.done, 1) * 1000, 3)}


def _cores(spent: dict, seconds: float) -> dict:
    """CPU seconds as cores over `seconds`, and `others_cores`: what the rest of the machine
    ran meanwhile (other programs, the kernel's own threads, an idle second service). A
    figure taken while something else was busy is not the service's alone."""
    cores = {f"{k}_cores": round(v / seconds, 3) for k, v in spent.items()}
    if "machine" in spent:
        others = spent["machine"] - spent["workers"] - spent["writer"] - spent["load_generator"]
        cores["others_cores"] = round(max(0.0, others) / seconds, 3)
    return cores


def _articles(corpus: Path):
    """Real articles (BEIR corpus records) under ids of their own, as PUT bodies."""
    with open(corpus, encoding="utf-8") as f:
        for n, line in enumerate(f):
            doc = json.loads(line)
            if doc.get("text", "").strip():
                yield f"ingest-{n}-{doc['_id']}", {"title": doc.get("title") or None, "text": doc["text"]}


def _indexed_articles(port: int, questions: list[str]) -> list[tuple[str, str]]:
    """(doc_id, a question asking for it) of articles the served index holds: those the
    questions find, each asked for by its title (else its passage's opening), as a
    visibility search asks for an article just added."""
    found: dict[str, str] = {}
    for question in questions:
        status, body = get(port, f"/search?k=10&q={quote(question)}")
        if status != 200:
            raise RuntimeError(f"a search of the served index failed: {status} {body[:200]!r}")
        for hit in json.loads(body)["results"]:
            for citation in hit["citations"]:
                found.setdefault(citation["doc_id"], (citation["title"] or hit["text"])[:200])
    if not found:
        raise RuntimeError("the questions find no article in the served index to send visibility searches for")
    return list(found.items())


def _when_due(items, interval: float, seconds: float):
    """`items`, each at its time: one every `interval` seconds from now, for `seconds`."""
    started = time.monotonic()
    for n, item in enumerate(items):
        due = started + n * interval
        if due > started + seconds:
            return
        time.sleep(max(0.0, due - time.monotonic()))
        yield item


class _Probes:
    """The visibility searches: for an article, searches filtered to its id and asking its
    title, each on a new connection (any worker), every 50 ms until PROBES in a row find
    it. Started for articles just PUT (`visible`: seconds from the reply to the first of
    those), and in the baseline for articles already indexed, at the same rate."""

    WITHIN_S = 60.0  # an article not found by then counts as not visible
    PROBES = 3
    EVERY_S = 0.05

    def __init__(self, port: int, articles: list[tuple[str, str]] | None = None, rate: float = 0.0):
        self.port, self.articles = port, articles or []
        self.interval = 3600.0 / rate if rate else 0.0
        self._next = itertools.cycle(self.articles)  # (an interleaved run's blocks go on where the last stopped)
        self.sent = self.not_visible = 0
        self.visible: list[float] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def go(self, seconds: float) -> None:
        """For the baseline: start probing `articles` in turn, one every `interval`."""
        for doc_id, question in _when_due(self._next, self.interval, seconds):
            self.start(doc_id, question, time.monotonic())
        self.join()

    def start(self, doc_id: str, question: str, since: float) -> None:
        thread = threading.Thread(target=self._until_found, args=(doc_id, question, since), daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def join(self) -> None:
        for thread in list(self._threads):
            thread.join()

    def _until_found(self, doc_id: str, question: str, since: float) -> None:
        path = f"/search?k=1&doc_id={quote(doc_id, safe='')}&q={quote(question)}"
        found = 0
        while time.monotonic() - since < self.WITHIN_S:
            try:
                with self._lock:
                    self.sent += 1
                status, answer = get(self.port, path)
                hit = status == 200 and json.loads(answer)["results"]
            except (OSError, http.client.HTTPException, ValueError):
                hit = False
            found = found + 1 if hit else 0
            if found == 1:
                first = time.monotonic()
            if found == self.PROBES:
                with self._lock:
                    self.visible.append(first - since)
                return
            time.sleep(self.EVERY_S)
        with self._lock:
            self.not_visible += 1


class _Ingest:
    def __init__(self, port: int, key: str, articles, rate: float):
        self.port, self.key, self.articles, self.interval = port, key, articles, 3600.0 / rate
        self.ingested = self.failed = 0
        self.failures: list[str] = []
        self.put_ms: list[float] = []
        self.published: dict[str, float] = {}  # generation -> the first PUT reply naming it (time.monotonic())
        self.probes = _Probes(port)
        self._lock = threading.Lock()
        self.dispatch_s = 0.0

    def go(self, seconds: float) -> None:
        """PUT an article every `interval` seconds for `seconds`, each when it is due, as a
        feed's articles arrive: not after the previous one's reply (a slow write must not
        lower the rate; writes that meet in the service are applied together)."""
        started = time.monotonic()
        puts = []
        for doc_id, body in _when_due(self.articles, self.interval, seconds):
            puts.append(threading.Thread(target=self._put, args=(doc_id, body), daemon=True))
            puts[-1].start()
        # the window's length (its last article was due before its end), or longer where the
        # PUTs fell behind; summed over the blocks of an interleaved run
        self.dispatch_s += max(time.monotonic() - started, seconds)
        for thread in puts:
            thread.join()
        self.probes.join()

    def _put(self, doc_id: str, body: dict) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        began = time.perf_counter()
        try:
            conn.request("PUT", f"/documents/{quote(doc_id, safe='')}", body=json.dumps(body),
                         headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"})
            response = conn.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException) as e:
            with self._lock:
                self.failed += 1
                self.failures.append(f"{doc_id}: {type(e).__name__}: {e}")
            return
        finally:
            conn.close()
        replied = time.monotonic()
        with self._lock:
            self.put_ms.append((time.perf_counter() - began) * 1000)
            if response.status not in (200, 201):
                self.failed += 1
                self.failures.append(f"{doc_id}: {response.status} {answer[:200]!r}")
                return
            self.ingested += 1
            try:
                generation = json.loads(answer)["generation"]
                self.published[generation] = min(replied, self.published.get(generation, replied))
            except (ValueError, KeyError, TypeError):
                pass
        self.probes.start(doc_id, (body["title"] or body["text"])[:200], replied)


def _health(port: int) -> dict:
    return json.loads(get(port, "/health")[1])


def _memory(pid: int) -> float:
    return sum(rss_mb(p) for p in process_tree(pid))


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
               or line.startswith(name + "{"))


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    # Stopped (Ctrl-C, or a SIGTERM), the run still stops the services it started: their
    # context managers exit, and its own threads (all daemons) do not hold the exit up.
    signal.signal(signal.SIGTERM, _interrupted)
    parser = argparse.ArgumentParser(prog="loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=ROOT / "index", help="index to serve a copy of")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=900.0, help="stop sending after this long")
    parser.add_argument("--warmup", type=int, default=2000, help="requests under the same load before measuring")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--ingest-per-hour", type=float, metavar="R",
                        help="instead: PUT real articles one by one at R an hour while the clients search, "
                             "against the same load without (both --seconds long)")
    parser.add_argument("--seconds", type=float, default=600.0, help="with --ingest-per-hour: each run's length")
    parser.add_argument("--interleave", type=float, metavar="S",
                        help="with --ingest-per-hour: the two phases as alternating blocks of S seconds on two "
                             "services alike (each phase --seconds in all), so that both see the same machine")
    parser.add_argument("--corpus", type=Path, default=SCIFACT, help="with --ingest-per-hour: BEIR corpus.jsonl "
                                                                     "of the articles to add")
    parser.add_argument("--store", metavar="milvus://HOST:PORT/NAME",
                        help="instead: replicas with no index directory, all answering from the seeds built into "
                             "Milvus under NAME, through two publishes")
    parser.add_argument("--replicas", type=int, default=3, help="with --store: service processes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.store:
        return _report_store(store_loadtest(args.store, args.requests, args.clients, args.max_seconds, args.replicas,
                                            args.workers, args.threads, min(args.warmup, 500)), args.json)
    if args.ingest_per_hour:
        check_corpus(parser, args.corpus)
    if args.ingest_per_hour:
        if args.interleave is not None and not 10 <= args.interleave <= args.seconds:
            parser.error(f"--interleave must be from 10 to --seconds ({args.seconds:g}) seconds")
        test = (functools.partial(interleaved_ingest_test, block=args.interleave) if args.interleave is not None
                else ingest_test)
        result = test(args.index, args.ingest_per_hour, args.seconds, args.clients, args.workers,
                      args.threads, args.warmup, args.corpus)
        _warn_if_disturbed(result)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(f"{result['requests']} requests in {args.seconds:.0f} s while {result['ingested']} articles were "
                  f"PUT ({result['put_failed']} failed): {result['failed']} failed; p99 {result['p99_ms']} ms against "
                  f"{result['baseline_p99_ms']} ms without ({result['p99_ratio']}x); found by a search at most "
                  f"{result['visible_max_s']} s after the PUT's reply (median {result['visible_p50_s']} s); "
                  f"{result['probes']} visibility searches, {result['baseline_probes']} in the baseline")
            for phase, use in result["cpu"].items():
                print(f"  {phase}: workers {use['workers_cores']} cores ({use['workers_ms_per_search']} ms a search), "
                      f"writer {use['writer_cores']}, load generator {use['load_generator_cores']}, "
                      f"other processes {use['others_cores']}, stolen by the hypervisor {use['stolen_cores']}")
            for stretch, seen in result["since_publish"].items():
                print(f"  sent {stretch} after a publish: {seen['requests']} searches, p50 {seen['p50_ms']} ms, "
                      f"p99 {seen['p99_ms']} ms")
        return 0 if not (result["failed"] or result["put_failed"] or result["not_visible"] or result["tracebacks"]) else 1
    result = loadtest(args.index, args.requests, args.clients, args.max_seconds, args.workers, args.threads,
                      args.warmup)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['requests']} requests from {result['clients']} clients in {result['seconds']} s "
              f"({result['qps']}/s): {result['failed']} failed; p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; "
              f"RSS {result['rss_mb_before']} -> {result['rss_mb_after']} MB; {result['reloads']} reloads, "
              f"generation {result['generation_before']} -> {result['generation_after']}")
        _print_events(result["events"])
    return 0 if result["failed"] == 0 and result["tracebacks"] == 0 and _two_ok(result["events"]) else 1


def _print_events(events: list[dict]) -> None:
    for event in events:
        print(f"  at request {event['at_request']}: {event['event']} ok={event['ok']} ({event['seconds']} s)")


def _two_ok(events: list[dict]) -> bool:
    """Both of the run's index changes happened, and went through."""
    return len(events) == 2 and all(e["ok"] for e in events)


def _report_store(result: dict, as_json: bool) -> int:
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['requests']} requests from {result['clients']} clients to {result['replicas']} replicas in "
              f"{result['seconds']} s ({result['qps']}/s): {result['failed']} failed; p50 {result['p50_ms']} ms, "
              f"p99 {result['p99_ms']} ms; generation {result['generation_before']} -> "
              f"{', '.join(result['generations_after'])}")
        _print_events(result["events"])
    last = f"g{int(result['generation_before'][1:]) + 2:06d}"
    same = all(g == last for g in result["generations_after"]) and \
        all(d == ARTICLE["id"] for d in result["new_article_found"])
    return 0 if result["failed"] == 0 and result["tracebacks"] == 0 and _two_ok(result["events"]) and same else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("loadtest: interrupted; the services it started are stopped", file=sys.stderr)
        sys.exit(130)
