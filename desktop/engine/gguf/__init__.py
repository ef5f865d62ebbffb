"""GGUF files: inspect and diagnose (doctor), repair in place with an undo journal or at load time (repair), and
scalar metadata from a byte prefix (header). Runs in whichever process calls it: the caller's, and the engine
process at load time."""
