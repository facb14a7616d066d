"""What several test modules share: the repository's paths, a free port on loopback,
JSON-lines feeds, and the check every error response must pass."""

from __future__ import annotations

import json
from pathlib import Path

from tools.served import free_port  # noqa: F401  (one way to find a port, for tests and tools alike)

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


def write_jsonl(path: Path, *docs: dict) -> Path:
    """`docs` as a .jsonl feed at `path` (one JSON object a line)."""
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return path


def error(response, status: int, code: str) -> str:
    """Assert that a Flask test response is the JSON error `code` with `status` and a
    message, and nothing else; return the message."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body["error"]["message"]
