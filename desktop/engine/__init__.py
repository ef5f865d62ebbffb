"""The engine: plain Python, no Qt.

Everything under this package is importable without PySide6 (a test proves it), and only
``llama_backend`` touches ``llama_cpp``, inside functions. Its modules run in the app's GUI process (mostly on
worker threads), the CLI, the engine subprocess (``inference.host``) and the local server's threads; each
module's docstring says which.
"""
