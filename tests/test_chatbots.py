"""The ways a chatbot plugs in: the MCP server over stdio (the official SDK's client
starting `search-mcp` as a subprocess) and the LangChain retriever."""

import asyncio
import json
import os
import sys

import pytest

from helpers import ROOT

QUESTION = "How many Russian casualties since 2022"
OP_ED = "000_c7708b97d51473e9"


def with_mcp_client(index, work):
    """Run `work(client)` against `search-mcp --index index`, started by the SDK's client."""
    from mcp import Client, StdioServerParameters

    script = os.path.join(os.path.dirname(sys.executable), "search-mcp")
    params = StdioServerParameters(command=script, args=["--index", str(index)], cwd=str(ROOT),
                                   env={**os.environ, "HF_HUB_OFFLINE": "1"})

    async def run():
        async with Client(params, read_timeout_seconds=120) as client:
            return await work(client)

    return asyncio.run(run())


def test_mcp_search_context_and_documents(index_copy):  # a copy: the test stores an alert in it
    async def work(client):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        found = await client.call_tool("search", {"query": QUESTION, "k": 3})
        filtered = await client.call_tool("search", {"query": QUESTION, "k": 2, "doc_id": ["002_2d4b3a8059ce6963"]})
        context = await client.call_tool("context", {"query": QUESTION, "k": 3, "max_chars": 1200})
        document = await client.call_tool("get_document", {"doc_id": OP_ED})
        resource = await client.read_resource(f"document://{OP_ED}")
        bad = await client.call_tool("search", {"query": "   ", "k": 3})
        missing = await client.call_tool("get_document", {"doc_id": "nope"})
        stories = await client.call_tool("stories", {"query": "the nightmare scenario for Russia and China", "k": 2})
        story = await client.call_tool("get_story", {"story_id": top_story(stories)})
        no_story = await client.call_tool("get_story", {"story_id": 9999})
        alert = await client.call_tool("create_alert", {"query": "seal pups in the Thames", "k": 5})
        matches = await client.call_tool("alert_matches", {"alert_id": alert.structured_content["id"]})
        no_alert = await client.call_tool("alert_matches", {"alert_id": "0123456789abcdef"})
        alerts = (alert, matches, no_alert)
        return tools, found, filtered, context, document, resource, bad, missing, stories, story, no_story, alerts

    def top_story(stories):
        return stories.structured_content["stories"][0]["id"]

    tools, found, filtered, context, document, resource, bad, missing, stories, story, no_story, alerts = \
        with_mcp_client(index_copy, work)
    assert set(tools) == {"search", "context", "get_document", "stories", "get_story", "create_alert",
                          "alert_matches"}
    assert {"query", "k", "doc_id", "published_from"} <= set(tools["search"].input_schema["properties"])
    top = found.structured_content["results"][0]
    assert not found.is_error and "710,000" in top["text"]
    assert {c["doc_id"] for c in top["citations"]} == {OP_ED, "001_69714012eee412eb"}
    c = top["citations"][0]
    assert set(c) >= {"doc_id", "title", "source", "paragraph", "start", "end"}
    assert {c["doc_id"] for r in filtered.structured_content["results"] for c in r["citations"]} == {
        "002_2d4b3a8059ce6963"}
    ctx = context.structured_content
    assert ctx["context"].startswith("[1] ") and ctx["chars"] <= 1200 and ctx["sources"][0]["n"] == 1
    text = document.structured_content["text"]
    assert text[c["start"]:c["end"]] == top["text"] or c["doc_id"] != OP_ED
    assert json.loads(resource.contents[0].text)["doc_id"] == OP_ED
    assert bad.is_error and "empty_query" in bad.content[0].text
    assert missing.is_error and "no document with id 'nope'" in missing.content[0].text
    # the op-ed and its translation tell one story, whose timeline a chatbot can show
    listed = stories.structured_content["stories"][0]
    assert {OP_ED, "001_69714012eee412eb"} <= {e["doc_id"] for e in listed["timeline"]}
    assert story.structured_content["id"] == listed["id"] and story.structured_content["articles"] == listed["articles"]
    assert no_story.is_error and "story_not_found" in no_story.content[0].text
    assert found.structured_content["results"][0]["story"] == listed["id"]
    alert, matches, no_alert = alerts
    assert alert.structured_content["query"] == "seal pups in the Thames" and alert.structured_content["k"] == 5
    assert matches.structured_content["matches"] == []  # nothing was ingested since
    assert no_alert.is_error and "alert_not_found" in no_alert.content[0].text


def test_langchain_retriever_returns_cited_documents(searcher):
    pytest.importorskip("langchain_core", reason="the [langchain] extra is not installed")
    from search import Filters
    from search.faces.langchain_retriever import NewsRetriever

    docs = NewsRetriever(searcher=searcher, k=3).invoke(QUESTION)
    assert len(docs) == 3 and "710,000" in docs[0].page_content
    meta = docs[0].metadata
    assert meta["rank"] == 1 and meta["doc_id"] in {OP_ED, "001_69714012eee412eb"}
    assert {c["doc_id"] for c in meta["citations"]} == {OP_ED, "001_69714012eee412eb"}
    document = searcher.document(meta["doc_id"])["text"]
    assert document[meta["start"]:meta["end"]] == docs[0].page_content
    only = NewsRetriever(searcher=searcher, k=2, filters=Filters.of(doc_id="002_2d4b3a8059ce6963")).invoke(QUESTION)
    assert {d.metadata["doc_id"] for d in only} == {"002_2d4b3a8059ce6963"}
