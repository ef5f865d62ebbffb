"""The main window's pages and panes, one module per view (GUI thread only)."""
