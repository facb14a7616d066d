"""Reading articles: `.txt` files (one file = one document) and `.jsonl` files
(one `{"id", "title", "text", "url", "published"}` object a line).

Every problem with an input is reported by name as a `Skipped`, never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

SUFFIXES = (".txt", ".jsonl")


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str  # exactly as read: passage offsets index into it
    source: str  # the file name, or the article's URL when it has one
    title: str | None = None
    url: str | None = None
    published: str | None = None


@dataclass(frozen=True)
class Skipped:
    where: str  # a path, or path:line for one record of a .jsonl file
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


def discover(sources: list[str | Path]) -> tuple[list[Path], list[Skipped]]:
    """Expand the sources (files and directories) into the article files to read."""
    files, skipped = [], []
    for src in map(Path, sources):
        if src.is_dir():
            files.extend(sorted(p for p in src.rglob("*") if p.suffix in SUFFIXES and p.is_file()))
        elif not src.exists():
            skipped.append(Skipped(str(src), "no such file or directory"))
        elif src.suffix not in SUFFIXES:
            skipped.append(Skipped(str(src), f"unsupported file type (expected {' or '.join(SUFFIXES)})"))
        else:
            files.append(src)
    return files, skipped


def fingerprint(files: list[Path]) -> str:
    """A digest of the inputs' names and bytes: equal digests, equal builds."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def read(path: Path) -> Iterator[Document | Skipped]:
    """The documents in one file, and what could not be read from it."""
    try:
        data = path.read_bytes()
    except OSError as e:
        yield Skipped(str(path), f"unreadable ({e.strerror or e})")
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        yield Skipped(str(path), f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})")
        return
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte-order mark is not part of the article
    if not text.strip():
        yield Skipped(str(path), "empty")
    elif path.suffix == ".jsonl":
        yield from _read_jsonl(path, text)
    else:
        yield Document(doc_id=path.stem, text=text, source=path.name)


def _read_jsonl(path: Path, text: str) -> Iterator[Document | Skipped]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except ValueError as e:
            yield Skipped(where, f"not valid JSON ({e})")
            continue
        problem = _check_record(record)
        if problem:
            yield Skipped(where, problem)
            continue
        url = record.get("url") or None
        yield Document(doc_id=str(record["id"]).strip(), text=record["text"], source=url or path.name,
                       title=(record.get("title") or "").strip() or None, url=url,
                       published=record.get("published") or None)


def _check_record(record) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    if not isinstance(record.get("id"), (str, int)) or isinstance(record.get("id"), bool) \
            or not str(record["id"]).strip():
        return 'missing "id" (a non-empty string)'
    if not isinstance(record.get("text"), str) or not record["text"].strip():
        return 'missing or empty "text"'
    for key in ("title", "url", "published"):
        if record.get(key) is not None and not isinstance(record[key], str):
            return f'"{key}" must be a string'
    return None
