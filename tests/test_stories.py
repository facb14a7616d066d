"""Stories: articles that report one event are grouped as they are indexed
(indexer/stories.py), the same whether they arrive in one build or one update at a time,
with ids that merges keep; hits carry their story, `group=story` gives one result per
story, and /stories lists the stories that answer as timelines."""

import shutil

import pytest

import indexer.update as updates
from indexer import build
from indexer.stories import MemoryStories, article_terms, assign
from indexer.update import update
from search import Searcher
from search.index import store
from search.index.generations import current

from helpers import SEEDS, error, write_jsonl
from story_articles import ACEH, OTHER, PAPUA, QUAKES, REHAB

OP_ED, TRANSLATION = "000_c7708b97d51473e9", "001_69714012eee412eb"

def test_reports_of_one_event_share_a_story_and_two_events_of_one_kind_do_not():
    state = MemoryStories()
    story = {doc_id: assign(state, doc_id, article_terms(title, text)) for doc_id, title, text in OTHER + REHAB}
    assert story["reid-1"] == story["reid-2"]
    assert story["lohan-1"] == story["lohan-2"]
    assert story["reid-1"] != story["lohan-1"]
    assert len({story[d] for d, _, _ in OTHER} | {story["reid-1"], story["lohan-1"]}) == 5


def test_two_events_of_one_kind_that_arrive_interleaved_are_split_into_two_stories():
    state = MemoryStories()
    for doc_id, title, text in OTHER + QUAKES:
        assign(state, doc_id, article_terms(title, text))
    aceh, papua = {state.story_of[d] for d, _, _ in ACEH}, {state.story_of[d] for d, _, _ in PAPUA}
    assert len(aceh) == len(papua) == 1 and aceh != papua
    assert len({state.story_of[d] for d, _, _ in OTHER} | aceh | papua) == len(OTHER) + 2
    # the centroids follow their members: each story's squared length is its members' sum's
    for story in aceh | papua:
        members = state.members(story)
        total = {}
        for _, _, vector in members:
            for t, w in vector.items():
                total[t] = total.get(t, 0.0) + w
        assert state.norm2[story] == pytest.approx(sum(w * w for w in total.values()))
        assert all(abs(state.postings[t].get(story, 0.0) - w) < 1e-9 for t, w in total.items())


def test_hits_carry_their_story_and_the_op_ed_and_its_translation_share_one(searcher):
    hits = searcher.search("the nightmare scenario for Russia and China", 10, collapse=False)
    story_of = {h.citations[0].doc_id: h.story for h in hits}
    assert story_of[OP_ED] is not None and story_of[OP_ED] == story_of[TRANSLATION]
    story = searcher.story(story_of[OP_ED])
    assert {OP_ED, TRANSLATION} <= {entry["doc_id"] for entry in story["timeline"]}
    assert story["articles"] == len(story["timeline"]) and story["label"]


def test_group_story_gives_one_result_per_story_citing_its_other_articles(searcher):
    hits = searcher.search("North Korean soldiers fighting for Russia", 5, group="story")
    stories = [h.story for h in hits]
    assert len(stories) == len(set(stories)) >= 1
    first = hits[0]
    members = {e["doc_id"] for e in searcher.story(first.story)["timeline"]}
    cited = [c.doc_id for c in first.citations]
    assert set(cited) <= members and len(set(cited)) == len(cited) > 1  # its other articles, once each


