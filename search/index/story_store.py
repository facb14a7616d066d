"""Stories in the index's store: which story each article is in, and what placing the
next article needs (indexer/stories.py), as tables of each segment's store.

A segment records what its own articles added, never rewriting an older one: each
article's story (`stories`), the weights its terms added to its story's centroid
(`story_terms`, summed per term and story), the centroids' squared lengths after it
(`story_norms`: a later segment's value overrides), and how many of its articles hold
each term (`story_df`), and the vector each article joined with (`story_members`, by its
placement number: what a split reads). Reading them across segments sums the first and
last and takes the latest norm, so an add costs what it adds. A split moves articles of
older segments: the segment that splits records their new story in its own `stories`
and `story_members` rows (a doc_id it does not hold), which override the older ones. A
deleted article's placement is overridden likewise with story -1 (in none), its vector
taken out of its story's `story_terms`. Stores written before stories were kept
have none of these tables: their articles have no story (a merge gives them one).
"""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS stories (doc_id TEXT PRIMARY KEY, story INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS stories_story ON stories(story);
CREATE TABLE IF NOT EXISTS story_terms (term TEXT NOT NULL, story INTEGER NOT NULL, weight REAL NOT NULL,
                                        PRIMARY KEY (term, story)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS story_norms (story INTEGER PRIMARY KEY, norm2 REAL NOT NULL);
CREATE TABLE IF NOT EXISTS story_df (term TEXT PRIMARY KEY, articles INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS story_members (placement INTEGER PRIMARY KEY, doc_id TEXT NOT NULL,
                                          story INTEGER NOT NULL, terms TEXT NOT NULL, weights BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS story_members_story ON story_members(story);
CREATE INDEX IF NOT EXISTS story_members_doc ON story_members(doc_id);
"""


def has_stories(conn: sqlite3.Connection, schema: str = "main") -> bool:
    return conn.execute(f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = 'stories'").fetchone() \
        is not None


def members_kept(conn: sqlite3.Connection, schema: str = "main") -> bool:
    """Whether the store keeps its articles' story vectors (stores older than splits do not)."""
    return conn.execute(f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = 'story_members'"
                        ).fetchone() is not None


def copy(conn: sqlite3.Connection, schema: str) -> None:
    """Add the stories of the attached store `schema` to `conn`'s (a fold's or a merge's
    copy, part after part): the stories of the documents `conn` now holds and the moves of
    older ones, the centroids' terms and the frequencies summed, the later length and
    member rows kept (a deleted article's too: its vector stays in its centroid)."""
    conn.executescript(SCHEMA)
    if not has_stories(conn, schema):
        return
    moves = f"doc_id NOT IN (SELECT doc_id FROM {schema}.documents)"
    for sql in (f"INSERT OR REPLACE INTO stories SELECT doc_id, story FROM {schema}.stories "
                f"WHERE doc_id IN (SELECT doc_id FROM main.documents) OR {moves}",
                f"INSERT INTO story_terms SELECT term, story, weight FROM {schema}.story_terms WHERE true "
                "ON CONFLICT (term, story) DO UPDATE SET weight = weight + excluded.weight",
                f"INSERT OR REPLACE INTO story_norms SELECT story, norm2 FROM {schema}.story_norms",
                f"INSERT OR REPLACE INTO story_members SELECT * FROM {schema}.story_members" if members_kept(conn, schema)
                else "SELECT 1",
                f"INSERT INTO story_df SELECT term, articles FROM {schema}.story_df WHERE true "
                "ON CONFLICT (term) DO UPDATE SET articles = articles + excluded.articles"):
        conn.execute(sql)
