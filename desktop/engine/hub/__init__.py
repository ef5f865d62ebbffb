"""The Hugging Face Hub side: listing, downloads into the app's library (one or several ranged connections) and
their queue, fit estimates, hardware probing. Runs in the caller's process (gpu choice in the engine process
reuses fit/hardware)."""
