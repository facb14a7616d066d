"""Every `SEARCH_*` environment variable, typed, in one place.

The service, the embedder, the faces and the indexer read their settings through
`value`, so a switch means the same everywhere (`SEARCH_VERIFY=no` and
`SEARCH_EMBED_SPIN=no` alike) and a number that is not one names its variable. The
README's configuration table is `python -m search.settings` (tests/test_settings.py
checks that it is).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

FALSE_WORDS = frozenset({"false", "0", "off", "no"})


@dataclass(frozen=True)
class Setting:
    name: str
    kind: type  # str, int, float or bool
    default: object  # what the code uses when the variable is unset or empty (None: nothing)
    meaning: str
    shown_default: str = ""  # the default as the README states it, where it is not `default`
    aliases: tuple[str, ...] = ()  # older names still read
    bounds: tuple[float, float] | None = None  # a number's range: above the first, at most the second

    def documented_default(self) -> str:
        return self.shown_default or f"`{str(self.default).lower() if self.kind is bool else self.default}`"


SETTINGS = (
    Setting("SEARCH_INDEX", str, "index", "index directory (service, `ask`, MCP, `indexer`)"),
    Setting("SEARCH_STORE", str, None, "an index held in Milvus, `milvus://host:port/name`, served instead of "
            "an index directory (service, `ask`, MCP)", "none"),
    Setting("SEARCH_MODEL", str, None, "sentence-transformers model name or path; must be the one the index "
            "was built with", "bundled all-MiniLM-L6-v2"),
    Setting("SEARCH_VERIFY", bool, True, "check the index's checksums at start-up (`true`/`false`)"),
    Setting("SEARCH_MODE", str, "hybrid", "default ranking when a request names none: `hybrid`, `dense` or "
            "`lexical`"),
    Setting("SEARCH_DEFAULT_K", int, 5, "passages a search returns when the request names no `k`"),
    Setting("SEARCH_MAX_CONTENT_LENGTH", int, 64 * 1024, "largest request body in bytes (a search's; queries "
            "are at most 1,000 characters)", "`65536`"),
    Setting("SEARCH_MAX_DOCUMENT_BODY", int, 4 * 1024 * 1024, "largest `PUT /documents` body in bytes "
            "(a document's text is at most 1,000,000 characters)", "`4194304`"),
    Setting("SEARCH_MAX_FEED_BODY", int, 64 * 1024 * 1024, "largest `POST /documents` feed in bytes",
            "`67108864`"),
    Setting("SEARCH_API_KEY", str, None, "enables `PUT`/`DELETE /documents` and is the key they need",
            "unset: writes off"),
    Setting("SEARCH_ACCESS_LOG", bool, True, "`off` drops the per-request log line", "on"),
    Setting("SEARCH_CORS_ORIGINS", str, None, "comma-separated origins allowed to read answers from a browser "
            "(`*`: any)", "none"),
    Setting("SEARCH_RELOAD_CHECK_S", float, 1.0, "how often a worker looks for a new index generation (seconds)",
            "`1`"),
    Setting("SEARCH_BIND", str, "127.0.0.1:8000", "gunicorn bind address (`scripts/serve` sets it from "
            "`--host`/`--port`)"),
    Setting("SEARCH_WORKERS", int, 2, "gunicorn worker processes"),
    Setting("SEARCH_THREADS", int, 4, "gunicorn threads per worker"),
    Setting("SEARCH_WORKER_SEARCHES", int, None, "searches (`/search`, `/context`, `/stories`) a process runs at "
            "once; the others wait their turn, since more at once only share the same cores, each slower",
            "cores ÷ workers under gunicorn; else no limit", bounds=(0, 4096)),
    Setting("SEARCH_WRITER_THREADS", int, 1, "model threads of the service's writer process, which embeds what "
            "`PUT`/`POST /documents` send (more: a large feed embedded sooner, searches slower meanwhile)"),
    Setting("SEARCH_PUBLISH_INTERVAL_S", float, 2.0, "while the machine has no core to spare, the writer "
            "publishes at most one generation this often, writes arriving meanwhile applied together (each "
            "generation costs every worker a reload); with a core idle, every 0.5 s", "`2`"),
    Setting("SEARCH_WRITER_DUTY", float, 0.5, "the share of a core each of the writer process's threads (its "
            "updates, with their model, and its merges) may take while the machine has no core to spare: it sleeps "
            "along the way to keep to it (`1`: never paced)", "`0.5`",
            bounds=(0, 1)),
    Setting("SEARCH_WRITER_NICE", int, 0, "how far below the workers the writer process's CPU priority is (a Unix "
            "nice increment), so that searches keep their latency while articles are embedded"),
    Setting("SEARCH_EMBED_BACKEND", str, None, "how the model runs: `onnx-int8`, `torch` (fp32) or `torch-bf16` "
            "(AMX / AVX-512 BF16 CPUs)", "`onnx-int8`"),
    Setting("SEARCH_EMBED_THREADS", int, None, "model threads per process", "all cores; `1` under gunicorn",
            aliases=("SEARCH_TORCH_THREADS",)),
    Setting("SEARCH_EMBED_ARENA", bool, True, "onnxruntime's memory arena (`off`: batch memory handed back)",
            "`on`; `off` under gunicorn"),
    Setting("SEARCH_EMBED_SPIN", bool, True, "`off`: onnxruntime's idle model threads sleep instead of spinning",
            "`on`"),
    Setting("SEARCH_NPROBE", int, None, "IVF clusters probed per query (IVF indexes only)", "from the manifest"),
    Setting("SEARCH_QUERY_CACHE", int, 4096, "recent query embeddings kept per process (`0`: none)"),
    Setting("SEARCH_SENTENCES_MAPPED_MB", int, 256, "sentence-vector files up to this size are memory-mapped "
            "(resident, shared by the workers, searched faster); larger ones, a big archive's, are read "
            "where a search asks (`0`: never mapped)"),
    Setting("SEARCH_CACHE", str, None, "where the ONNX export of a model is kept", "`~/.cache/newsearch`"),
    Setting("SEARCH_VECTOR_STORE", str, "faiss", "`indexer build`'s default `--vector-store` (`faiss` or "
            "`milvus://host:port/collection`); a service reads the store from the index's manifest"),
)
BY_NAME = {s.name: s for s in SETTINGS}


def value(name: str, environ=None):
    """The variable `name` from the environment (or `environ`), typed; its default when
    it is unset or empty.

    Raises:
        ValueError: a number that is not one, naming the variable.
    """
    setting = BY_NAME[name]
    environ = os.environ if environ is None else environ
    raw = next((environ[n] for n in (name, *setting.aliases) if environ.get(n, "").strip()), None)
    return setting.default if raw is None else convert(setting, raw)


def convert(setting: Setting, raw):
    """A value as written (or as a caller configured it in code) in the setting's type."""
    if setting.kind is bool:
        return flag(raw)
    if setting.kind in (int, float):
        try:
            if isinstance(raw, bool):
                raise ValueError
            number = setting.kind(raw)
        except (TypeError, ValueError):
            kind = "an integer" if setting.kind is int else "a number"
            raise ValueError(f"{setting.name} must be {kind}, got {raw!r}") from None
        if setting.bounds and not setting.bounds[0] < number <= setting.bounds[1]:
            low, high = setting.bounds
            raise ValueError(f"{setting.name} must be more than {low} and at most {high}, got {raw!r}")
        return number
    return str(raw)


def flag(value) -> bool:
    """A switch as written: false for false/0/off/no (any case), true otherwise."""
    return str(value).strip().lower() not in FALSE_WORDS


def table() -> str:
    """The README's configuration table."""
    rows = ["| variable | meaning | default |", "|---|---|---|"]
    for s in SETTINGS:
        names = " / ".join(f"`{n}`" for n in (s.name, *s.aliases))
        rows.append(f"| {names} | {s.meaning} | {s.documented_default()} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(table())
