"""Kept-alive connections spread evenly over gunicorn's workers (search/service/balance.py)."""

import http.client
import os
import signal
import threading
import time

import numpy as np
import pytest

from search.service.balance import ABSENT, least_loaded


def test_a_worker_takes_connections_only_while_none_holds_fewer():
    counts = np.array([3, 5, ABSENT, 3, ABSENT], dtype=np.int64)
    assert least_loaded(0, counts) and least_loaded(3, counts)  # a tie: either may take it
    assert not least_loaded(1, counts)
    # the others absent (loading, or gone): it takes everything
    assert least_loaded(1, np.array([ABSENT, 9, ABSENT], dtype=np.int64))
    assert least_loaded(None, counts)  # no slot: accepts as gunicorn does


def _server_sockets(port: int) -> dict[str, int]:
    """The established server-side sockets on `port`, from /proc: inode -> client port."""
    found = {}
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
                found[fields[9]] = int(fields[2].split(":")[1], 16)
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # (closed meanwhile)
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    return inodes


def _established(port: int, pids: list[int]) -> dict[int, int]:
    """Connections each of `pids` holds on `port` (server side, established)."""
    sockets = _server_sockets(port)
    return {pid: len(_socket_inodes(pid) & sockets.keys()) for pid in pids}


def _workers(server_pid: int) -> list[int]:
    from tools.served import command_line, process_tree

    workers = []
    for pid in process_tree(server_pid)[1:]:
        try:
            if "writer_process" not in command_line(pid):
                workers.append(pid)
        except OSError:  # (gone meanwhile)
            pass
    return workers


def _open(port: int, n: int) -> list[http.client.HTTPConnection]:
    """`n` clients connecting at once, each asking once on its kept-alive connection."""
    from tools.served import get

    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(n)]
    statuses = []
    threads = [threading.Thread(target=lambda c=c: statuses.append(get(port, "/search?q=troops&k=2", c)[0]))
               for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * n
    return conns


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads connections from Linux's /proc")
def test_clients_connecting_at_once_are_split_evenly_and_a_dead_worker_frees_its_share(index_copy):
    from tools.served import get, gunicorn

    with gunicorn(index_copy, env={"SEARCH_WORKERS": "2"}) as (port, server):
        workers = _workers(server.pid)
        assert len(workers) == 2
        for _ in range(3):  # gunicorn's own accepting split these 13/3 two times in three
            conns = _open(port, 16)
            assert sorted(_established(port, workers).values()) == [8, 8]
            for c in conns:
                c.close()
            time.sleep(0.2)

        # One worker holds eight connections, the other none; then the idle one dies. Its
        # replacement takes a while to load: meanwhile the survivor must take new clients,
        # not wait for a worker that holds fewer than it only on paper.
        conns = _open(port, 16)
        idle, busy = workers
        for c in conns:  # close the idle-to-be worker's eight
            if _peer_owner(port, c.sock.getsockname()[1], workers) == idle:
                c.close()
        time.sleep(0.5)  # (the idle one has seen its clients leave: it published 0)
        assert _established(port, workers) == {idle: 0, busy: 8}
        os.kill(idle, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while idle in _workers(server.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        late = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        started = time.monotonic()
        assert get(port, "/search?q=troops&k=2", late)[0] == 200
        assert time.monotonic() - started < 2
        assert _peer_owner(port, late.sock.getsockname()[1], [busy]) == busy


def _peer_owner(port: int, client_port: int, pids: list[int]) -> int | None:
    """The worker holding the server side of the client connection from `client_port`."""
    inodes = {inode for inode, peer in _server_sockets(port).items() if peer == client_port}
    return next((pid for pid in pids if _socket_inodes(pid) & inodes), None)