def test_the_stories_route_lists_timelines_and_refuses_bad_ids(client):
    response = client.get("/stories?q=North Korean troops in Kursk&k=2")
    assert response.status_code == 200
    body = response.get_json()
    assert body["query"] == "North Korean troops in Kursk" and 1 <= len(body["stories"]) <= 2
    for story in body["stories"]:
        assert set(story) == {"id", "label", "first_published", "last_published", "articles", "sources", "timeline"}
        assert story["articles"] == len(story["timeline"]) >= 1
        for entry in story["timeline"]:
            assert set(entry) == {"doc_id", "published", "source", "title", "text", "paragraph", "start", "end"}
            # each entry says where its passage is, so that it links there
            text = client.get(f"/documents/{entry['doc_id']}").get_json()["text"]
            assert text[entry["start"]:entry["end"]] == entry["text"]
    one = client.get(f"/stories/{body['stories'][0]['id']}")
    assert one.status_code == 200 and one.get_json()["id"] == body["stories"][0]["id"]
    for entry in one.get_json()["timeline"]:  # no question: each article's lead, and where it is
        assert entry["paragraph"] == 1 and entry["start"] < entry["end"]
    error(client.get("/stories/12345"), 404, "story_not_found")
    error(client.get("/stories/-1"), 400, "invalid_story_id")
    error(client.get("/stories?q=x&k=21"), 400, "invalid_k")
    error(client.get("/stories"), 400, "missing_query")


def _placed(index) -> dict[str, int]:
    """doc_id -> story of the index's live articles."""
    searcher = Searcher.open(index)
    return {doc_id: int(searcher._story_of_row[row]) for row, doc_id in
            searcher._store.rows("SELECT rowid - 1, doc_id FROM documents") if searcher._store.live_documents[row]}


# with folds on the way, and the first quake reports in the base (a split moves some of the
# base's articles); with no fold, a split's moves span segments
@pytest.mark.parametrize("merge_segments, built", [(2, 9), (32, 1)])
def test_stories_placed_one_update_at_a_time_are_a_builds_and_survive_merges(tmp_path, embedder, monkeypatch,
                                                                            merge_segments, built):
    feed = [dict(zip(("id", "title", "text"), article)) for article in OTHER + REHAB + QUAKES]
    whole = tmp_path / "whole"
    build([write_jsonl(tmp_path / "all.jsonl", *feed)], whole)
    expected = _placed(whole)
    assert len({expected[d] for d, _, _ in ACEH} | {expected[d] for d, _, _ in PAPUA}) == 2  # split apart
    monkeypatch.setattr(updates, "MERGE_SEGMENTS", merge_segments)
    monkeypatch.setattr(updates, "MERGE_SHARE", 1e9)  # folds beside the base, never a merge of it
    index = tmp_path / "index"
    build([write_jsonl(tmp_path / "first.jsonl", *feed[:built])], index)
    for n, article in enumerate(feed[built:]):
        update(index, [write_jsonl(tmp_path / f"{n}.jsonl", article)])
    assert _placed(index) == expected
    update(index, merge=True)
    assert "segments" not in store.read_manifest(current(index))
    assert _placed(index) == expected
    late = {"id": "reid-3", "title": "Tara Reid leaves Promises", "text": "Tara Reid left the Promises clinic in "
            "Malibu on Friday, her representative Jack Ketsoyan said."}
    update(index, [write_jsonl(tmp_path / "late.jsonl", late)])
    assert _placed(index)["reid-3"] == expected["reid-1"]


def _state(index):
    """The stories' state an update would read from the index's current generation."""
    from indexer.stories import StoredStories
    from search.index import segments
    from search.index.segment_store import SegmentedStore

    directory = current(index)
    manifest = store.read_manifest(directory)
    held = SegmentedStore(segments.Layout.of(manifest, directory), directory)
    parts = [held.connection(p) for p in range(len(held.parts))]
    state = StoredStories(parts, manifest.get("next_story", 0))
    state.held = held  # (a store's connections close when it goes)
    return state, parts


