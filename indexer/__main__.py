"""`python -m indexer build|add|remove|merge ... --index DIR` (also the `indexer` console script)."""

from __future__ import annotations

import argparse
import functools
import logging
import sqlite3
import sys

from search import settings
from search.embedding.embedder import BACKENDS

from .chunk import DEFAULT_SEGMENTER, SEGMENTERS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="indexer", description="Build a search index from news articles.")
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build", help="build an index from .txt and .jsonl articles")
    b.add_argument("sources", nargs="+", metavar="SRC", help="article files or directories of them")
    b.add_argument("--index", default=settings.value("SEARCH_INDEX"),
                   help="index directory to write (default: $SEARCH_INDEX or ./index)")
    b.add_argument("--model", default=settings.value("SEARCH_MODEL"),
                   help="sentence-transformers model name or path (default: bundled all-MiniLM-L6-v2)")
    b.add_argument("--strict", action="store_true", help="fail on any unreadable, empty or malformed input")
    b.add_argument("--if-changed", action="store_true",
                   help="do nothing when the index was built from the same inputs and model")
    b.add_argument("--no-drop", action="store_true",
                   help="refuse to replace an index holding documents the sources do not (added since by "
                        "`indexer add` or PUT /documents): scripts/serve's rebuild of the seeds' index")
    b.add_argument("--no-chunking", action="store_true",
                   help="one passage per document, cut at the model's window (for benchmarks)")
    b.add_argument("--max-tokens", type=int, help="passage window in word pieces (default: the model's)")
    b.add_argument("--title-context", action="store_true",
                   help="embed and index every passage together with its document's title")
    b.add_argument("--no-sentence-vectors", action="store_true",
                   help="skip embedding sentences (highlights fall back to word overlap)")
    b.add_argument("--segmenter", choices=SEGMENTERS, default=DEFAULT_SEGMENTER,
                   help=f"the sentence splitter: passages of long paragraphs are cut, and sentences embedded, at "
                        f"its boundaries (default: {DEFAULT_SEGMENTER}; an update keeps the index's own)")
    b.add_argument("--vector-index", choices=("auto", "flat", "ivf"), default="auto",
                   help="exact flat search, approximate IVF-SQ8, or auto: flat up to 50,000 passages")
    b.add_argument("--vector-store", default=settings.value("SEARCH_VECTOR_STORE"),
                   metavar="faiss|milvus://HOST:PORT/COLLECTION",
                   help="where the passage vectors live: this index directory (faiss, the default) or a "
                        "Milvus server (default: $SEARCH_VECTOR_STORE or faiss)")
    b.add_argument("--store", default=settings.value("SEARCH_STORE"), metavar="milvus://HOST:PORT/NAME",
                   help="write the whole index into Milvus collections under the alias NAME instead of a "
                        "directory: services started with --store need no index directory "
                        "(default: $SEARCH_STORE)")
    b.add_argument("--backend", choices=BACKENDS, default=settings.value("SEARCH_EMBED_BACKEND"),
                   help="how the model runs: int8 ONNX, plain fp32 torch, or torch with bf16 matrix products "
                        "where the CPU has AMX or AVX-512 BF16 (default: $SEARCH_EMBED_BACKEND or onnx-int8)")
    b.add_argument("--batch-size", type=int, default=32, help="passages embedded per batch (default 32)")
    b.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="embed in this process, or with Ray Data over model actors (a local Ray cluster, "
                        "or the one $RAY_ADDRESS names); the index is the same")
    b.add_argument("--actors", type=int, help="model actors for --engine ray (default: one per cluster CPU)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    a = commands.add_parser("add", help="add or replace articles in an existing index (changed ones only)")
    a.add_argument("sources", nargs="+", metavar="SRC", help="article files or directories of them")
    r = commands.add_parser("remove", help="remove documents from an existing index")
    r.add_argument("doc_ids", nargs="+", metavar="DOC_ID", help="ids of the documents to remove")
    m = commands.add_parser("merge", help="merge an index's segments into one (updates do it when they pile up)")
    for command in (a, r, m):
        command.add_argument("--index", default=settings.value("SEARCH_INDEX"),
                             help="index directory to update (default: $SEARCH_INDEX or ./index)")
    for command in (a, r):
        command.add_argument("--store", default=settings.value("SEARCH_STORE"), metavar="milvus://HOST:PORT/NAME",
                             help="update the index held in Milvus there instead of an index directory "
                                  "(default: $SEARCH_STORE)")
    a.add_argument("--strict", action="store_true", help="fail on any unreadable, empty or malformed input")
    m.add_argument("--background", action="store_true",
                   help="merge without holding up writes: the writer lock is taken only at the end, to add what "
                        "was written meanwhile and publish")
    args = parser.parse_args(argv)
    if getattr(args, "store", None) is not None and args.command in ("add", "remove"):
        _check_store(parser, args.store)
    if args.command == "build":
        from search.index.vector_store import parse

        try:
            parse(args.vector_store)
        except ValueError as e:
            parser.error(str(e))
        if args.store is not None:
            _check_store(parser, args.store)
            if parse(args.vector_store) is not None:
                parser.error("--store holds the vectors too: leave out --vector-store")
        if args.actors is not None and (args.engine != "ray" or args.actors < 1):
            parser.error("--actors needs --engine ray and a count of 1 or more")

    logging.basicConfig(format="%(name)s: %(levelname)s: %(message)s", level=logging.WARNING)
    from search.errors import SearchError

    from .build import BuildOptions, build, build_in_milvus
    from .update import update

    try:
        if args.command in ("add", "remove") and args.store:  # no service process to go through, no alerts
            print(update(args.store, srcs=getattr(args, "sources", ()), remove=getattr(args, "doc_ids", ()),
                         strict=getattr(args, "strict", False)))
            return 0
        if args.command == "add":
            print(_through_service(args.index, args.sources, (), args.strict) or
                  _matched(args.index, update(args.index, srcs=args.sources, strict=args.strict)))
            return 0
        if args.command == "remove":
            print(_through_service(args.index, (), args.doc_ids) or update(args.index, remove=args.doc_ids))
            return 0
        if args.command == "merge":
            if args.background:
                from .merge import merge_in_background

                print(merge_in_background(args.index))
            else:
                print(update(args.index, merge=True))
            return 0
        summary = (functools.partial(build_in_milvus, spec=args.store) if args.store else
                   functools.partial(build, index_dir=args.index))(
                        args.sources, model=args.model, strict=args.strict,
                        progress=not args.quiet and sys.stderr.isatty(), batch_size=args.batch_size,
                        if_changed=args.if_changed, drop=not args.no_drop,
                        options=BuildOptions(chunking=not args.no_chunking, max_tokens=args.max_tokens,
                                             title_context=args.title_context,
                                             sentence_vectors=not args.no_sentence_vectors,
                                             vector_index=args.vector_index, vector_store=args.vector_store,
                                             segmenter=args.segmenter),
                        backend=args.backend, engine=args.engine, actors=args.actors)
    except SearchError as e:
        print(f"indexer: error: {e}", file=sys.stderr)
        return 1
    print(summary)
    return 0


def _check_store(parser, spec: str) -> None:
    from search.index.vector_store import parse

    try:
        address = parse(spec)
    except ValueError:
        address = None
    if address is None:  # (parse takes "faiss" for the embedded vector store)
        parser.error(f"--store must be milvus://host:port/name (name: letters, digits, _), got {spec!r}")


def _matched(index: str, summary):
    """`summary`, once its articles are matched against the index's alerts (a service's
    writer does this itself; here no service wrote the update)."""
    from search.alerts import Matcher
    from search.errors import SearchError

    try:
        found = Matcher(index, background=False).published(summary)
    except (OSError, sqlite3.Error, SearchError) as e:  # the update stands; say what did not happen
        print(f"indexer: warning: the update is published, but matching it against the alerts failed: {e}",
              file=sys.stderr)
        return summary
    if found:
        print(f"indexer: new articles matched {len(found)} alert(s)", file=sys.stderr)
    return summary


def _through_service(index: str, srcs, remove, strict: bool = False):
    """The update, made by the writer of the service running on `index` (one update at a
    time, batched with the service's own writes); None when no service writes there."""
    from search.service import writer_process

    from .update import read_sources

    record = writer_process.find(index)
    if record is None:
        return None
    print(f"indexer: writing through the service's writer process {record['pid']}", file=sys.stderr)
    documents, skipped = read_sources(srcs, strict) if srcs else ([], [])
    try:
        summary = writer_process.write(index, documents, remove)
    except writer_process.WriterUnreachable:
        return None
    summary.skipped = skipped + summary.skipped
    return summary


if __name__ == "__main__":
    sys.exit(main())
