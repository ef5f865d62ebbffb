"""Tools for the chat: MCP servers (``mcp.json``), tool-call formats, permissions and the tool loop.

Plain Python, no Qt. The MCP SDK is asyncio; :mod:`mcp_client` runs it on one event-loop thread behind a
synchronous facade. The tool loop (:mod:`loop`) runs on the caller's thread (CLI main thread, a GUI worker),
never in the engine process: the engine only generates text.
"""
