"""`indexer build --engine ray`: embedding spread over a pool of model actors by Ray Data.

The build itself does not change: reading, cleaning, chunking, BM25 and publishing stay
in the driver, and `RayEmbedder` stands in for the embedder with the same interface. It
hands the texts out in the local embedder's batches, and each model actor embeds whole
batches; a text's vector does not depend on its batch (the int8 model runs each text
alone; the torch ones batch as the local build does), so the index a Ray build writes is
identical to a single-process build's.

On one machine Ray starts a local cluster with the machine's cores; with RAY_ADDRESS set,
the same command joins a real cluster and its actors run on its nodes (each node needs
the project installed and the model on disk, as the driver does).
"""

from __future__ import annotations

import logging
import os

import numpy as np


class _ModelActor:
    """One model per actor process; called with one planned batch at a time."""

    def __init__(self, name: str, backend: str, threads: int):
        os.environ["SEARCH_EMBED_THREADS"] = str(threads)
        from search.embedding.embedder import get_embedder

        self.embedder = get_embedder(name, backend)

    def __call__(self, batch: dict) -> dict:
        rows = np.concatenate([np.asarray(r, dtype=np.int64) for r in batch["rows"]])
        vectors = [self.embedder.embed(list(texts), batch_size=len(texts)) for texts in batch["texts"]]
        return {"row": rows, "vector": np.concatenate(vectors)}


class RayEmbedder:
    """The embedder interface (embed, count_tokens, dimension, ...), embedding with Ray."""

    def __init__(self, embedder, actors: int | None = None):
        self.local = embedder  # tokenises for chunking and plans batches in the driver
        self.actors = actors
        self.name, self.backend = embedder.name, embedder.backend
        self.export_version = getattr(embedder, "export_version", None)
        self._started = False

    @property
    def dimension(self) -> int:
        return self.local.dimension

    @property
    def max_tokens(self) -> int:
        return self.local.max_tokens

    def count_tokens(self, text: str) -> int:
        return self.local.count_tokens(text)

    def count_tokens_each(self, texts: list[str]) -> list[int]:
        return self.local.count_tokens_each(texts)

    def embed(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        import ray

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self._start(progress)
        cluster_cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        actors = self.actors or cluster_cpus
        cpus = max(1, cluster_cpus // actors)
        plan = self.local.batches(texts, batch_size)
        items = [{"rows": rows.tolist(), "texts": [texts[i] for i in rows]} for rows in plan]
        # one planned batch per call, so that every actor runs exactly the batches planned
        embedded = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _ModelActor, fn_constructor_kwargs={"name": self.name, "backend": self.backend, "threads": cpus},
            batch_size=1, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=cpus, batch_format="numpy")
        _quiet("ray.data")  # it logs every execution at INFO; the build prints its own summary
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        seen = np.zeros(len(texts), dtype=bool)
        for batch in embedded.iter_batches(batch_size=None, batch_format="numpy"):
            out[batch["row"]] = np.stack(batch["vector"]) if batch["vector"].dtype == object else batch["vector"]
            seen[batch["row"]] = True
        if not seen.all():  # never silently index zero vectors
            raise RuntimeError(f"Ray returned {int(seen.sum())} of {len(texts)} vectors")
        return out

    def _start(self, progress: bool) -> None:
        import ray

        if not ray.is_initialized():
            # RAY_ADDRESS (a cluster) if set, else a local one on this machine's cores
            ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                     configure_logging=True)
            self._started = True
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = progress
        context.print_on_execution_start = False
        context.verbose_stats_logs = False

    def close(self) -> None:
        """Stop the local cluster this embedder started (a joined one keeps running)."""
        import ray

        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False


def _quiet(prefix: str) -> None:
    for name in [prefix] + [n for n in logging.root.manager.loggerDict if n.startswith(prefix + ".")]:
        logging.getLogger(name).setLevel(logging.WARNING)
