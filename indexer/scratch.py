"""Scratch directories in the system's temporary directory, named for the process that
made them: one killed before it could remove its own (a Milvus build's is a whole index,
gigabytes for a large one) is removed by the next that makes one of the same kind."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from search.index.generations import process_alive


@contextmanager
def scratch(kind: str):
    """A temporary directory `<kind><pid>-...`, removed on leaving; the leftovers of
    `kind` whose process is gone are removed first."""
    sweep(kind)
    with tempfile.TemporaryDirectory(prefix=f"{kind}{os.getpid()}-") as directory:
        yield Path(directory)


def sweep(kind: str) -> None:
    """Remove the scratch directories of `kind` whose process is gone."""
    for path in Path(tempfile.gettempdir()).glob(f"{kind}*-*"):
        pid = path.name[len(kind):].split("-", 1)[0]
        if pid.isdigit() and not process_alive(pid):  # (a name without one is not ours)
            shutil.rmtree(path, ignore_errors=True)

