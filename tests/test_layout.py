"""The house: what `import search` loads, and what the wheel a user installs holds."""

import shutil
import subprocess
import sys
import zipfile

import pytest

from helpers import ROOT


def test_importing_the_library_loads_no_http_and_no_measuring_code():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, search, search.searcher\n"
         "print(' '.join(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug', 'tools', 'gunicorn', "
         "'txtai', 'ray', 'pytrec_eval') or m.startswith(('search.service', 'search.faces'))))"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []


def test_the_wheel_holds_the_library_and_its_page_but_no_measuring_tool(tmp_path):
    # built from a copy of what git holds (as a clone has it), so the build leaves nothing behind
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    source = tmp_path / "source"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "--quiet",
                    "--disable-pip-version-check", "-w", str(tmp_path)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("newsearch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {name.rsplit("/", 1)[0] for name in names if name.endswith("/__init__.py")}
    assert packages == {"search", "search/index", "search/embedding", "search/retrieval", "search/service",
                        "search/faces", "indexer"}
    assert {"search/service/static/index.html", "search/service/static/app.js"} <= set(names)
    assert not [name for name in names if name.startswith(("tools/", "tests/"))]
