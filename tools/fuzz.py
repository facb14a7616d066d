"""`scripts/fuzz`: schemathesis against the live service, from its own `/openapi.json`.

A copy of the index is served by gunicorn (writes enabled with a throwaway API key, so
PUT and DELETE are fuzzed past their key check) and `st run` is pointed at it `--runs`
times with every check on (tests/fuzz/schemathesis.toml): status codes, content types
and bodies must match the document, valid input must be accepted and invalid input
refused. Afterwards the service's own /metrics say how many requests it answered and
with which statuses: the run fails on any 5xx.

    scripts/fuzz [--index DIR] [--examples 300] [--runs 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.served import ROOT, get, gunicorn

CONFIG = ROOT / "tests" / "fuzz" / "schemathesis.toml"


def fuzz(index: Path, examples: int = 300, runs: int = 1, seed: int | None = None) -> dict:
    key = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="fuzz-") as scratch:
        copy = Path(scratch) / "index"
        shutil.copytree(index, copy)  # the fuzzer adds and deletes documents
        with open(Path(scratch) / "server.log", "w+") as log, \
                gunicorn(copy, {"SEARCH_API_KEY": key, "SEARCH_WORKERS": "1"}, log=log) as (port, _):
            outcomes = [_run(port, key, examples, seed) for _ in range(runs)]
            metrics = get(port, "/metrics")[1].decode()
            log.seek(0)
            server_log = log.read()
            tracebacks = server_log.count("Traceback")
    statuses: dict[str, int] = {}
    for status, count in re.findall(r'^search_requests_total\{[^}]*status="(\d+)"\} ([0-9.e+]+)$', metrics, re.M):
        statuses[status] = statuses.get(status, 0) + int(float(count))
    server_errors = sum(n for s, n in statuses.items() if s.startswith("5"))
    return {"runs": runs, "generated": sum(o["generated"] for o in outcomes),
            "requests": sum(statuses.values()), "by_status": dict(sorted(statuses.items())),
            "server_errors": server_errors, "tracebacks": tracebacks,
            "first_traceback": server_log[server_log.find("Traceback"):][:4000] if tracebacks else None,
            "failed_runs": [o["summary"] for o in outcomes if not o["passed"]],
            "passed": server_errors == 0 and tracebacks == 0 and all(o["passed"] for o in outcomes)}


def _run(port: int, key: str, examples: int, seed: int | None) -> dict:
    command = [str(Path(sys.executable).parent / "st"), "--config-file", str(CONFIG), "--no-color", "run",
               f"http://127.0.0.1:{port}/openapi.json", "--max-examples", str(examples),
               "-H", f"Authorization: Bearer {key}"]
    if seed is not None:
        command += ["--seed", str(seed)]
    # tools/fuzz_hooks.py: NDJSON bodies for POST /documents
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tools.fuzz_hooks",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    generated = re.search(r"(\d+) generated", done.stdout)
    tail = done.stdout[done.stdout.find("FAILURES"):] if "FAILURES" in done.stdout else done.stdout[-1500:]
    return {"passed": done.returncode == 0, "generated": int(generated.group(1)) if generated else 0,
            "summary": tail[-6000:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=ROOT / "index", help="index to serve a copy of")
    parser.add_argument("--examples", type=int, default=300, help="examples per operation and phase")
    parser.add_argument("--runs", type=int, default=1, help="st runs, each with a fresh random seed")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = fuzz(args.index, args.examples, args.runs, args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['runs']} runs, {result['generated']} test cases, {result['requests']} requests answered: "
              f"{result['by_status']}; 5xx: {result['server_errors']}")
        for summary in result["failed_runs"]:
            print(summary)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