def test_a_deleted_or_replaced_article_leaves_its_stories_centroid(tmp_path, embedder, monkeypatch):
    monkeypatch.setattr(updates, "MERGE_SEGMENTS", 1)  # the deletion alone folds the segments (dead rows gone)
    monkeypatch.setattr(updates, "MERGE_SHARE", 1e9)
    feed = [dict(zip(("id", "title", "text"), article)) for article in OTHER + REHAB + QUAKES]
    assert feed[-1]["id"] == "papua-4"
    index = tmp_path / "index"
    build([write_jsonl(tmp_path / "all.jsonl", *feed[:-1])], index)
    update(index, [write_jsonl(tmp_path / "last.jsonl", feed[-1])])  # in a segment the deletion's fold drops
    before = _placed(index)
    reid = feed[len(OTHER)]
    assert reid["id"] == "reid-1"
    for n in range(3):  # corrections: each version placed anew, the one before taken out
        update(index, [write_jsonl(tmp_path / f"r{n}.jsonl", {**reid, "text": reid["text"] + f" Update {n}."})])
    segments = len(store.read_manifest(current(index))["segments"])
    updates.update(index, remove=["papua-4"])  # a deletion alone writes no segment: it waits for one
    assert store.read_manifest(current(index))[updates.DEPARTURES] == ["papua-4"]
    assert len(store.read_manifest(current(index))["segments"]) < segments  # folded
    bridge = {"id": "bridge-2", "title": "Traffic crosses the new bridge", "text": "The first cars crossed the "
              "city's new bridge over the river on Tuesday morning."}
    update(index, [write_jsonl(tmp_path / "bridge.jsonl", bridge)])
    assert updates.DEPARTURES not in store.read_manifest(current(index))
    after = _placed(index)
    assert "papua-4" not in after
    assert after["reid-1"] == after["reid-2"] == before["reid-2"]
    assert {after[d] for d, _, _ in PAPUA[:3]} == {before["papua-1"]}
    state, parts = _state(index)
    for story in {after["reid-1"], after["papua-1"]}:
        members = state.members(story)
        assert sorted(doc_id for _, doc_id, _ in members) == sorted(d for d, s in after.items() if s == story)
        assert state.size(story) == len(members)
        total: dict[str, float] = {}
        for _, _, vector in members:
            for t, w in vector.items():
                total[t] = total.get(t, 0.0) + w
        centroid: dict[str, float] = {}
        for conn in parts:
            for term, w in conn.execute("SELECT term, weight FROM story_terms WHERE story = ?", (story,)):
                centroid[term] = centroid.get(term, 0.0) + w
        assert all(abs(centroid.get(t, 0.0) - w) < 1e-9 for t, w in total.items())
        assert all(abs(w) < 1e-9 for t, w in centroid.items() if t not in total)
        assert state.norms([story])[story] == pytest.approx(sum(w * w for w in total.values()), rel=1e-6)


def test_an_index_built_before_stories_gets_them_from_its_next_merge(tmp_path, embedder):
    import sqlite3

    index = tmp_path / "index"
    shutil.copytree(SEEDS, tmp_path / "seeds")
    build([tmp_path / "seeds"], index)
    conn = sqlite3.connect(current(index) / store.STORE)  # as a store written before stories were kept
    conn.executescript("DROP TABLE stories; DROP TABLE story_terms; DROP TABLE story_norms; DROP TABLE story_df;")
    conn.commit()
    conn.close()
    manifest = store.read_manifest(current(index))
    store.write_manifest(current(index), {k: v for k, v in manifest.items() if k != "next_story"},
                         [name for name in manifest["checksums"]])
    assert Searcher.open(index).search("nightmare scenario", 1)[0].story is None
    update(index, merge=True)
    hits = Searcher.open(index).search("the nightmare scenario for Russia and China", 10, collapse=False)
    story_of = {h.citations[0].doc_id: h.story for h in hits}
    assert story_of[OP_ED] is not None and story_of[OP_ED] == story_of[TRANSLATION]


def test_names_are_the_capitalised_words_inside_sentences_and_the_numbers():
    from indexer.stories import names

    text = ("Peter Capaldi will be the new Doctor. The BBC said so on Sunday, before 6.1 million viewers.\n"
            "Matt Smith leaves; \"Smith was loved\", it added.")
    assert names(text) == ["name:capaldi", "name:doctor", "name:bbc", "name:sunday", "name:6.1",
                           "name:smith"]
