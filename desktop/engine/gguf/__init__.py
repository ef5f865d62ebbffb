"""GGUF files: inspect, diagnose and repair (doctor), and scalar metadata from a byte prefix (header).
Runs in whichever process calls it: the caller's, and the engine process at load time."""
