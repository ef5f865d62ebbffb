"""The installed-model library: the registry of files (ids unique per file), profile -> file and the Load/Generate
requests built from a profile, import, generated profiles, hashing. Runs in the caller's process."""
