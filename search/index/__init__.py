"""The index on disk and its lifecycle: the manifest and SQLite store (`store`), the
generations a writer publishes and readers follow (`generations`), BM25 (`lexical`),
sentence vectors, and where the passage vectors live (`vector_index` for FAISS,
`vector_store` for FAISS or Milvus)."""
