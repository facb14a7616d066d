"""The production path: scripts/serve under gunicorn on 127.0.0.1, queried over real HTTP."""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from search.faces.cli import main as ask
from search.index.generations import current

from helpers import ROOT, free_port


@pytest.fixture(scope="module")
def server(seed_index, tmp_path_factory):
    """scripts/serve on a free port, serving a copy of the seed index."""
    index = tmp_path_factory.mktemp("served") / "index"
    shutil.copytree(seed_index, index)
    port = free_port()
    log = open(tmp_path_factory.mktemp("log") / "serve.log", "w+")
    proc = subprocess.Popen([str(ROOT / "scripts" / "serve"), "--port", str(port), "--index", str(index)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "SEARCH_WORKERS": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            time.sleep(0.5)
    else:
        log.seek(0)
        pytest.fail(f"scripts/serve did not come up:\n{log.read()}")
    yield url, index, log
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    log.close()


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.headers, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read())


def test_serve_answers_the_casualties_question(server):
    url, index, _ = server
    status, _, body = get(f"{url}/search?q=How+many+Russian+casualties+since+2022")
    assert status == 200
    top = body["results"][0]
    assert "710,000" in top["text"]
    assert top["citations"][0]["doc_id"] in {"000_c7708b97d51473e9", "001_69714012eee412eb"}


def test_serve_uses_the_given_index_without_rebuilding(server):
    url, index, log = server
    status, _, health = get(f"{url}/health")
    assert status == 200 and health["index"] == str(index)
    assert json.loads((current(index) / "manifest.json").read_text())["built_at"] == health["built_at"]
    log.seek(0)
    text = log.read()
    assert "gunicorn" in text.lower() and "indexed" not in text


def test_errors_over_real_http_are_json(server):
    url, _, _ = server
    status, headers, body = get(f"{url}/search?q=war&k=1000")
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert body["error"]["code"] == "invalid_k"
    status, _, body = get(f"{url}/no/such/route")
    assert status == 404 and body["error"]["code"] == "not_found"


def test_ask_url_queries_the_running_service(server, capsys):
    url, _, _ = server
    assert ask(["How many Russian casualties since 2022", "--url", url, "--k", "2", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert len(body["results"]) == 2 and "710,000" in body["results"][0]["text"]
    assert ask(["war", "--url", url, "--k", "500"]) != 0
    assert "answered 400: k must be an integer from 1 to 100" in capsys.readouterr().err


def test_ask_url_reports_an_unreachable_service(capsys):
    assert ask(["war", "--url", f"http://127.0.0.1:{free_port()}"]) != 0
    assert "ask: error: cannot reach http://127.0.0.1:" in capsys.readouterr().err
