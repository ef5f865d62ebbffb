"""MCP tools in the GUI: server settings, the per-call permission dialog and the tool-call rows. GUI thread only."""
