"""The production server as a child process on 127.0.0.1, for the scripts that measure
or attack it (scripts/bench, scripts/fuzz, scripts/loadtest) and the tests that do."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, conn: http.client.HTTPConnection | None = None,
        headers: dict | None = None) -> tuple[int, bytes]:
    """(status, body) of one GET, on `conn` (kept alive) or a connection of its own."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        if own:
            conn.close()


@contextmanager
def gunicorn(index: Path, env: dict | None = None, log=None, timeout: float = 300):
    """gunicorn serving `index` as production does; yields (port, process) once every
    worker is ready. `log`: a file for the server's log (default: a temporary one)."""
    import tempfile
    from contextlib import nullcontext

    port = free_port()
    env = {**os.environ, "SEARCH_INDEX": str(index), "SEARCH_ACCESS_LOG": "off", **(env or {})}
    workers = int(env.get("SEARCH_WORKERS", "2"))
    with tempfile.NamedTemporaryFile("w+", prefix="gunicorn-", suffix=".log") if log is None else nullcontext(log) as out:
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "python:search.service.gunicorn_conf",
                                   "--bind", f"127.0.0.1:{port}", "search.service.wsgi:app"],
                                  cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            # Healthy is not enough: a worker still loading takes no connections, and
            # the first one ready would keep every kept-alive client (a bench's 16
            # clients all on one worker: ~150 requests/s instead of ~180).
            while not (_ready_workers(out.name) >= workers and _healthy(port)):
                if server.poll() is not None:
                    raise RuntimeError("the service exited while starting")
                if time.monotonic() > deadline:
                    raise RuntimeError("the service did not become healthy")
                time.sleep(0.3)
            yield port, server
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def _ready_workers(log_path: str) -> int:
    """Workers that logged they are ready (search/service/gunicorn_conf.py's post_worker_init)."""
    with open(log_path, encoding="utf-8", errors="replace") as f:
        return sum(1 for line in f if line.rstrip().endswith(" ready") and "] worker " in line)


def _healthy(port: int) -> bool:
    try:
        return get(port, "/health")[0] == 200
    except OSError:
        return False


def process_tree(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [pid] + [int(p) for p in out.split()]


def cpu_seconds(pid: int | str = "self") -> float:
    """CPU time a process has used so far, user and system, all its threads (its exited
    children not counted)."""
    return sum(cpu_times(pid))


def cpu_times(pid: int | str = "self") -> tuple[float, float]:
    """`cpu_seconds` as (user, system): the system part is the kernel's work for the
    process (page faults and unmaps among it)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def machine_cpu_seconds() -> tuple[float, float]:
    """The whole machine's CPU time so far, all cores (/proc/stat): what ran (every
    process and the kernel's own work: user, nice, system, interrupts) and what the
    hypervisor gave other guests while this one had work (steal)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def command_line(pid: int | str) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace").strip()


def pss_mb(pid: int | str) -> float:
    """Proportional set size: pages shared between workers (the memory-mapped index, the
    page cache of its files) counted once across them, not once per process as in RSS."""
    return _proc_mb(pid, "smaps_rollup", "Pss:")


def pss_by_mapping(pids, index: Path | None = None) -> dict[str, float]:
    """The processes' PSS in MB by what holds it: each index file (by its name within
    the generation, segments' files summed with the base's), the heap and other anonymous
    memory, and the rest (libraries, the model's files)."""
    root = str(Path(index).resolve()) if index is not None else None
    out: dict[str, float] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps") as f:
                name = "other"
                for line in f:
                    head = line.split(maxsplit=5)
                    if "-" in head[0] and len(head) >= 5 and ":" in head[3]:  # a mapping's first line
                        path = head[5].strip() if len(head) > 5 else ""
                        if root and path.startswith(root):
                            part = path[len(root):].lstrip("/").split("/", 2)[-1]  # past generations/gN/
                            name = "index:" + re.sub(r"^segments/s\d+/", "", part)
                        elif not path or path.startswith("["):
                            name = "anonymous"
                        else:
                            name = "other"
                    elif head[0] == "Pss:":
                        out[name] = out.get(name, 0.0) + int(head[1]) / 1024
        except FileNotFoundError:
            continue
    return {k: round(v, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v >= 0.5}


def rss_mb(pid: int | str = "self") -> float:
    return _proc_mb(pid, "status", "VmRSS:")


def _proc_mb(pid: int | str, table: str, field: str) -> float:
    """A kB figure from /proc/<pid>/<table>, in MB."""
    with open(f"/proc/{pid}/{table}") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0
