"""The engine: plain Python, no Qt.

Everything under this package is importable without PySide6 (a test proves it), and only
``llama_backend`` touches ``llama_cpp``, inside functions.
"""
