"""Cruft removal and headline detection: pure text logic, no model."""


import pytest

from indexer.clean import clean, split_lines

from helpers import SEEDS


def seed(prefix: str) -> str:
    return next(SEEDS.glob(f"{prefix}_*.txt")).read_text(encoding="utf-8")


# Page cruft present in the seeds, none of which may survive cleaning.
CRUFT = {
    "000": ["close", "Christianluscher", "Breaking: Beyond Headlines!", "aecifo"],
    "001": ["Russian President Vladimir Putin (Evgenia Novozhenina/Pool Photo via AP) (AP)"],
    "002": ["No time to read?", "Get a summary", "Previous Article", "Next Article",
            "Poland 2050 Leader Weighs Presidential Bid Amid Commission Findings",
            "Russia Peugeot-Citroën Update: Prices Stable Amid Recycling Tax, Kaluga Production"],
    "003": ["Comments"],
    "004": ["Korean People’s Army (KPA) soldiers in Pyongyang on February 16, 2019.", "ED JONES/Getty Images",
            "Russian President Vladimir Putin at the BRICS summit in Kazan", "More", "MAXIM SHIPENKOV/Getty Images",
            "Newsweek has contacted the Russian foreign ministry for comment."],
}


@pytest.mark.parametrize("prefix", sorted(CRUFT))
def test_no_cruft_line_is_kept(prefix):
    kept = [line.text for line in clean(seed(prefix)).lines]
    for cruft in CRUFT[prefix]:
        assert not any(line.startswith(cruft) for line in kept), cruft


@pytest.mark.parametrize("prefix,title", [
    ("000", "How Vladimir Putin’s use of North Korean troops could become a nightmare scenario for Russia – and China"),
    ("001", "OPINION - Vladimir Putin using North Korean troops could become a nightmare for Russia — and China"),
    ("002", "Putin, Kim Jong-un and North Korea’s Ukraine War Involvement"),
    ("003", None),  # opens with a paragraph, not a headline
    ("004", None),
])
def test_title_is_the_headline_line(prefix, title):
    cleaned = clean(seed(prefix))
    assert cleaned.title == title
    assert all(line.text != title for line in cleaned.lines)  # a headline shown twice is kept once, as the title


@pytest.mark.parametrize("prefix", sorted(CRUFT))
def test_kept_lines_slice_the_original(prefix):
    text = seed(prefix)
    for line in clean(text).lines:
        assert text[line.start:line.end] == line.text


def test_article_text_is_kept():
    kept = [line.text for line in clean(seed("004")).lines]
    assert kept[0].startswith("Vladimir Putin has been dealt a blow")
    assert kept[-1].startswith("North Korean leader Kim Jong Un could reach")
    assert len(kept) == 22


def test_navigation_ends_the_article():
    text = "Headline of the story here\n\nThe story itself is told here in full.\nPrevious Article\nAnother story\n"
    assert [line.text for line in clean(text).lines] == ["The story itself is told here in full."]


def test_caption_repeated_on_the_next_line_is_dropped_even_when_first_copy_is_truncated():
    caption = "Soldiers at a parade in the capital on Monday, watched by the leadership."
    text = f"First paragraph of the story, which is long enough.\n{caption[:40]}…\n{caption}\nLast paragraph.\n"
    kept = [line.text for line in clean(text).lines]
    assert kept == ["First paragraph of the story, which is long enough.", "Last paragraph."]


@pytest.mark.parametrize("line", [
    "Newsweek has contacted the Russian foreign ministry for comment.",
    "The Kremlin did not immediately respond to a request for comment.",
    "Reuters has reached out to the ministry for comment",
])
def test_request_for_comment_boilerplate_is_dropped(line):
    text = f"A paragraph about the war that is long enough to keep.\n{line}\n"
    assert [kept.text for kept in clean(text).lines] == ["A paragraph about the war that is long enough to keep."]


def test_a_sentence_about_comments_is_kept():
    line = "The minister said he had contacted his counterpart, who declined to comment on the plan."
    assert [kept.text for kept in clean(line).lines] == [line]


def test_a_given_title_is_not_repeated_in_the_body():
    cleaned = clean("My Title Here\n\nBody text of the article.", title="My Title Here")
    assert cleaned.title == "My Title Here"
    assert [line.text for line in cleaned.lines] == ["Body text of the article."]


def test_split_lines_marks_paragraph_breaks():
    lines = split_lines("  one  \ntwo\n\n\nthree\r\n")
    assert [(line.text, line.after_blank) for line in lines] == [("one", True), ("two", False), ("three", True)]
    assert lines[0].start == 2
