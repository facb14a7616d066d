"""Progress lines on stderr for the measuring tools: each stage as it starts, with the
time since the tool started, so that a run of minutes is never silent on a terminal."""

from __future__ import annotations

import sys
import time

_STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:5.0f} s] {message}", file=sys.stderr, flush=True)
