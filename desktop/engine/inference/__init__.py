"""Inference: the engine process (host, llama.cpp and remote backends, GPU choice, prompts, stops) and the
caller-side client that starts, watches and restarts it. host/backends run in the engine process; client and
serve run in the caller's process; protocol is shared by both."""
