"""Stories in the index's store: which story each article is in, and what placing the
next article needs (indexer/stories.py), as tables of each segment's store.

A segment records what its own articles added, never rewriting an older one: each
article's story (`stories`), the weights its terms added to its story's centroid
(`story_terms`, summed per term and story), the centroids' squared lengths after it
(`story_norms`: a later segment's value overrides), and how many of its articles hold
each term (`story_df`). Reading them across segments sums the first and last and takes
the latest norm, so an add costs what it adds. Stores written before stories were kept
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
"""


def has_stories(conn: sqlite3.Connection, schema: str = "main") -> bool:
    return conn.execute(f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = 'stories'").fetchone() \
        is not None


def copy(conn: sqlite3.Connection, schema: str) -> None:
    """Add the stories of the attached store `schema` to `conn`'s (a fold's or a merge's
    copy, part after part): the stories of the documents `conn` now holds, the centroids'
    terms and the frequencies summed, the later length kept."""
    conn.executescript(SCHEMA)
    if not has_stories(conn, schema):
        return
    for sql in (f"INSERT OR REPLACE INTO stories SELECT doc_id, story FROM {schema}.stories "
                "WHERE doc_id IN (SELECT doc_id FROM main.documents)",
                f"INSERT INTO story_terms SELECT term, story, weight FROM {schema}.story_terms WHERE true "
                "ON CONFLICT (term, story) DO UPDATE SET weight = weight + excluded.weight",
                f"INSERT OR REPLACE INTO story_norms SELECT story, norm2 FROM {schema}.story_norms",
                f"INSERT INTO story_df SELECT term, articles FROM {schema}.story_df WHERE true "
                "ON CONFLICT (term) DO UPDATE SET articles = articles + excluded.articles"):
        conn.execute(sql)
