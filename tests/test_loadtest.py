"""scripts/loadtest's reading of where the CPU went (the load itself is measured by the
script, never in a test)."""

import subprocess
import sys

from tools.loadtest import _CpuUse, _cpu_between

# a child that spends `seconds` of CPU, says so, and waits for its stdin to close
CHILD = ("import sys, time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"
         "print('done', flush=True)\nsys.stdin.read()\n")
# a stand-in service: a parent with a "worker" child and a child whose command names the
# writer's module, as gunicorn's master has its workers and the writer process
PARENT = ("import subprocess, sys\n"
          f"w = subprocess.Popen([sys.executable, '-c', {CHILD.format(seconds=0.6)!r}])\n"
          f"r = subprocess.Popen([sys.executable, '-c', {CHILD.format(seconds=0.3)!r}, 'search.service.writer_process'])\n"
          "print('started', flush=True)\n"
          "w.wait(); r.wait()\n")


class _Searches:
    done = 100


def test_cpu_is_read_per_process_and_the_writer_told_apart_by_its_command():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert parent.stdout.readline() == "started\n"
        cpu = _CpuUse(parent.pid)
        before = cpu.read()
        assert [parent.stdout.readline() for _ in range(2)] == ["done\n", "done\n"]
        after = cpu.read()
    finally:
        parent.communicate("", timeout=30)
    assert len(cpu._pids) == 3  # the parent and its two children
    workers = after["workers"] - before["workers"]
    writer = after["writer"] - before["writer"]
    assert 0.45 <= workers <= 0.8  # the 0.6 s child (and the idle parent)
    assert 0.2 <= writer <= 0.45  # the 0.3 s one, told apart by its command
    # of the workers' CPU, the kernel's part (the child's loop asks the kernel for its CPU
    # clock: some, never more than the whole)
    assert 0 < after["workers_system"] - before["workers_system"] <= workers
    used = _cpu_between(before, after, _Searches())
    seconds = after["at"] - before["at"]
    assert abs(used["workers_cores"] - workers / seconds) < 0.01
    assert abs(used["writer_cores"] - writer / seconds) < 0.01
    assert used["workers_ms_per_search"] == round(workers / 100 * 1000, 3)
    # the machine ran at least what the children ran; the rest of it is counted apart
    assert after["machine"] - before["machine"] >= 0.9 * (workers + writer)
    assert used["others_cores"] >= 0 and used["stolen_cores"] >= 0


def test_the_rest_of_the_machine_is_counted_apart_and_a_busy_neighbour_is_called_out(capsys):
    from tools.loadtest import _Run, _warn_if_disturbed

    run = _Run(0, ["/"], 1, 1, 1)
    run.done, run.times = 100, [10.0] * 100
    run.cpu_marks = [{"workers": 10.0, "writer": 1.0, "load_generator": 0.5, "machine": 50.0, "stolen": 2.0, "at": 0.0},
                     {"workers": 25.0, "writer": 2.0, "load_generator": 1.0, "machine": 70.0, "stolen": 2.5,
                      "at": 10.0}]
    # 20 s of the machine's CPU in 10 s, 16.5 of them the service's and the load generator's
    used = _cpu_between(run.cpu_marks[0], run.cpu_marks[1], run)
    assert (used["machine_cores"], used["others_cores"], used["stolen_cores"]) == (2.0, 0.35, 0.05)
    assert run.others_cores_by_window() == [0.35]
    _warn_if_disturbed({"others_cores_by_minute": [0.01, 0.35, 0.2], "baseline_others_cores_by_minute": [0.02, 0.03]})
    err = capsys.readouterr().err
    assert "warning: other processes took 0.35 cores in the ingesting phase's minute 2, 3:" in err
    assert "baseline" not in err
    _warn_if_disturbed({"others_cores_by_block": [0.01], "baseline_others_cores_by_block": [0.03, 0.4]})
    assert "took 0.40 cores in the baseline phase's block 2:" in capsys.readouterr().err


