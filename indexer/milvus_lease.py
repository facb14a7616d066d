"""One writer at a time of an index held in Milvus, whichever replica or machine it runs
on: builds (indexer/to_milvus.py) and updates (indexer/milvus_update.py) hold the index's
lease, one row of the collection NAME_lease.

A writer claims the lease when no one holds it (or the claim expired, or its holder is a
process of this host that is gone), reads it back after a moment (a rival's later claim
would have replaced it), renews it while it works and releases it at the end. Milvus has
no compare-and-set: two claims within CLAIM_WAIT_S of each other could both read
themselves back only if the second's upsert landed after the first's read, which the wait
makes a matter of a slow network, not of timing. Before publishing, a writer checks it
still holds the lease."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager

from search.errors import VectorStoreError

LEASE_S = 120.0  # a claim lasts this long unless renewed (every LEASE_S / 4) or released
CLAIM_WAIT_S = 0.3  # between claiming the lease and reading it back
WAIT_S = 60.0  # how long a writer waits for another's lease before giving up
ROW = 0


def collection(address) -> str:
    return f"{address.collection}_lease"


class Lease:
    def __init__(self, client, name: str):
        self.client, self.name = client, name
        self.me = {"holder": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid()}

    def check(self) -> None:
        """Raises VectorStoreError when another writer has taken the lease over."""
        held = _read(self.client, self.name)
        if held is None or held["holder"] != self.me["holder"]:
            raise VectorStoreError("this writer lost the index's lease (it stalled past its claim); nothing was "
                                   "published: run it again")

    def _write(self, until: float) -> None:
        self.client.upsert(self.name, [{"id": ROW, "lease": json.dumps({**self.me, "until": until}),
                                        "vector": [1.0, 0.0]}])


@contextmanager
def held(client, address):
    """Hold the lease of the index at `address` for the block (a Lease: `check()` it
    before publishing). Raises VectorStoreError when another writer holds it past WAIT_S."""
    name = collection(address)
    _ensure(client, name)
    lease = Lease(client, name)
    deadline = time.monotonic() + WAIT_S
    while True:
        other = _read(client, name)
        if other is None or other["until"] < time.time() or _dead(other):
            lease._write(time.time() + LEASE_S)
            time.sleep(CLAIM_WAIT_S)
            other = _read(client, name)
            if other is not None and other["holder"] == lease.me["holder"]:
                break
        if time.monotonic() > deadline:
            raise VectorStoreError(f"another writer ({other and other.get('host')}, pid {other and other.get('pid')}) "
                                   f"is writing the index {address.collection!r} in Milvus; try again when it is done")
        time.sleep(0.2)
    done = threading.Event()

    def renew():
        while not done.wait(LEASE_S / 4):
            try:
                lease._write(time.time() + LEASE_S)
            except Exception:  # noqa: BLE001 - the check before publishing catches a lost lease
                pass

    threading.Thread(target=renew, name="milvus-lease", daemon=True).start()
    try:
        yield lease
    finally:
        done.set()
        try:
            if (_read(client, name) or {}).get("holder") == lease.me["holder"]:
                lease._write(0.0)
        except Exception:  # noqa: BLE001 - it expires on its own
            pass


def _ensure(client, name: str) -> None:
    if client.has_collection(name):
        return
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("lease", DataType.VARCHAR, max_length=1024)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)  # a collection needs one
    params = client.prepare_index_params()
    params.add_index("vector", index_type="FLAT", metric_type="IP")
    try:
        client.create_collection(name, schema=schema, index_params=params)
    except Exception:  # noqa: BLE001 - a rival created it first
        if not client.has_collection(name):
            raise
    client.load_collection(name)


def _read(client, name: str) -> dict | None:
    rows = client.query(name, filter=f"id == {ROW}", output_fields=["lease"])
    return json.loads(rows[0]["lease"]) if rows else None


def _dead(held: dict) -> bool:
    """Whether the lease's holder is a process of this host that is gone."""
    if held.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(held["pid"]), 0)
    except ProcessLookupError:
        return True
    except OSError:  # (PermissionError: alive, another user's)
        return False
    return False
