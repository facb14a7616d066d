"""`ask` through its real entry point."""

import json
import re
import subprocess
import sys

from search.faces.cli import main

from helpers import ROOT

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


def test_ask_console_script_usage_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "search.faces.cli", "--bogus"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "usage: ask" in r.stderr and "Traceback" not in r.stderr
    # no question and no index: the error says what to run, before reading any question
    r = subprocess.run([sys.executable, "-m", "search.faces.cli", "--index", str(tmp_path / "none")], cwd=ROOT,
                       capture_output=True, text=True, input="KN-23\n")
    assert r.returncode == 2 and "ask: error: no index at" in r.stderr and "Traceback" not in r.stderr


def test_on_a_terminal_results_are_laid_out_with_rich(seed_index):
    from rich.console import Console

    from search import Searcher
    from search.faces.cli import rich_render
    from search.responses import search_body

    body = search_body(Searcher.open(seed_index), QUESTION, 2)
    console = Console(record=True, width=100, force_terminal=True, color_system="truecolor")
    console.print(rich_render(body))
    plain, styled = console.export_text(clear=False), console.export_text(styles=True)
    first = plain.split("[2]")[0]
    assert first.startswith("[1] score ") and "paragraph 7" in first.splitlines()[0]
    assert first.splitlines()[0].rstrip().endswith("paragraph 7")  # the source, right-aligned
    assert "710,000" in first and "also: " in first  # the translation that says the same
    assert "\x1b[1;33m" in styled  # the answering sentence in bold yellow


def test_piped_output_is_plain_text(seed_index):
    done = subprocess.run([sys.executable, "-m", "search.faces.cli", QUESTION, "--k", "2", "--index", str(seed_index)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "\x1b[" not in done.stdout and done.stdout.startswith("[1] score ")


def test_ask_without_a_question_reads_them_one_a_line(seed_index):
    done = subprocess.run([sys.executable, "-m", "search.faces.cli", "--k", "1", "--index", str(seed_index)], cwd=ROOT,
                          input="How many Russian casualties since 2022\n   \nnever asked\n", capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("[1] score ") == 1 and "710,000" in done.stdout  # stopped at the blank line
    bad = subprocess.run([sys.executable, "-m", "search.faces.cli", "--k", "0", "--index", str(seed_index)], cwd=ROOT,
                         input="KN-23\nLukashenko\n", capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("ask: error: k must be an integer from 1 to 100") == 2


def test_ask_context(capsys, seed_index):
    code, out, _ = run_ask(capsys, QUESTION, "--context", "--max-chars", "800", "--index", str(seed_index))
    assert code == 0 and out.startswith("[1] ") and len(out.rstrip("\n")) <= 800 and "Source: " in out