def test_visibility_searches_find_indexed_articles_and_only_them(seed_index):
    # the baseline sends the same visibility searches as the ingesting phase, for articles
    # the index holds: each must be found by three searches in a row; one it lacks, never
    import time

    from tools.bench import question_texts
    from tools.loadtest import _indexed_articles, _Probes
    from tools.served import gunicorn

    with gunicorn(seed_index, {"SEARCH_WORKERS": "1"}) as (port, _):
        articles = _indexed_articles(port, question_texts()[:3])
        assert len(articles) >= 2 and all(doc_id[:3].isdigit() and question for doc_id, question in articles)
        probes = _Probes(port, articles, rate=36_000)  # one article every 0.1 s
        probes.go(0.25)
        assert len(probes.visible) == 3 and probes.sent == 9 and probes.not_visible == 0
        missing = _Probes(port)
        missing.WITHIN_S = 0.4
        missing.start("no-such-article", articles[0][1], time.monotonic())
        missing.join()
        assert missing.visible == [] and missing.not_visible == 1 and missing.sent >= 3


def test_a_labelled_run_reports_its_progress_on_stderr_and_an_unlabelled_one_stays_quiet(seed_index, capsys):
    # a ten-minute phase must not run silent: a line every REPORT_S with the requests so far
    import re
    from urllib.parse import quote

    from tools.bench import question_texts
    from tools.loadtest import _Run
    from tools.served import gunicorn

    paths = [f"/search?k=3&q={quote(q)}" for q in question_texts()[:5]]
    with gunicorn(seed_index, {"SEARCH_WORKERS": "1"}) as (port, _):
        quiet = _Run(port, paths, 10**9, 2, 0.5)
        quiet.REPORT_S = 0.2
        quiet.go()
        assert capsys.readouterr().err == "" and quiet.done > 0 and quiet.failed == 0
        run = _Run(port, paths, 10**9, 2, 1.0, label="phase", extra=lambda: ", and more")
        run.REPORT_S = 0.3
        run.go()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 2, lines
    counts = []
    for line in lines:
        found = re.fullmatch(r"\[\s*\d+ s\] phase: \d+ of 1 s, ([\d,]+) requests, 0 failed, p99 so far [\d.]+ ms"
                             r"( \([\d.]+ ms in the last 0.3 s\))?, and more", line)
        assert found, line
        counts.append(int(found.group(1).replace(",", "")))
    assert counts == sorted(counts) and 0 < counts[-1] <= run.done
    # each stretch between the lines has its own p99, and together they hold every latency
    import numpy as np

    assert len(run.reported) == len(lines) and run.reported == sorted(run.reported)
    edges = [0, *run.reported, len(run.times)]
    stretches = [run.times[a:b] for a, b in zip(edges, edges[1:]) if b > a]
    assert sum(map(len, stretches)) == len(run.times) == run.done
    assert run.p99_by_window() == [round(float(np.percentile(s, 99)), 2) for s in stretches]


def test_a_run_given_the_service_cpu_reports_what_a_request_cost_the_workers_in_each_stretch(seed_index, capsys):
    # a tail growing through a phase: the line says whether searches grew dearer meanwhile
    import re
    from urllib.parse import quote

    from tools.bench import question_texts
    from tools.loadtest import _CpuUse, _Run
    from tools.served import gunicorn

    paths = [f"/search?k=3&q={quote(q)}" for q in question_texts()[:5]]
    with gunicorn(seed_index, {"SEARCH_WORKERS": "1"}) as (port, server):
        cpu = _CpuUse(server.pid)
        run = _Run(port, paths, 10**9, 2, 1.0, label="phase", cpu=cpu)
        run.REPORT_S = 0.3
        run.go()
    lines = capsys.readouterr().err.splitlines()
    found = [re.search(r"\(.* in the last 0.3 s, workers' CPU ([\d.]+) ms a request, other processes ([\d.]+) "
                       r"cores\)$", line) for line in lines]
    shown = [float(m.group(1)) for m in found]
    assert len(run.cpu_marks) == len(run.reported) + 2  # the start, each line, the end
    by_window = run.ms_per_search_by_window()
    assert len(by_window) == len(run.p99_by_window()) == len(lines) + 1
    assert shown == [round(v, 2) for v in by_window[:len(lines)]]
    others = run.others_cores_by_window()
    assert len(others) == len(by_window) and all(0 <= v <= 2 for v in others)
    assert [float(m.group(2)) for m in found] == [round(v, 2) for v in others[:len(lines)]]
    # together the stretches hold every request and all the workers' CPU of the run
    edges = [0, *run.reported, len(run.times)]
    spent = sum(v * (b - a) for v, a, b in zip(by_window, edges, edges[1:])) / 1000
    total = run.cpu_marks[-1]["workers"] - run.cpu_marks[0]["workers"]
    assert total > 0 and abs(spent - total) < 0.001 * len(by_window) + 1e-6
    assert all(0 < v < 1000 for v in by_window)  # a search of the seeds: milliseconds, not nothing


