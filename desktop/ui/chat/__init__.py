"""Chatting: the session (the one send path), the message model, the conversation view, the composer and chat
page, the welcome view, attachment chips and the sidebar of chats. GUI thread only."""
