"""The window's frame: main window, navigation rail and pages, menus and their one action table, status bar.

GUI thread only. The shell wires the feature packages (chat, library, settings, tools) together and does no
work of its own.
"""