def test_interleaved_blocks_put_each_phase_first_in_as_many_pairs_as_the_other():
    # a steady drift of the machine's speed must favour neither phase
    from tools.loadtest import block_order

    for pairs in (1, 2, 5, 10):
        order = block_order(pairs)
        assert len(order) == 2 * pairs and order.count("baseline") == order.count("ingesting") == pairs
        pairs_of = [order[n:n + 2] for n in range(0, len(order), 2)]
        assert all(sorted(pair) == ["baseline", "ingesting"] for pair in pairs_of)
        firsts = [pair[0] for pair in pairs_of]
        assert abs(firsts.count("baseline") - firsts.count("ingesting")) <= 1
    assert block_order(4) == ["baseline", "ingesting", "ingesting", "baseline"] * 2


def test_a_phase_of_several_blocks_counts_the_cpu_of_its_blocks_and_not_the_gaps_between():
    from tools.loadtest import _Phase, _Run

    def run(start: float, seconds: float, workers: float, done: int) -> _Run:
        r = _Run(0, ["/"], 1, 1, 1)
        r.done, r.times = done, [10.0] * (done - 1) + [50.0]
        r.cpu_marks = [{"workers": 100.0, "writer": 5.0, "load_generator": 1.0, "at": start},
                       {"workers": 100.0 + workers, "writer": 5.5, "load_generator": 1.2, "at": start + seconds}]
        return r

    phase = _Phase(0, None)
    phase.add(run(0.0, 10.0, 15.0, 5000))
    phase.add(run(1000.0, 10.0, 17.0, 3000))  # an hour of gap between them counts for nothing
    used = phase.cpu_used()
    assert used == {"workers_cores": 1.6, "writer_cores": 0.05, "load_generator_cores": 0.02,
                    "workers_ms_per_search": 4.0}
    assert phase.done == 8000 and phase.p99_by_block() == [10.0, 10.0]
    assert phase.ms_per_search_by_block() == [3.0, 5.667]


def test_the_tail_is_told_by_how_long_after_a_publish_a_search_was_sent():
    from types import SimpleNamespace

    from tools.loadtest import _Run, since_publish

    run = _Run(0, ["/"], 1, 1, 1)
    # generations published at 10 and 12 s; searches sent before the first (not counted),
    # just after each publish (slow), and in between (fast)
    run.began = [9.0, 10.1, 10.2, 10.6, 11.5, 12.05, 12.3, 14.5]
    run.times = [99.0, 80.0, 90.0, 30.0, 35.0, 70.0, 40.0, 20.0]
    ingest = SimpleNamespace(published={"g000002": 10.0, "g000003": 12.0})
    seen = since_publish([run], ingest)
    assert list(seen) == ["0-0.25 s", "0.25-0.5 s", "0.5-1 s", "1-2 s", "2 s on"]
    assert seen["0-0.25 s"]["requests"] == 3 and seen["0-0.25 s"]["p50_ms"] == 80.0
    assert seen["0.25-0.5 s"] == {"requests": 1, "p50_ms": 40.0, "p99_ms": 40.0}
    assert seen["0.5-1 s"]["requests"] == 1 and seen["1-2 s"]["requests"] == 1
    assert seen["2 s on"] == {"requests": 1, "p50_ms": 20.0, "p99_ms": 20.0}
    assert since_publish([run], SimpleNamespace(published={})) == {}
