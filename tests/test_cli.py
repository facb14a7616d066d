"""`ask` through its real entry point."""

import json
import re
import subprocess
import sys

from conftest import ROOT
from search.cli import main

QUESTION = "How many Russian casualties since 2022"


def run_ask(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_ask_json_is_the_http_body(capsys, client, seed_index):
    code, out, err = run_ask(capsys, QUESTION, "--json", "--k", "3", "--index", str(seed_index))
    assert code == 0, err
    http = client.get("/search", query_string={"q": QUESTION, "k": 3})
    cli_body, http_body = json.loads(out), http.get_json()
    assert cli_body.pop("took_ms") >= 0 and http_body.pop("took_ms") >= 0
    assert cli_body == http_body
    # and the same bytes, apart from the timing
    timing = json.loads(out)["took_ms"]
    assert out.strip() == http.get_data(as_text=True).replace(
        f'"took_ms": {http.get_json()["took_ms"]}', f'"took_ms": {timing}')


def test_ask_prints_readable_passages(capsys, seed_index):
    code, out, _ = run_ask(capsys, QUESTION, "--k", "2", "--index", str(seed_index))
    assert code == 0
    first = out.split("\n\n[2]")[0]
    assert re.match(r"\[1\] score [01]\.\d{3} · ", first)
    assert "_69714012eee412eb.txt · paragraph 7" in first or "_c7708b97d51473e9.txt · paragraph 7" in first
    # the highlight, emphasised (000 and 001 word it differently)
    assert re.search(r"\*\*(Total|The total number of) Russian casualties", first.replace("\n    ", " "))
    assert "710,000" in first.replace("\n    ", " ")
    assert "    also: 00" in first  # the other translation of the op-ed
    assert "“OPINION - Vladimir Putin" in first or "“How Vladimir Putin’s use" in first


def test_ask_mode_and_no_collapse(capsys, seed_index):
    code, out, _ = run_ask(capsys, QUESTION, "--json", "--k", "2", "--mode", "dense", "--no-collapse",
                           "--index", str(seed_index))
    body = json.loads(out)
    assert code == 0 and (body["mode"], body["collapse"]) == ("dense", False)
    assert {r["citations"][0]["doc_id"][:3] for r in body["results"]} == {"000", "001"}


def test_ask_errors_go_to_stderr_with_nonzero_exit(capsys, tmp_path, seed_index):
    code, out, err = run_ask(capsys, QUESTION, "--index", str(tmp_path / "none"))
    assert code != 0 and out == ""
    assert err.startswith(f"ask: error: no index at {tmp_path / 'none'}: run `python -m indexer build")
    code, out, err = run_ask(capsys, "   ", "--index", str(seed_index))
    assert code != 0 and "query is empty" in err
    code, out, err = run_ask(capsys, QUESTION, "--k", "0", "--index", str(seed_index))
    assert code != 0 and "k must be an integer from 1 to 100" in err


def test_ask_console_script_usage_error():
    r = subprocess.run([sys.executable, "-m", "search.cli"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "usage: ask" in r.stderr and "Traceback" not in r.stderr
