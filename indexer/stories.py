"""Stories: the articles that report one event, grouped as they arrive.

Each article is compared with the stories so far by two signals: its meaning (the mean
of its passages' vectors against a story's mean) and its words (tf-idf over stemmed
terms, idf from the articles seen so far, against the story's summed tf-idf). Names,
places and numbers are what tell two stories of one kind apart (two celebrities' rehab
stays), and tf-idf weighs them; the vectors carry paraphrase. The article joins the
most similar story when the blend reaches THRESHOLD, and starts a story otherwise: the
number of stories is never given. An article is never moved once placed, so a story id
is stable.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

# Chosen on ECB+'s train split, five arrival orders (tools/stories_eval.py); reported on test.
DENSE_WEIGHT = 0.0
THRESHOLD = 0.25


@dataclass
class Story:
    id: int
    members: list[str] = field(default_factory=list)
    dense: np.ndarray | None = None  # sum of the members' unit vectors
    words: Counter = field(default_factory=Counter)  # sum of the members' unit tf-idf vectors

    def similarity(self, vector: np.ndarray, weights: dict[str, float], dense_weight: float) -> float:
        dense = float(self.dense @ vector) / max(float(np.linalg.norm(self.dense)), 1e-12)
        norm = math.sqrt(sum(v * v for v in self.words.values())) or 1.0
        lexical = sum(w * self.words.get(t, 0.0) for t, w in weights.items()) / norm
        return dense_weight * dense + (1 - dense_weight) * lexical

    def join(self, doc_id: str, vector: np.ndarray, weights: dict[str, float]) -> None:
        self.members.append(doc_id)
        self.dense = vector.copy() if self.dense is None else self.dense + vector
        self.words.update(weights)


class StoryAssigner:
    def __init__(self, threshold: float = THRESHOLD, dense_weight: float = DENSE_WEIGHT):
        self.threshold, self.dense_weight = threshold, dense_weight
        self.stories: list[Story] = []
        self.df: Counter = Counter()
        self.documents = 0

    def weights(self, terms: list[str]) -> dict[str, float]:
        """An article's unit tf-idf vector (sublinear tf; idf over the articles seen)."""
        counts = Counter(terms)
        raw = {t: (1 + math.log(c)) * math.log((1 + self.documents) / (1 + self.df[t])) for t, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in raw.values())) or 1.0
        return {t: v / norm for t, v in raw.items() if v > 0}

    def assign(self, doc_id: str, terms: list[str], vector: np.ndarray) -> int:
        """Place one article; returns its story's id."""
        self.documents += 1
        self.df.update(set(terms))
        weights = self.weights(terms)
        vector = np.asarray(vector, dtype=np.float32)
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        best, score = None, -1.0
        for story in self.stories:
            s = story.similarity(vector, weights, self.dense_weight)
            if s > score:
                best, score = story, s
        if best is None or score < self.threshold:
            best = Story(len(self.stories))
            self.stories.append(best)
        best.join(doc_id, vector, weights)
        return best.id
