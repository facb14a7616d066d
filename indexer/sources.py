"""Reading articles in the formats news is kept in:

- `.txt`: one file, one document, its text as it is;
- `.jsonl`: one `{"id", "title", "text", "url", "published", "author"}` object a line;
- `.html`/`.htm`: a saved page; trafilatura extracts the article text and its title,
  author, date and canonical URL (menus, footers and comments are not the article);
- `.md`/`.markdown`: rendered to plain text by markdown-it (markup dropped, one
  paragraph per block); a front matter block (`---` lines) gives title, author, date
  and url, else the first `#` heading is the title.

The document id is the file name without its extension (`.jsonl`: the record's "id").
Every problem with an input is reported by name as a `Skipped`, never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

HTML = (".html", ".htm")
MARKDOWN = (".md", ".markdown")
SUFFIXES = (".txt", ".jsonl") + HTML + MARKDOWN


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str  # exactly as read: passage offsets index into it
    source: str  # the file name, or the article's URL when it has one
    title: str | None = None
    url: str | None = None
    published: str | None = None
    author: str | None = None


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
            files.extend(sorted(p for p in src.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()))
        elif not src.exists():
            skipped.append(Skipped(str(src), "no such file or directory"))
        elif src.suffix.lower() not in SUFFIXES:
            skipped.append(Skipped(str(src), f"unsupported file type (expected {', '.join(SUFFIXES)})"))
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
    if path.suffix.lower() in HTML:  # a page names its own encoding: trafilatura reads the bytes
        yield _read_html(path, data)
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        yield Skipped(str(path), f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})")
        return
    # a byte-order mark is not part of the article; a plain text file keeps it in its
    # text all the same, so that passage offsets index the file as read (the cleaner
    # skips it), while a record's or a page's offsets index what was taken out of it
    unmarked = text[1:] if text.startswith("\ufeff") else text
    if not unmarked.strip():
        yield Skipped(str(path), "empty")
    elif path.suffix.lower() == ".jsonl":
        yield from _read_jsonl(path, unmarked)
    elif path.suffix.lower() in MARKDOWN:
        yield _read_markdown(path, unmarked)
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
                       published=record.get("published") or None, author=record.get("author") or None)


def _check_record(record) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    if not isinstance(record.get("id"), (str, int)) or isinstance(record.get("id"), bool) \
            or not str(record["id"]).strip():
        return 'missing "id" (a non-empty string)'
    if not isinstance(record.get("text"), str) or not record["text"].strip():
        return 'missing or empty "text"'
    for key in ("title", "url", "published", "author"):
        if record.get(key) is not None and not isinstance(record[key], str):
            return f'"{key}" must be a string'
    return None


def _read_html(path: Path, data: bytes) -> Document | Skipped:
    import trafilatura

    try:
        page = trafilatura.bare_extraction(data, with_metadata=True, include_comments=False, include_tables=False)
    except Exception as e:  # a page lxml cannot parse at all
        return Skipped(str(path), f"not a readable HTML page ({e})")
    if page is None or not (page.text or "").strip():
        return Skipped(str(path), "no article text found in the HTML page")
    # trafilatura gives one paragraph a line; a blank line between them, as in .txt articles
    text = "\n\n".join(line.strip() for line in page.text.splitlines() if line.strip())
    return Document(doc_id=path.stem, text=text + "\n", source=page.url or path.name, title=page.title or None,
                    url=page.url or None, published=page.date or None, author=page.author or None)


def _read_markdown(path: Path, text: str) -> Document | Skipped:
    from markdown_it import MarkdownIt

    meta, body = _front_matter(text)
    tokens = MarkdownIt("commonmark").parse(body)
    title, blocks = meta.get("title"), []
    for opening, token in zip(tokens, tokens[1:]):
        if token.type != "inline":
            continue
        plain = _inline_text(token.children or [])
        if opening.type == "heading_open" and opening.tag == "h1" and title is None:
            title = plain  # the cleaner drops the body line that repeats the title
        if plain.strip():
            blocks.append(plain.strip())
    if not blocks:
        return Skipped(str(path), "no text in the Markdown file")
    url = meta.get("url") or meta.get("canonical_url") or None
    return Document(doc_id=path.stem, text="\n\n".join(blocks) + "\n", source=url or path.name, title=title,
                    url=url, published=meta.get("date") or meta.get("published") or None,
                    author=meta.get("author") or None)


def _inline_text(children) -> str:
    """The words of a Markdown paragraph or heading: text, code and link text, no markup."""
    parts = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
    return "".join(parts)


def _front_matter(text: str) -> tuple[dict[str, str], str]:
    """`key: value` lines between a leading pair of `---` lines (Jekyll/Hugo front matter)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return {}, text
    for end, line in enumerate(lines[1:], 1):
        if line.strip() == "---":
            meta = {}
            for entry in lines[1:end]:
                key, sep, value = entry.partition(":")
                if sep and key.strip():
                    meta[key.strip().lower()] = value.strip().strip("\"'") or None
            return {k: v for k, v in meta.items() if v}, "".join(lines[end + 1:])
    return {}, text
