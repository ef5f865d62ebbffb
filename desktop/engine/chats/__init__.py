"""Chats: the SQLite store (message tree, FTS5 search, journaled streaming) and export. Runs in the caller's process."""
