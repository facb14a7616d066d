"""Index generations: every change to an index is a new, immutable directory.

    index/
      CURRENT                 the name of the generation to read ("g000007")
      generations/g000006/    the previous one (kept a while for readers still on it)
      generations/g000007/    manifest.json, vectors.faiss, store.sqlite, ...
      .lock                   held by the one writer at a time

A writer builds the next generation in a temporary directory, fsyncs it, renames it into
`generations/`, then replaces `CURRENT` (write, fsync, rename, fsync the directory). A
reader resolves `CURRENT` once, takes a lease on that generation (a shared flock on its
directory, held until the reader lets go or its process ends) and reads the directory's
files by their own paths, so the files of the generation it opened never change under
it and are never collected while it holds them, however long it sits idle. A writer
killed at any point leaves `CURRENT` naming a complete generation. An index directory that holds a
manifest itself (written before generations existed) is read as one generation.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from search.errors import IndexCorrupt
from search.index import vector_store

POINTER = "CURRENT"
GENERATIONS = "generations"
LOCK = ".lock"
# Old generations kept besides the current one, so that a process still opening or
# serving one (a service reloads within seconds) keeps its files; older ones go, but
# never within GRACE_S of being superseded.
KEEP = 2
GRACE_S = 120.0
_NAME = re.compile(r"g[0-9]{6,}")
# What the single-directory layout held at the top level; removed once migrated (with the
# scales a format-3 generation adds, for a generation copied out to a directory of its own).
LEGACY_FILES = ("manifest.json", "vectors.faiss", "sentences.npy", "sentence_scales.npy", "store.sqlite", "lexical")


def current_name(index_dir: Path) -> str | None:
    """The generation `CURRENT` names, or None for a single-directory (or missing) index."""
    try:
        name = (Path(index_dir) / POINTER).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise IndexCorrupt(f"index at {index_dir} has an unreadable {POINTER} pointer ({e})") from e
    if not _NAME.fullmatch(name):
        raise IndexCorrupt(f"index at {index_dir}: {POINTER} names {name!r}, not a generation")
    return name


class Lease:
    """A reader's hold on one generation's files: a shared flock on the generation's
    directory. `collect` removes no generation while anyone holds one; the kernel lets go
    of it when the holder closes it or its process ends (a crash leaks nothing)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._fd: int | None = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def lease(index_dir: Path) -> tuple[str | None, Path, Lease | None]:
    """The generation current now, its directory, and a lease on it (None for a
    single-directory index, which nothing collects)."""
    for _ in range(3):
        name = current_name(index_dir)
        if name is None:
            return None, Path(index_dir), None
        directory = Path(index_dir) / GENERATIONS / name
        try:
            held = Lease(directory)
        except FileNotFoundError:  # collected between reading CURRENT and the lease: read it again
            continue
        if (directory / "manifest.json").exists():
            return name, directory, held
        held.close()  # collected while we waited for the lease
    raise IndexCorrupt(f"index at {index_dir}: {POINTER} keeps naming generations that are gone")


def _leased(directory: Path) -> int | None:
    """An exclusive lock on a generation no reader holds (the fd to close once it is
    removed), or None when a reader holds it."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def current(index_dir: str | Path) -> Path:
    """The directory to read the index's files from."""
    index_dir = Path(index_dir)
    name = current_name(index_dir)
    return index_dir if name is None else index_dir / GENERATIONS / name


def number(name: str | None) -> int:
    return int(name[1:]) if name else 0


