"""Chunking into passages: pure text logic with a word-count stand-in for the tokenizer."""

import pytest

from indexer.chunk import SEGMENTERS, chunk, is_fragment, sentences
from indexer.clean import clean


def words(text: str) -> int:
    return len(text.split())


def passages(text: str, max_tokens: int = 254) -> list[str]:
    return [text[p.start:p.end] for p in chunk(text, clean(text), words, max_tokens)]


BODY = "This is a paragraph that is long enough to stand on its own as a passage."


def test_one_passage_per_paragraph():
    text = f"{BODY}\n\n{BODY} Again.\n{BODY} Third."
    assert passages(text) == [BODY, f"{BODY} Again.", f"{BODY} Third."]


def test_subheading_joins_the_paragraph_it_introduces():
    text = f"{BODY}\n\nA subheading about the next part\n\n{BODY} Next."
    assert passages(text) == [BODY, f"A subheading about the next part\n\n{BODY} Next."]


def test_closing_byline_joins_the_previous_paragraph():
    text = f"{BODY}\n\nRobert Fox is the Standard's defence editor"
    assert passages(text) == [f"{BODY}\n\nRobert Fox is the Standard's defence editor"]


def test_fragment_does_not_join_across_removed_cruft():
    text = f"{BODY}\nED JONES/Getty Images\nA heading for what follows\n\n{BODY} Next."
    out = passages(text)
    assert out == [BODY, f"A heading for what follows\n\n{BODY} Next."]
    assert all("Getty" not in p for p in out)


def test_hard_wrapped_lines_are_one_paragraph():
    text = "The first line of a paragraph that was\nwrapped by an editor at a fixed width.\n\nThe next paragraph is here, whole and long enough to stand alone."
    assert passages(text)[0] == "The first line of a paragraph that was\nwrapped by an editor at a fixed width."


def test_long_paragraph_splits_at_sentence_boundaries_with_exact_offsets():
    sentence = "The U.S. said on Monday that the deployment was real and large. "
    text = (sentence * 12).strip()
    out = passages(text, max_tokens=40)
    assert len(out) > 1
    assert all(words(p) <= 40 for p in out)
    assert all(p.endswith("real and large.") and p.startswith("The U.S. said") for p in out)
    assert " ".join(out) == text


def test_a_sentence_longer_than_the_window_is_cut_between_words():
    text = " ".join(f"word{i}" for i in range(100)) + "."
    out = passages(text, max_tokens=30)
    assert all(words(p) <= 30 for p in out)
    assert " ".join(out) == text


def test_offsets_are_absolute_and_ordinals_count_paragraphs():
    text = f"Head line of the article\n\n{BODY}\n\nA short heading here\n\n{BODY} Two."
    cleaned = clean(text)
    got = chunk(text, cleaned, words, 254)
    assert [(p.paragraph, text[p.start:p.end]) for p in got] == [
        (1, BODY), (2, f"A short heading here\n\n{BODY} Two.")]


def test_fragment_rules():
    assert is_fragment("Robert Fox is the Standard's defence editor")
    assert is_fragment("North Korean dictator appears to gain more than Putin from this deal")
    assert not is_fragment("The indicator of the impending crisis in Russia can be summed up in two words: North Korea.")


def test_sentences_keeps_abbreviations_together():
    text = ("The Institute, a Washington, D.C. research group, said so. The group first met in 2009. "
            "Sen. Mitch McConnell spoke. Rep. Nancy Pelosi did too, said Dr. Jones of the U.S. Army.")
    assert [text[a:b] for a, b in sentences(text, 0, len(text))] == [
        "The Institute, a Washington, D.C. research group, said so.", "The group first met in 2009.",
        "Sen. Mitch McConnell spoke.", "Rep. Nancy Pelosi did too, said Dr. Jones of the U.S. Army."]


@pytest.mark.parametrize("segmenter", SEGMENTERS)
def test_every_splitter_gives_trimmed_absolute_spans_that_cover_the_passage_in_order(segmenter):
    # text before the passage with characters outside the BMP and curly quotes: offsets are
    # of characters, not of UTF-8 bytes
    before = "“Quoted” — ünïcode 😀 text before. "
    passage = ("(CNN) Storm crews restored power to the coast on Tuesday after the flood.  "
               "“I’m never going back,” one resident said. Officials said the damage was worse than expected. ")
    text = before + passage + "After."
    spans = sentences(text, len(before), len(before) + len(passage), segmenter)
    assert len(spans) >= 3
    assert all(len(before) <= a < b <= len(before) + len(passage) for a, b in spans)
    assert all(text[a:b] == text[a:b].strip() for a, b in spans)
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(spans, spans[1:]))
    assert "".join(text[a:b] for a, b in spans).replace(" ", "") == passage.replace(" ", "")
    assert text[spans[-1][0]:spans[-1][1]] == "Officials said the damage was worse than expected."


def test_an_unknown_splitter_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown sentence splitter 'spacy'"):
        sentences("One. Two.", 0, 9, "spacy")
