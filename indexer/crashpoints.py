"""Named points in a build or an update where the crash-safety test kills the indexer.

`INDEXER_KILL_AT=<name>` makes the indexer SIGKILL itself on reaching that point (nothing
flushed, no handler run: as if the machine died there); `INDEXER_TRACE_POINTS=<file>`
appends the name of every point reached, so the test learns the points of a real run
instead of keeping its own list. Neither is set in normal use.
"""

from __future__ import annotations

import os
import signal

KILL_AT = "INDEXER_KILL_AT"
TRACE = "INDEXER_TRACE_POINTS"


def crashpoint(name: str) -> None:
    trace = os.environ.get(TRACE)
    if trace:
        with open(trace, "a", encoding="utf-8") as f:
            f.write(name + "\n")
    if os.environ.get(KILL_AT) == name:
        os.kill(os.getpid(), signal.SIGKILL)
