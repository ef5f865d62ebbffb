"""The installed-model library: the registry of files (ids unique per file), profile -> file and the Load/Generate
requests built from a profile, import, rename, remove, undo of repairs, the HF cache read in place, generated
profiles, hashing. Runs in the caller's process."""
