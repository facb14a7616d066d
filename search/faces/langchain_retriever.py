"""A LangChain retriever over the searcher (optional extra: `pip install -e .[langchain]`).

    from search.faces.langchain_retriever import NewsRetriever

    retriever = NewsRetriever.from_index("index", k=4)
    docs = retriever.invoke("How many Russian casualties since 2022?")
    docs[0].metadata["citations"][0]  # {"doc_id", "title", "source", "paragraph", "start", "end", ...}

Each `Document` is one result: `page_content` is the passage, `metadata` holds its rank,
score, highlight and every citation (the first also flattened: `doc_id`, `source`, ...).
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from search.query import Filters
from search.searcher import Searcher


class NewsRetriever(BaseRetriever):
    """Passages that answer a query, with their citations, as LangChain documents."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    searcher: Searcher
    k: int = 5
    mode: str | None = None
    collapse: bool = True
    filters: Filters = Filters()
    mmr: float | None = None  # maximal marginal relevance's weight on relevance (Searcher.search)

    @classmethod
    def from_index(cls, index: str = "index", **kwargs: Any) -> "NewsRetriever":
        return cls(searcher=Searcher.open(index), **kwargs)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.searcher.search(query, self.k, mode=self.mode, collapse=self.collapse, filters=self.filters,
                                    mmr=self.mmr)
        documents = []
        for hit in hits:
            data = hit.to_dict()
            first = data["citations"][0]
            metadata = {**first, "rank": hit.rank, "score": hit.score, "citations": data["citations"],
                        "highlight": data["highlight"]}
            documents.append(Document(page_content=hit.text, metadata=metadata, id=f"{first['doc_id']}:{first['start']}"))
        return documents
