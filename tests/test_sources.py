"""Saved web pages and Markdown articles: the article text and its metadata, extracted
by trafilatura and markdown-it, reach the index and the citations."""

from pathlib import Path

from indexer import build
from indexer.sources import Document, Skipped, read
from search import Searcher

PAGES = Path(__file__).parent / "data" / "pages"


def test_html_page_gives_the_article_and_its_metadata():
    [doc] = list(read(PAGES / "grindavik-eruption.html"))
    assert isinstance(doc, Document)
    assert (doc.doc_id, doc.title, doc.author, doc.published) == (
        "grindavik-eruption", "Volcano erupts near Grindavik", "Sigrun Jonsdottir", "2024-11-20")
    assert doc.url == doc.source == "https://herald.example.com/2024/11/20/grindavik-eruption"
    assert "lava fountains up to 80 metres" in doc.text and "four kilometres long" in doc.text
    for cruft in ("Subscribe", "Sport", "Most read", "Quiz of the week", "reader123", "Cookie settings"):
        assert cruft not in doc.text, cruft
    assert "\n\n" in doc.text  # one paragraph a block, as in .txt articles


def test_markdown_gives_plain_text_and_front_matter():
    [doc] = list(read(PAGES / "ferry-strike.md"))
    assert (doc.title, doc.author, doc.published, doc.url) == (
        "Ferry workers strike over pay", "Mark Ellis", "2024-11-21", "https://coast.example.org/news/ferry-strike")
    assert "Ferry crews on the northern routes walked out at midnight, stranding hundreds of passengers" in doc.text
    assert "4.5 per cent pay rise" in doc.text and "resume on Monday" in doc.text
    assert "Services to the outer islands are cancelled until Saturday." in doc.text
    for markup in ("**", "*4.5", "](", "`", "---", "# ", "ferry.jpg"):
        assert markup not in doc.text, markup


def test_markdown_without_front_matter_takes_its_heading(tmp_path):
    (tmp_path / "note.md").write_text("# Bridge reopens\n\nThe bridge reopened on Friday after repairs.\n")
    [doc] = list(read(tmp_path / "note.md"))
    assert (doc.title, doc.author, doc.source) == ("Bridge reopens", None, "note.md")


def test_pages_without_an_article_are_skipped_by_name(tmp_path):
    (tmp_path / "binary.html").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "blank.md").write_text("---\ntitle: Nothing\n---\n\n")
    for name in ("binary.html", "blank.md"):
        [item] = list(read(tmp_path / name))
        assert isinstance(item, Skipped) and item.where == str(tmp_path / name), item
    # a page of navigation only: what trafilatura falls back to is not article text either
    (tmp_path / "menu.html").write_text("<html><body><nav>Home | World</nav></body></html>")
    (tmp_path / "ok.md").write_text("# Bridge reopens\n\nThe bridge reopened on Friday after repairs.\n")
    summary = build([tmp_path], tmp_path / "index")
    assert summary.documents == 1
    assert {s.where: s.reason for s in summary.skipped} == {
        str(tmp_path / "binary.html"): summary.skipped[0].reason,
        str(tmp_path / "blank.md"): "no text in the Markdown file",
        str(tmp_path / "menu.html"): "document 'menu' has no article text"}


def test_metadata_reaches_the_citations(tmp_path):
    build([PAGES], tmp_path / "index")
    searcher = Searcher.open(tmp_path / "index")
    volcano = searcher.search("How long was the fissure?", k=1)[0].citations[0]
    assert (volcano.doc_id, volcano.title, volcano.author, volcano.published) == (
        "grindavik-eruption", "Volcano erupts near Grindavik", "Sigrun Jonsdottir", "2024-11-20")
    assert volcano.source == "https://herald.example.com/2024/11/20/grindavik-eruption"
    ferry = searcher.search("What pay rise did the ferry operator offer?", k=1)[0]
    assert "4.5 per cent" in ferry.text
    assert (ferry.citations[0].author, ferry.citations[0].published) == ("Mark Ellis", "2024-11-21")
    assert searcher.document("ferry-strike")["author"] == "Mark Ellis"


def test_a_jsonl_file_is_read_by_record_whatever_the_case_of_its_extension(tmp_path):
    path = tmp_path / "FEED.JSONL"
    path.write_text('{"id": "a", "text": "One article."}\n{"id": "b", "text": "Another article."}\n',
                    encoding="utf-8")
    assert [(d.doc_id, d.text) for d in read(path)] == [("a", "One article."), ("b", "Another article.")]


def test_offsets_of_a_file_with_a_byte_order_mark_index_the_file_as_read(tmp_path):
    article = ("Volcano erupts near Grindavik\n\nA volcano erupted on the Reykjanes peninsula on Monday night, "
               "sending lava fountains 100 metres into the air.\n\nThe town had been evacuated days earlier.\n")
    (tmp_path / "marked.txt").write_bytes(b"\xef\xbb\xbf" + article.encode("utf-8"))
    build([tmp_path / "marked.txt"], tmp_path / "index")
    searcher = Searcher.open(tmp_path / "index")
    hit = searcher.search("Where did the volcano erupt?", k=1)[0]
    as_read = (tmp_path / "marked.txt").read_text(encoding="utf-8")  # the mark is its first character
    c = hit.citations[0]
    assert as_read[c.start:c.end] == hit.text and "Reykjanes" in hit.text
    assert as_read[hit.highlight.doc_start:hit.highlight.doc_end] == hit.highlight.text
    assert c.title == "Volcano erupts near Grindavik"  # no mark in the title
