"""The local server (``serve`` and the app's Server page): OpenAI- and Ollama-compatible HTTP over the one engine.
Runs in the caller's process (CLI or GUI), never in the engine."""