@contextmanager
def writer(index_dir: Path):
    """Hold the index's writer lock: builds and updates of one index take turns."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / LOCK, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _remove_stale_temporaries(index_dir / GENERATIONS)
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def scratch(index_dir: Path) -> Path:
    """A new empty directory to write the next generation in (under the writer lock)."""
    parent = index_dir / GENERATIONS
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def publish(index_dir: Path, tmp: Path, crashpoint=lambda name: None) -> str:
    """Make the complete index in `tmp` the current generation; returns its name."""
    _fsync_tree(tmp, _published_files(index_dir))
    crashpoint("publish:synced")
    parent = index_dir / GENERATIONS
    name = f"g{max([number(current_name(index_dir))] + _numbers(parent)) + 1:06d}"
    os.rename(tmp, parent / name)
    _fsync_dir(parent)
    crashpoint("publish:renamed")
    pointer = index_dir / f".{POINTER}.tmp-{os.getpid()}"
    with open(pointer, "w", encoding="ascii") as f:
        f.write(name + "\n")
        f.flush()
        crashpoint("publish:pointer-written")
        os.fsync(f.fileno())
    crashpoint("publish:pointer-synced")
    os.rename(pointer, index_dir / POINTER)
    _fsync_dir(index_dir)
    crashpoint("publish:pointer-renamed")
    collect(index_dir)
    return name


def collect(index_dir: Path, keep: int | None = None, grace_s: float | None = None) -> None:
    """Remove generations no reader should still need, and a migrated index's old files."""
    keep = KEEP if keep is None else keep
    grace_s = GRACE_S if grace_s is None else grace_s
    name = current_name(index_dir)
    if name is None:
        return
    for legacy in LEGACY_FILES:
        path = index_dir / legacy
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
    parent = index_dir / GENERATIONS
    numbers = sorted(n for n in _numbers(parent) if n < number(name))
    now = time.time()
    for old, successor in zip(numbers[:-keep] if keep else numbers, numbers[1:] + [number(name)]):
        superseded = parent / f"g{successor:06d}"
        if superseded.exists() and now - superseded.stat().st_mtime < grace_s:
            continue
        directory = parent / f"g{old:06d}"
        held = _leased(directory)
        if held is None:  # a reader still holds it (or it is gone): a later collection takes it
            continue
        try:
            # a Milvus collection goes with the last generation naming it
            others = [p for p in parent.iterdir() if p.name != directory.name and p.name.startswith("g")]
            vector_store.drop_collection_of(directory, others)
            shutil.rmtree(directory, ignore_errors=True)
        finally:
            os.close(held)
    for path in index_dir.glob(f".{POINTER}.tmp-*"):
        if not process_alive(path.name.rsplit("-", 1)[1]):
            path.unlink(missing_ok=True)


def _numbers(parent: Path) -> list[int]:
    if not parent.is_dir():
        return []
    return [number(p.name) for p in parent.iterdir() if _NAME.fullmatch(p.name)]


def _remove_stale_temporaries(parent: Path) -> None:
    """Remove what writers that were killed left behind (their process is gone)."""
    for path in parent.glob(".tmp-*"):
        if not process_alive(path.name.split("-")[1]):
            shutil.rmtree(path, ignore_errors=True)


def process_alive(pid: str) -> bool:
    """Whether the process numbered `pid` (as a file name holds it) runs; False for what is no number."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_tree(directory: Path, durable: frozenset = frozenset()) -> None:
    """fsync every file under `directory` but those in `durable` ((device, inode) pairs:
    files a published generation holds, synced when it was published, of which this tree
    holds hard links), then every directory (which makes the links durable)."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                _fsync_tree(Path(entry.path), durable)
                continue
            info = entry.stat(follow_symlinks=False)
            if (info.st_dev, info.st_ino) in durable:
                continue
            with open(entry.path, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(directory)


def _published_files(index_dir: Path) -> frozenset:
    """(device, inode) of every file of the current generation. An update links most of
    them into the next one: syncing them again cost it ~250 fsyncs (a segment's files
    times the segments), a sixth of an add's time at 100k passages. A file that cannot be
    read here is left out: it is synced again, which is safe."""
    name = current_name(index_dir)
    if name is None:
        return frozenset()
    found = set()
    for top, _, files in os.walk(index_dir / GENERATIONS / name):
        for file in files:
            try:
                info = os.stat(os.path.join(top, file), follow_symlinks=False)
            except OSError:
                continue
            found.add((info.st_dev, info.st_ino))
    return frozenset(found)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
