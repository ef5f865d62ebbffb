"""The app's local server: the Server page (page.py), its request log (log_model.py) and the controller that owns
the LocalServer and shares the window's one engine with the chat (controller.py). GUI thread; the server runs on
its own threads (desktop/engine/server)."""
