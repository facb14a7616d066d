"""The ways in for people and chatbots besides HTTP: the `ask` command (`cli`), the MCP
tool (`mcp_server`) and the LangChain retriever (`langchain_retriever`)."""
